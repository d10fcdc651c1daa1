"""Rows a test puts in the memory file directly, through the tables room as the app would."""

from __future__ import annotations

from typing import Any

from companion.memory.db.store import Store
from companion.memory.tables import memories, write


def add_memory(store: Store, kind: str, text: str, **fields: Any) -> int:
    """A derived memory (no vector yet: `LongTermMemory.embed_missing`, or `ready()`, embeds it)."""
    with write(store) as w:
        return memories.add(w, kind, text, **fields)
