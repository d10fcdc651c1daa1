"""The messages table: every message, kept — the episodic log everything else is derived from. A message is
committed before the model is asked anything, so a crash mid-reply never loses what the user said."""

from __future__ import annotations

import sqlite3

from companion import timeutil
from companion.memory.db.store import Store
from companion.memory.recall.timewords import event_time
from companion.memory.records import (
    READ_WITH,
    Message,
    MessageText,
    Said,
    Sent,
    TurnBefore,
    check_length,
    context_text,
    keep_turn,
    message_keys,
)
from companion.memory.tables import Write, audit, chunks, marks


def turns_before(conn: object, session_id: int, before_id: int | None = None) -> list[TurnBefore]:
    """The last turns (`READ_WITH` of them, oldest first) of a session's conversation, or the last before
    `before_id`: a replaced (regenerated) reply is not part of it. Without vectors."""
    clause, params = ("and id < ?", (session_id, before_id)) if before_id is not None else ("", (session_id,))
    rows = conn.execute(  # type: ignore[attr-defined]
        f"select id, text, role, speaker, created_at from messages where session_id = ? and replaced = 0 {clause}"
        f" order by id desc limit {READ_WITH}",
        params,
    ).fetchall()
    return [TurnBefore(r[0], r[1], None, r[2], r[3], r[4]) for r in reversed(rows)]


def context_of(conn: object, session_id: int, sent: Sent, before_id: int | None = None) -> str:
    """The text recall reads a message with (`records.context_text`): the message `sent` in the session (the
    last there, or the last before `before_id`)."""
    return context_text(turns_before(conn, session_id, before_id), sent)


def sessions_after(store: Store, after: int, limit: int) -> list[int]:
    """The next `limit` sessions (by id) after `after` that hold messages."""
    rows = store.conn.execute(
        "select distinct session_id from messages where session_id > ? order by session_id limit ?",
        (after, limit),
    )
    return [r[0] for r in rows]


def stale_contexts(conn: sqlite3.Connection, session_ids: list[int]) -> dict[int, str]:
    """The messages of these sessions whose stored context is not the one `records.read_with` gives (a file
    stored under an earlier rule), each with the context it gets: the same walk as `context_of` at every
    message (a replaced reply is no part of what follows it)."""
    out: dict[int, str] = {}
    for session_id in session_ids:
        earlier: list[TurnBefore] = []
        for row in conn.execute(
            "select id, text, role, speaker, created_at, replaced, context from messages where session_id = ?"
            " order by id",
            (session_id,),
        ):
            turn = TurnBefore(row[0], row[1], None, row[2], row[3], row[4])
            context = context_text(earlier, turn)
            if context != row[6]:
                out[row[0]] = context
            if not row[5]:
                keep_turn(earlier, turn)
    return out


def set_contexts(w: Write, contexts: dict[int, str]) -> None:
    """Messages read again (`stale_contexts`): their contexts (the FTS index follows by its triggers)."""
    w.conn.executemany("update messages set context = ? where id = ?", [(c, i) for i, c in contexts.items()])


def add(
    store: Store,
    session_id: int,
    role: str,
    text: str,
    *,
    speaker: str = "",
    incomplete: bool = False,
    token_count: int | None = None,
    model: str | None = None,
    created_at: str | None = None,
    source_id: str | None = None,
    reasoning: str | None = None,
    conn: sqlite3.Connection | None = None,
) -> int:
    """Insert one message and commit it before returning (or in the caller's transaction `conn`). `reasoning`
    is kept beside the text (a reasoning model's, when the user keeps it), never as part of it."""
    check_length(text)
    with store.writing(conn) as conn:
        said_at = timeutil.normalize(created_at) or timeutil.now_iso()
        cursor = conn.execute(
            "insert into messages (session_id, role, speaker, text, created_at, source_id, token_count,"
            " incomplete, model, context, event_time, reasoning) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_id,
                role,
                speaker,
                text,
                said_at,
                source_id,
                token_count,
                int(incomplete),
                model,
                context_of(conn, session_id, TurnBefore(0, text, None, role, speaker, said_at)),
                event_time(text, said_at),
                reasoning or None,
            ),
        )
        return int(cursor.lastrowid or 0)


