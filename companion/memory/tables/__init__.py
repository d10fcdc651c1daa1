"""The tables room: the only code that writes SQL (beside the migrations of `db/schema.py`), one module per
table — sessions, messages, memories, vectors, meta, the profile, personas — plus `forget` and `scrub`, which
cross them, and the audit log every change writes.

A change of what recall can find (a memory added, edited, superseded, archived, restored or forgotten; a
message embedded, archived, restored or forgotten) is one function here that writes the row, its audit line
and its vector rows in the caller's transaction (`Write`) and records what the FAISS index must do in
`Write.change`, which the caller applies once the transaction has committed (`LongTermMemory.write`). No other
module touches `vectors`, the audit log or the index's keys.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field

from companion.memory.db.store import Store
from companion.memory.records import VectorChange


@dataclass
class Write:
    """One transaction of the memory file and what it did to the vectors (for the FAISS index, after commit)."""

    conn: sqlite3.Connection
    change: VectorChange = field(default_factory=VectorChange)


@contextlib.contextmanager
def write(store: Store) -> Iterator[Write]:
    """A transaction for table functions; the caller applies `change` to the index after it commits."""
    with store.transaction() as conn:
        yield Write(conn)


def chunks(items: list[int], size: int = 500) -> Iterator[list[int]]:
    """Ids in groups small enough for one `in (…)` list."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(items: list[int]) -> str:
    return ",".join("?" * len(items))
