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


ID_TABLES = ("memories",)


def next_id(conn: sqlite3.Connection, table: str) -> int:
    """The id a new row of `table` gets: above every id it ever gave, so an id a forget freed is never given
    again ("memory 12" always means one memory; a stale vector key never names a newer row). SQLite reuses the
    highest rowid once its row is deleted; the highest id given is kept here, in the caller's transaction."""
    assert table in ID_TABLES
    top = int(conn.execute(f"select coalesce(max(id), 0) from {table}").fetchone()[0])
    key = f"{table}.last_id"
    given = int(read(conn, key) or 0)
    new = max(top, given) + 1
    write(conn, key, str(new))
    return new
