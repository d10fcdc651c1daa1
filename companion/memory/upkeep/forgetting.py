"""Forgetting the way people do: an Ebbinghaus curve that recall slows (MemoryBank's idea, with the sign right).

Retention R = exp(-Δt / (τ·S)) (`recall/retention.py`): Δt is the days since the memory was last recalled (or
made), S its strength and τ the days of memory per unit of strength (default 5). A memory starts with S = its
importance, and each recall adds 1 (spaced repetition): the more often something comes up, the longer it stays.
MemoryBank's code wrote `exp(-t / 5*S)`, which Python reads as exp(-t·S/5): there recall made memories fade
*faster*.

Pinned memories never fade (lore, and the notes the user adds, are pinned). A derived memory whose retention
falls below the threshold is archived: out of the index and the prompt, still in the file, listed with
`--archived`, restorable, and logged in the audit log. Forgetting never deletes; only the user's `forget` does.
Messages are archived only with `memory.archive_messages` on (off by default): a message whose retention (said
once, strength 1) fell below the threshold leaves recall the same way, unless a pinned memory comes from it;
otherwise retention is only a gentle prior in ranking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from companion import timeutil
from companion.memory.db.store import Store
from companion.memory.recall.retention import DEFAULT_TAU_DAYS, DEFAULT_THRESHOLD, retention
from companion.memory.tables import memories
from companion.memory.tables import messages as message_table

if TYPE_CHECKING:
    from companion.memory.operations import LongTermMemory


@dataclass
class Sweep:
    checked: int = 0
    archived: list[int] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)
    lowest: float = 1.0


@dataclass(frozen=True)
class Faded:
    """A memory whose retention fell below the threshold: forgetting archives it."""

    memory_id: int
    retention: float


def faded(store: Store, now: datetime, tau_days: float, threshold: float, result: Sweep) -> list[Faded]:
    """What has faded at `now` (the decision; nothing is written)."""
    due: list[Faded] = []
    for item in memories.unpinned_in_use(store):
        result.checked += 1
        kept = retention(
            item.strength, timeutil.parse(item.last_recalled_at or item.created_at), now, tau_days
        )
        result.lowest = min(result.lowest, kept)
        if kept < threshold:
            due.append(Faded(item.id, kept))
    return due


def sweep(
    memory: LongTermMemory,
    now: datetime,
    *,
    tau_days: float = DEFAULT_TAU_DAYS,
    threshold: float = DEFAULT_THRESHOLD,
    messages: bool = False,
) -> Sweep:
    """Archive every derived memory whose retention at `now` is below `threshold` (and, with `messages`, every
    message whose retention is), in one transaction; the index follows."""
    result = Sweep()
    due = faded(memory.store, now, tau_days, threshold, result)
    old = fading_messages(memory, now, tau_days, threshold) if messages else []
    if not due and not old:
        return result
    with memory.write() as w:
        for item in due:
            if memories.archive(
                w, item.memory_id, f"retention {item.retention:.3f} fell below {threshold:g}"
            ):
                result.archived.append(item.memory_id)
        if old:
            message_table.archive(w, old, f"faded below {threshold:g}")
            result.messages = old
    return result


def fading_messages(memory: LongTermMemory, now: datetime, tau_days: float, threshold: float) -> list[int]:
    """Messages whose retention (strength 1, since they were said) fell below `threshold`, except those a
    pinned memory comes from."""
    cutoff = now - timedelta(days=-math.log(max(threshold, 1e-9)) * tau_days)
    return message_table.fading(memory.store, timeutil.iso(cutoff))
