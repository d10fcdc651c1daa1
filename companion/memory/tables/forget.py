"""The user's forget: messages, memories and sessions deleted for good, with everything derived only from them,
in one transaction. What has other sources stays and is re-linked; the turn after a forgotten one has its
context rebuilt without it; the audit log keeps that something was forgotten, never what."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from companion import timeutil
from companion.memory.db.store import Store
from companion.memory.records import VARIANT_MEMORY, context_text, message_keys, vector_key
from companion.memory.tables import Write, audit, chunks, marks, scrub, vectors


@dataclass
class Forgotten:
    messages: int = 0
    memories: int = 0
    sessions: int = 0
    rebuilt: list[int] = field(default_factory=list)  # messages whose context changed: they are embedded anew


def select_messages(
    store: Store,
    *,
    session: int | None = None,
    before: datetime | None = None,
    matching: str | None = None,
    conn: Any = None,
) -> list[int]:
    clauses: list[str] = []
    params: list[Any] = []
    if session is not None:
        clauses.append("session_id = ?")
        params.append(session)
    if before is not None:
        clauses.append("created_at < ?")
        params.append(timeutil.iso(before))
    if matching:  # a kept reasoning is part of what the user forgets
        clauses.append("instr(lower(text || ' ' || coalesce(reasoning, '')), lower(?)) > 0")
        params.append(matching)
    if not clauses:
        return []
    sql = f"select id from messages where {' and '.join(clauses)} order by id"
    return [r[0] for r in (conn or store.conn).execute(sql, params)]


def select_memories(
    store: Store, *, before: datetime | None = None, matching: str | None = None, conn: Any = None
) -> list[int]:
    clauses: list[str] = []
    params: list[Any] = []
    if before is not None:
        clauses.append("created_at < ?")
        params.append(timeutil.iso(before))
    if matching:
        clauses.append("instr(lower(text), lower(?)) > 0")
        params.append(matching)
    if not clauses:
        return []
    return [
        r[0]
        for r in (conn or store.conn).execute(
            f"select id from memories where {' and '.join(clauses)}", params
        )
    ]


def forget(
    w: Write,
    *,
    messages: list[int],
    memories: list[int],
    sessions: list[int],
    words: str | None = None,
) -> Forgotten:
    conn = w.conn
    message_ids = set(messages)
    session_ids = sorted(set(sessions))
    for chunk in chunks(session_ids):
        message_ids |= {
            r[0] for r in conn.execute(f"select id from messages where session_id in ({marks(chunk)})", chunk)
        }
    message_ids_sorted = sorted(message_ids)
    memory_ids = set(memories)
    for chunk in chunks(message_ids_sorted):
        linked = conn.execute(
            f"select distinct memory_id from memory_sources where message_id in ({marks(chunk)})", chunk
        ).fetchall()
        for (memory_id,) in linked:
            others = conn.execute(
                f"select count(*) from memory_sources where memory_id = ? and message_id not in ({marks(chunk)})",
                (memory_id, *chunk),
            ).fetchone()[0]
            if others == 0:
                memory_ids.add(memory_id)
            else:
                audit.record(conn, "relink", "memory", memory_id, None, None, "a source was forgotten")
        conn.execute(f"delete from memory_sources where message_id in ({marks(chunk)})", chunk)
    for chunk in chunks(sorted(memory_ids)):
        conn.execute(f"delete from memory_sources where memory_id in ({marks(chunk)})", chunk)
        conn.execute(
            f"update memories set superseded_by = null where superseded_by in ({marks(chunk)})", chunk
        )
        conn.execute(f"delete from memories where id in ({marks(chunk)})", chunk)
        audit.forget_text(conn, "memory", chunk)
        vectors.remove(w, [vector_key(i, VARIANT_MEMORY) for i in chunk])
        for memory_id in chunk:
            audit.record(conn, "forget", "memory", memory_id, None, None, "forgotten by the user")
    result = Forgotten(len(message_ids), len(memory_ids), len(session_ids))
    for chunk in chunks(message_ids_sorted):
        # The turn after a forgotten one carries it in its context: rebuild that context without it.
        followers = conn.execute(
            "select n.id, n.session_id, n.text from messages n where n.id in (select (select min(id) from"
            " messages x where x.session_id = m.session_id and x.id > m.id) from messages m where m.id in"
            f" ({marks(chunk)}))",
            chunk,
        ).fetchall()
        vectors.remove(w, message_keys(chunk))
        conn.execute(f"delete from messages where id in ({marks(chunk)})", chunk)
        for follower_id, session_id, text in followers:
            if follower_id in message_ids:
                continue
            previous = conn.execute(
                "select text from messages where session_id = ? and id < ? and replaced = 0 order by id desc limit 1",
                (session_id, follower_id),
            ).fetchone()
            conn.execute(
                "update messages set context = ? where id = ?",
                (context_text(previous[0] if previous else None, text), follower_id),
            )
            result.rebuilt.append(follower_id)
    if message_ids:
        audit.record(
            conn, "forget", "messages", None, None, None, f"{len(message_ids)} messages forgotten by the user"
        )
    for chunk in chunks(session_ids):
        conn.execute(f"delete from sessions where id in ({marks(chunk)})", chunk)
    vectors.remove_orphans(w)
    if words:
        scrub.words_everywhere(conn, words)
    return result
