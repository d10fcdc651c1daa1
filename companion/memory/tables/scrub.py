"""Taking text out of the file for good: the words `forget --matching` was given, from every string that keeps
them once what said them is gone, and the deleted pages themselves (FTS segments merged, WAL truncated, with
`secure_delete` on every connection)."""

from __future__ import annotations

import contextlib
import sqlite3

from companion.memory.db.store import SQL_OPERATIONAL_ERRORS, Store
from companion.memory.tables import personas, profile
from companion.memory.tables.words import SOMEONE, Words, register


def words_everywhere(conn: sqlite3.Connection, words: Words) -> None:
    """Remove `words` from every string that could still hold them once the messages and memories that say
    them are gone (inside the forget's transaction): the change history, session titles, external ids, meta
    values, speakers' names (the speaker becomes "someone"), persona cards and their lorebooks (a persona
    called so becomes "Companion"), the profile and its vetoes."""
    register(conn)

    def where(column: str) -> tuple[str, tuple[str, int]]:
        return words.sql(column)

    for column in ("old_text", "new_text"):
        clause, args = where(column)
        conn.execute(f"update audit set {column} = null where {clause}", args)
    clause, args = where("reason")
    conn.execute(f"update audit set reason = '' where {clause}", args)
    clause, args = where("title")
    for session_id, title in conn.execute(f"select id, title from sessions where {clause}", args).fetchall():
        conn.execute("update sessions set title = ? where id = ?", (words.redact(title), session_id))
    clause, args = where("external_id")
    conn.execute(f"update sessions set external_id = 'forgotten-' || id where {clause}", args)
    clause, args = where("source_id")
    conn.execute(f"update messages set source_id = null where {clause}", args)
    clause, args = where("speaker")
    conn.execute(
        f"update messages set speaker = ? where {clause}", (SOMEONE, *args)
    )  # the name is the person
    clause, args = where("value")
    for key, value in conn.execute(f"select key, value from meta where {clause}", args).fetchall():
        conn.execute("update meta set value = ? where key = ?", (words.redact(value), key))
    personas.scrub(conn, words)
    profile.scrub(conn, words)


def pages(store: Store) -> None:
    """Make deleted text unrecoverable from the files: merge the FTS indexes (old segments are freed and zeroed
    by secure_delete) and checkpoint the WAL into the database, truncating it."""
    with store.transaction() as conn:
        conn.execute("insert into messages_fts(messages_fts) values ('optimize')")
        conn.execute("insert into memories_fts(memories_fts) values ('optimize')")
    with contextlib.suppress(*SQL_OPERATIONAL_ERRORS):
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
