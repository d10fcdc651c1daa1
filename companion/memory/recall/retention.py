"""The forgetting curve: how much of a memory is retained, R = exp(-Δt / (τ·S)) (MemoryBank's idea, with the
sign right; see `upkeep/forgetting.py` for the sweep that archives what faded). Recall ranks by it gently; the
memory detail shows it."""

from __future__ import annotations

import math
from datetime import datetime

DEFAULT_TAU_DAYS = 5.0
DEFAULT_THRESHOLD = 0.05


def retention(
    strength: float, last: datetime | None, now: datetime, tau_days: float = DEFAULT_TAU_DAYS
) -> float:
    """R = exp(-Δt / (τ·S)), Δt in days (never negative: a clock that jumped back forgets nothing)."""
    if last is None:
        return 1.0
    days = max((now - last).total_seconds() / 86400.0, 0.0)
    return math.exp(-days / (tau_days * max(strength, 1e-3)))
