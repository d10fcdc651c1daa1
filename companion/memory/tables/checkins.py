"""The check-ins table: when the companion reached out about an open thread, in which session, and whether the
desktop was told. Ids and times only — the check-in's words are the session's first message.

A check-in is made in one transaction: its session, its message, this row, and the thread marked asked (so it
is asked once). Two processes deciding at once (the app in the background and `maintain` from a timer) cannot
both make one: the rules are read again inside the write (`made_since`), which waits for the other.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from companion import timeutil
from companion.memory.db.store import Store
from companion.memory.tables import Write, audit, messages, sessions


@dataclass(frozen=True)
class Checkin:
    id: int
    memory_id: int | None  # the thread it asks about
    session_id: int
    message_id: int | None
    made_at: str
    notified_at: str | None


def _row(values: tuple[object, ...]) -> Checkin:
    i, memory_id, session_id, message_id, made_at, notified_at = values
    return Checkin(
        int(i),  # type: ignore[call-overload]
        None if memory_id is None else int(memory_id),  # type: ignore[call-overload]
        int(session_id),  # type: ignore[call-overload]
        None if message_id is None else int(message_id),  # type: ignore[call-overload]
        str(made_at),
        None if notified_at is None else str(notified_at),
    )


COLUMNS = "id, memory_id, session_id, message_id, made_at, notified_at"


def make(w: Write, store: Store, memory_id: int, persona: str, text: str, at: str) -> Checkin:
    """The check-in's session with its one message (the companion's), its row, and the thread marked asked."""
    session_id = sessions.new(store, persona=persona, started_at=at, conn=w.conn)
    message_id = messages.add(
        store, session_id, "assistant", text, speaker=persona, created_at=at, conn=w.conn
    )
    cursor = w.conn.execute(
        "insert into checkins (memory_id, session_id, message_id, made_at) values (?, ?, ?, ?)",
        (memory_id, session_id, message_id, timeutil.normalize(at) or at),
    )
    w.conn.execute(
        "update memories set thread = 'asked', updated_at = ? where id = ? and thread = 'open'",
        (timeutil.now_iso(), memory_id),
    )
    audit.record(w.conn, "update", "memory", memory_id, None, None, "thread asked about in a check-in")
    return Checkin(int(cursor.lastrowid or 0), memory_id, session_id, message_id, at, None)


def mark_notified(store: Store, checkin_id: int, at: str) -> None:
    with store.transaction() as conn:
        conn.execute("update checkins set notified_at = ? where id = ?", (timeutil.normalize(at), checkin_id))


# -- reading --------------------------------------------------------------------------------------------------
def made_since(store: Store, since: str, conn: sqlite3.Connection | None = None) -> list[Checkin]:
    """The check-ins made since a time (newest first), read in the caller's transaction when it passes one."""
    rows = (conn or store.conn).execute(
        f"select {COLUMNS} from checkins where made_at >= ? order by made_at desc, id desc",
        (timeutil.normalize(since) or since,),
    )
    return [_row(r) for r in rows]


def of_session(store: Store, session_id: int) -> Checkin | None:
    row = store.conn.execute(f"select {COLUMNS} from checkins where session_id = ?", (session_id,)).fetchone()
    return _row(row) if row else None


def waiting(store: Store, since: str) -> Checkin | None:
    """The newest check-in made since `since` that the user has not answered yet (its session holds no
    message of theirs, and its message is still there): the app opens on it."""
    row = store.conn.execute(
        f"select {', '.join('c.' + c for c in COLUMNS.split(', '))} from checkins c"
        " join messages m on m.id = c.message_id"
        " where c.made_at >= ? and not exists"
        " (select 1 from messages u where u.session_id = c.session_id and u.role = 'user')"
        " order by c.made_at desc, c.id desc limit 1",
        (timeutil.normalize(since) or since,),
    ).fetchone()
    return _row(row) if row else None
