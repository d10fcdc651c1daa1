"""The meta table: small named values — upkeep's progress markers and job states, the file's settings."""

from __future__ import annotations

import sqlite3

from companion.memory.db.store import Store


def get(store: Store, key: str) -> str | None:
    return read(store.conn, key)


def put(store: Store, key: str, value: str) -> None:
    with store.transaction() as conn:
        write(conn, key, value)


def read(conn: sqlite3.Connection, key: str) -> str | None:
    """A value, read through a write transaction's connection (a marker claimed in that transaction)."""
    row = conn.execute("select value from meta where key = ?", (key,)).fetchone()
    return row[0] if row else None


def write(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("insert or replace into meta (key, value) values (?, ?)", (key, value))
