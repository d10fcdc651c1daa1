"""Retrieval: what the companion recalls for a turn.

The long-term memory issue fills this in (FTS5 + FAISS fused, weighted by retention, time-aware). Until then
recall returns nothing, and every caller already goes through this one function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from companion.memory.store import Store


@dataclass(frozen=True)
class Hit:
    id: int
    kind: str
    text: str
    score: float
    time: str
    source_ids: list[str] = field(default_factory=list)


def retrieve(
    store: Store,
    query: str,
    *,
    now: datetime | None = None,
    limit: int = 8,
    exclude_session: int | None = None,
) -> list[Hit]:
    """Memories relevant to `query`, best first. Not built yet: returns no hits."""
    return []
