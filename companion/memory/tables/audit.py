"""The audit log: every change to a memory, a message or the profile, with its reason. Written only by the
tables functions that make the change, in the same transaction."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from companion import timeutil
from companion.memory.db.store import Store


@dataclass(frozen=True)
class Change:
    at: str
    action: str
    old_text: str | None
    new_text: str | None
    reason: str


def record(
    conn: sqlite3.Connection,
    action: str,
    target: str,
    target_id: int | None,
    old_text: str | None = None,
    new_text: str | None = None,
    reason: str = "",
) -> None:
    conn.execute(
        "insert into audit (at, action, target, target_id, old_text, new_text, reason)"
        " values (?, ?, ?, ?, ?, ?, ?)",
        (timeutil.now_iso(), action, target, target_id, old_text, new_text, reason),
    )


def history(store: Store, target: str, target_id: int) -> list[Change]:
    """Every change to one memory or message, oldest first."""
    rows = store.conn.execute(
        "select at, action, old_text, new_text, reason from audit where target = ? and target_id = ?"
        " order by id",
        (target, target_id),
    )
    return [Change(r[0], r[1], r[2], r[3], r[4] or "") for r in rows]


def forget_text(conn: sqlite3.Connection, target: str, ids: list[int]) -> None:
    """What forgotten items said is taken out of their history (the entries stay: something was forgotten)."""
    marks = ",".join("?" * len(ids))
    conn.execute(
        f"update audit set old_text = null, new_text = null where target = ? and target_id in ({marks})",
        (target, *ids),
    )
