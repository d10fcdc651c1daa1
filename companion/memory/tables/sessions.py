"""The sessions table: one row per conversation (its persona, when it started and ended, the branch it
continues)."""

from __future__ import annotations

import sqlite3

from companion import timeutil
from companion.memory.db.store import Store
from companion.memory.records import SessionActivity, SessionOverview, new_uid
from companion.memory.tables import Write


def new(
    store: Store,
    title: str = "",
    persona: str = "",
    parent_id: int | None = None,
    branch_at: int | None = None,
    started_at: str | None = None,
    conn: sqlite3.Connection | None = None,
) -> int:
    """A new session (in the caller's transaction `conn`, when it passes one)."""
    with store.writing(conn) as conn:
        cursor = conn.execute(
            "insert into sessions (title, persona, started_at, parent_id, branch_at, uid)"
            " values (?, ?, ?, ?, ?, ?)",
            (
                title,
                persona,
                timeutil.normalize(started_at) or timeutil.now_iso(),
                parent_id,
                branch_at,
                new_uid(),
            ),
        )
        return int(cursor.lastrowid or 0)


def close(store: Store, session_id: int) -> None:
    """The conversation is over: an empty session (nothing said, no branch of it) is removed; one with
    messages is marked ended, so consolidation may take it."""
    with store.transaction() as conn:
        conn.execute(
            "delete from sessions where id = ? and not exists (select 1 from messages where session_id = ?)"
            " and not exists (select 1 from sessions where parent_id = ?)",
            (session_id, session_id, session_id),
        )
        conn.execute(
            "update sessions set ended_at = ? where id = ? and ended_at is null",
            (timeutil.now_iso(), session_id),
        )


def set_persona(store: Store, session_id: int, persona: str) -> None:
    """The conversation goes on with another persona (switched mid-conversation): its turns from now on, and
    what consolidation learns from it, are that persona's."""
    with store.transaction() as conn:
        conn.execute("update sessions set persona = ? where id = ?", (persona, session_id))


def exists(store: Store, session_id: int) -> bool:
    return store.conn.execute("select 1 from sessions where id = ?", (session_id,)).fetchone() is not None


def persona(store: Store, session_id: int) -> str:
    row = store.conn.execute("select persona from sessions where id = ?", (session_id,)).fetchone()
    return str(row[0] or "") if row else ""


def lineage(store: Store, session_id: int) -> list[int]:
    """A session and the sessions it branched from, nearest first."""
    chain = [session_id]
    while True:
        row = store.conn.execute("select parent_id from sessions where id = ?", (chain[-1],)).fetchone()
        if not row or row[0] is None or row[0] in chain:
            return chain
        chain.append(int(row[0]))


def overview(store: Store, limit: int) -> list[SessionOverview]:
    """The newest sessions first, each with its message count and latest summary."""
    rows = store.conn.execute(
        "select s.id, s.started_at, s.parent_id, s.persona,"
        " (select count(*) from messages m where m.session_id = s.id and m.replaced = 0),"
        " (select text from memories k where k.session_id = s.id and k.kind = 'summary'"
        "  order by k.id desc limit 1)"
        " from sessions s order by s.id desc limit ?",
        (limit,),
    ).fetchall()
    return [SessionOverview(r[0], r[1], r[2], r[3] or "", r[4], r[5]) for r in rows]


def summary(store: Store, session_id: int) -> str | None:
    row = store.conn.execute(
        "select text from memories where session_id = ? and kind = 'summary' order by id desc limit 1",
        (session_id,),
    ).fetchone()
    return row[0] if row else None


def with_messages(store: Store) -> list[SessionActivity]:
    """Every session that holds messages (replaced replies aside), oldest first: what consolidation looks
    through."""
    rows = store.conn.execute(
        "select s.id, s.ended_at, max(m.created_at), max(m.id) from sessions s join messages m"
        " on m.session_id = s.id where s.off_record = 0 and m.replaced = 0 group by s.id order by s.id"
    ).fetchall()
    return [SessionActivity(int(r[0]), r[1], str(r[2]), int(r[3])) for r in rows]


def add_imported(
    w: Write, name: str, started_at: str, ended_at: str, title: str = "", persona: str = ""
) -> int:
    """A session of an imported conversation log, known by its name in the file (`external_id`); its title
    and the other side's name (ChatGPT) where the file has them."""
    cursor = w.conn.execute(
        "insert into sessions (title, persona, started_at, ended_at, external_id, uid) values (?, ?, ?, ?, ?, ?)",
        (title or name, persona, started_at, ended_at, name, new_uid()),
    )
    return int(cursor.lastrowid or 0)


def end_at_last_message(w: Write, session_ids: list[int]) -> None:
    w.conn.executemany(
        "update sessions set ended_at = (select max(created_at) from messages m where m.session_id = sessions.id)"
        " where id = ?",
        [(sid,) for sid in session_ids],
    )


def by_external_id(store: Store, name: str) -> int | None:
    row = store.conn.execute("select min(id) from sessions where external_id = ?", (name,)).fetchone()
    return row[0] if row else None


def for_import(store: Store, name: str) -> int | None:
    """The session a conversation log's session name stands for: one imported under that name, or (a name
    `companion-UID`, how a JSONL export names a chat of this app) the chat itself, so importing an export into
    its own file adds nothing."""
    found = by_external_id(store, name)
    if found is None and name.startswith("companion-"):
        row = store.conn.execute(
            "select min(id) from sessions where uid = ? and external_id is null",
            (name.removeprefix("companion-"),),
        ).fetchone()
        found = row[0] if row else None
    return found