def update(
    store: Store,
    message_id: int,
    text: str,
    *,
    incomplete: bool,
    token_count: int | None = None,
    model: str | None = None,
    reasoning: str | None = None,
) -> None:
    """Rewrite a reply that was saved while being written (its text so far), keeping its place."""
    with store.transaction() as conn:
        row = conn.execute(
            "select session_id, created_at, role, speaker from messages where id = ?", (message_id,)
        ).fetchone()
        if row is None:
            return
        conn.execute(
            "update messages set text = ?, context = ?, incomplete = ?, token_count = coalesce(?, token_count),"
            " model = coalesce(?, model), event_time = ?, reasoning = coalesce(?, reasoning) where id = ?",
            (
                text,
                context_of(
                    conn, row[0], TurnBefore(message_id, text, None, row[2], row[3], row[1]), message_id
                ),
                int(incomplete),
                token_count,
                model,
                event_time(text, row[1]),
                reasoning or None,
                message_id,
            ),
        )


def mark_replaced(store: Store, message_id: int) -> None:
    """A regenerated reply stays in the file, out of the conversation and out of recall (archived)."""
    with store.transaction() as conn:
        conn.execute("update messages set replaced = 1, archived = 1 where id = ?", (message_id,))
        audit.record(conn, "replace", "message", message_id, None, None, "regenerated")


def get(store: Store, message_id: int) -> Message | None:
    rows = list(store.db.query("select * from messages where id = ?", [message_id]))
    return Message.from_row(rows[0]) if rows else None


def conversation(store: Store, session_id: int) -> list[Message]:
    """What a session's conversation reads as: a branch continues its parent's messages before the branch
    point; replaced replies (regenerated) are left out."""
    row = store.conn.execute(
        "select parent_id, branch_at from sessions where id = ?", (session_id,)
    ).fetchone()
    before: list[Message] = []
    if row and row[0] is not None and row[0] != session_id:
        before = [m for m in conversation(store, int(row[0])) if row[1] is None or m.id < row[1]]
    rows = store.db.query(
        "select * from messages where session_id = ? and replaced = 0 order by id", [session_id]
    )
    return before + [Message.from_row(r) for r in rows]


def said(store: Store, session_id: int, char: str, user: str = "You") -> list[Said]:
    """A session's own turns, in order, as upkeep reads them (replaced replies are not part of it; nor, in a
    branch's parent, the turns after the edited message, which the user chose to replace)."""
    cut = store.conn.execute(
        "select min(branch_at) from sessions where parent_id = ? and branch_at is not null", (session_id,)
    ).fetchone()[0]
    clause, params = ("and id < ?", (session_id, cut)) if cut is not None else ("", (session_id,))
    rows = store.conn.execute(
        "select id, speaker, role, text, created_at from messages where session_id = ? and replaced = 0"
        f" {clause} order by id",
        params,
    ).fetchall()
    return [Said(r[0], r[1] or (user if r[2] == "user" else char), r[2], r[3], r[4]) for r in rows]


def existing(store: Store, message_ids: list[int]) -> set[int]:
    """Which of these messages are still in the file (the others were forgotten)."""
    found: set[int] = set()
    for chunk in chunks(sorted(set(message_ids))):
        found |= {
            r[0] for r in store.conn.execute(f"select id from messages where id in ({marks(chunk)})", chunk)
        }
    return found


def neighbours(store: Store, message_id: int, before: int = 1, after: int = 1) -> list[Message]:
    """The turns around a message in its session (not the message itself), in order."""
    row = store.conn.execute("select session_id from messages where id = ?", (message_id,)).fetchone()
    if not row:
        return []
    earlier = store.db.query(
        "select * from messages where session_id = ? and id < ? and replaced = 0 order by id desc limit ?",
        [row[0], message_id, before],
    )
    later = store.db.query(
        "select * from messages where session_id = ? and id > ? and replaced = 0 order by id limit ?",
        [row[0], message_id, after],
    )
    return [*reversed([Message.from_row(r) for r in earlier]), *(Message.from_row(r) for r in later)]


