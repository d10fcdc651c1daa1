"""Rows of a companion json export written back into the file (`memory import` of a json export): each row as
it was exported, its id left to the file and what it points at remapped by the caller. Its messages and
memories enter recall when they are embedded (`LongTermMemory.embed_missing`), like every other row."""

from __future__ import annotations

from typing import Any

from companion.memory.tables import Write

# The tables a json export holds: the whole memory (the Character Cards of the personas too: their lore is
# among the memories, and a configured persona must be there when the export is restored elsewhere).
TABLES = (
    "sessions",
    "messages",
    "memories",
    "memory_sources",
    "audit",
    "profile_versions",
    "profile_vetoes",
    "personas",
)


def insert(w: Write, table: str, row: dict[str, Any]) -> int:
    """One exported row (its own id aside) into one of the export's tables."""
    if table not in TABLES:
        raise ValueError(f"{table} is not a table of a json export")
    names = [k for k in row if k != "id"]
    cursor = w.conn.execute(
        f"insert into [{table}] ({', '.join(names)}) values ({', '.join('?' * len(names))})",
        [row[k] for k in names],
    )
    return int(cursor.lastrowid or 0)


def link_branch(w: Write, session_id: int, parent: int | None, branch_at: int | None) -> None:
    w.conn.execute(
        "update sessions set parent_id = ?, branch_at = ? where id = ?", (parent, branch_at, session_id)
    )


def link_superseded(w: Write, memory_id: int, by: int | None) -> None:
    w.conn.execute("update memories set superseded_by = ? where id = ?", (by, memory_id))


def link_source(w: Write, memory_id: int, message_id: int) -> None:
    w.conn.execute(
        "insert or ignore into memory_sources (memory_id, message_id) values (?, ?)", (memory_id, message_id)
    )


def veto(w: Write, line: str, created_at: str | None) -> None:
    w.conn.execute(
        "insert or ignore into profile_vetoes (line, created_at) values (?, ?)", (line, created_at)
    )