def earlier(store: Store, exclude_session: int, before_id: int | None, limit: int) -> list[Message]:
    """A page of messages of other sessions said before `before_id` (newest page first, oldest first within
    it): the chat screen pages them in above the conversation as the user scrolls up."""
    clause, params = "", [exclude_session]
    if before_id is not None:
        clause = " and id < ?"
        params.append(before_id)
    rows = store.db.query(
        f"select * from messages where session_id != ? and replaced = 0{clause} order by id desc limit ?",
        [*params, limit],
    )
    return list(reversed([Message.from_row(r) for r in rows]))


def page(store: Store, session_id: int | None = None, limit: int = 200) -> list[Message]:
    """Messages in the order they were said, of one session or all."""
    where, params = ("where session_id = ?", [session_id]) if session_id is not None else ("", [])
    rows = store.db.query(f"select * from messages {where} order by id limit ?", [*params, limit])
    return [Message.from_row(r) for r in rows]


def derived_from(store: Store, message_id: int) -> list[int]:
    """The memories drawn from a message (its provenance, read the other way)."""
    rows = store.conn.execute(
        "select memory_id from memory_sources where message_id = ? order by memory_id", (message_id,)
    )
    return [r[0] for r in rows]


def has_recallable(store: Store, outside_session: int) -> bool:
    """Anything to recall outside this conversation? (Saves loading the embedder on a first chat.)"""
    row = store.conn.execute(
        "select exists(select 1 from messages where session_id != ? and archived = 0)"
        " or exists(select 1 from memories)",
        (outside_session,),
    ).fetchone()
    return bool(row[0])


def archived(store: Store, message_id: int) -> bool | None:
    """Whether a message is archived (None: there is no such message)."""
    row = store.conn.execute("select archived from messages where id = ?", (message_id,)).fetchone()
    return None if row is None else bool(row[0])


def restore(w: Write, message_id: int) -> None:
    """An archived message comes back; its vectors come with the caller's `vectors.put_messages`."""
    w.conn.execute("update messages set archived = 0 where id = ?", (message_id,))
    audit.record(w.conn, "restore", "message", message_id, None, None, "restored by the user")


def archive(w: Write, message_ids: list[int], reason: str) -> None:
    """Messages leave recall (out of the index; kept in the file, restorable)."""
    for chunk in chunks(message_ids):
        w.conn.execute(f"update messages set archived = 1 where id in ({marks(chunk)})", chunk)
        w.conn.execute(f"delete from vectors where kind = 'message' and item_id in ({marks(chunk)})", chunk)
    w.change.remove(message_keys(message_ids))
    audit.record(w.conn, "archive", "messages", None, None, None, f"{len(message_ids)} messages {reason}")


def fading(store: Store, said_before: str) -> list[int]:
    """Messages said before a time that are not archived and that no pinned memory comes from."""
    rows = store.conn.execute(
        "select id from messages where archived = 0 and created_at < ? and id not in (select s.message_id"
        " from memory_sources s join memories m on m.id = s.memory_id where m.pinned = 1)",
        (said_before,),
    )
    return [r[0] for r in rows]


def texts(store: Store, message_ids: list[int]) -> list[MessageText]:
    """Messages' texts, in conversation order (session, then id), with who sent them when and the message
    before each in its conversation: what their vectors are made from."""
    out: list[MessageText] = []
    for chunk in chunks(sorted(message_ids)):
        rows = store.conn.execute(
            "select m.id, m.session_id, m.text, m.role, m.speaker, m.created_at, (select max(p.id) from messages p"
            " where p.session_id = m.session_id and p.id < m.id and p.replaced = 0)"
            f" from messages m where m.id in ({marks(chunk)})",
            chunk,
        )
        out += [MessageText(*r) for r in rows]
    out.sort(key=lambda m: (m.session_id, m.id))
    return out


def add_imported(
    w: Write,
    session_id: int,
    role: str,
    speaker: str,
    text: str,
    time: str,
    source_id: str | None,
    context: str,
) -> int:
    """A message of an imported conversation log (its vectors come with the caller's `vectors.put`)."""
    check_length(text)
    cursor = w.conn.execute(
        "insert into messages (session_id, role, speaker, text, created_at, source_id, context, event_time)"
        " values (?, ?, ?, ?, ?, ?, ?, ?)",
        (session_id, role, speaker, text, time, source_id, context, event_time(text, time)),
    )
    return int(cursor.lastrowid or 0)
