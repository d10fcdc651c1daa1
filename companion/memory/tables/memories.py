"""The memories table (facts, summaries, digests, notes, lore; threads among the facts) and its provenance
(`memory_sources`). Every move of a memory into or out of recall is one function here: the row, its audit line
and its vector in the caller's transaction, the index's part recorded in `Write.change`."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from companion import timeutil
from companion.errors import CompanionError
from companion.memory.db.store import Store
from companion.memory.records import MEMORY_KINDS, VARIANT_MEMORY, Memory, Message, new_uid, vector_key
from companion.memory.tables import Write, audit, chunks, marks, meta, vectors

# A derived memory in use: not archived by forgetting, not superseded by a newer one. The one definition.
ACTIVE = "archived = 0 and valid_to is null"


def _vector(w: Write, memory_id: int, vector: np.ndarray | None, model: str) -> None:
    if vector is not None:
        vectors.put(w, "memory", [vector_key(memory_id, VARIANT_MEMORY)], np.asarray([vector]), model)


def _leaves_recall(w: Write, memory_ids: list[int]) -> None:
    vectors.remove(w, [vector_key(i, VARIANT_MEMORY) for i in memory_ids])


def add(
    w: Write,
    kind: str,
    text: str,
    *,
    sources: list[int] | None = None,
    event_time: str | None = None,
    importance: float = 0.5,
    reason: str = "",
    session_id: int | None = None,
    period: str | None = None,
    thread: str | None = None,
    pinned: bool = False,
    persona: str = "",
    vector: np.ndarray | None = None,
    model: str = "",
) -> int:
    """A new derived memory with its provenance, its audit entry and (given) its vector."""
    if kind not in MEMORY_KINDS:
        raise CompanionError(f"'{kind}' is not a memory kind; use one of: {', '.join(MEMORY_KINDS)}.")
    event_time = timeutil.normalize(event_time)
    now = timeutil.now_iso()
    cursor = w.conn.execute(
        "insert into memories (id, kind, text, event_time, created_at, updated_at, importance, strength,"
        " valid_from, session_id, period, uid, thread, pinned, persona)"
        " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            meta.next_id(w.conn, "memories"),
            kind,
            text,
            event_time,
            now,
            now,
            importance,
            max(importance, 0.1),
            event_time or now,
            session_id,
            period,
            new_uid(),
            thread,
            int(pinned),
            persona,
        ),
    )
    memory_id = int(cursor.lastrowid or 0)
    add_sources(w, memory_id, sources or [])
    audit.record(w.conn, "add", "memory", memory_id, None, text, reason)
    _vector(w, memory_id, vector, model)
    return memory_id


def add_sources(w: Write, memory_id: int, message_ids: list[int]) -> None:
    w.conn.executemany(
        "insert or ignore into memory_sources (memory_id, message_id) values (?, ?)",
        [(memory_id, m) for m in message_ids],
    )


def _text(w: Write, memory_id: int) -> str | None:
    row = w.conn.execute("select text from memories where id = ?", (memory_id,)).fetchone()
    return row[0] if row else None


def update_text(
    w: Write,
    memory_id: int,
    text: str,
    reason: str,
    *,
    sources: list[int] | None = None,
    vector: np.ndarray | None = None,
    model: str = "",
) -> None:
    """A memory says something new (the user's edit; more detail learned): its old text stays in its history,
    its vector is replaced when it is in recall."""
    before = _text(w, memory_id)
    w.conn.execute(
        "update memories set text = ?, updated_at = ? where id = ?", (text, timeutil.now_iso(), memory_id)
    )
    add_sources(w, memory_id, sources or [])
    audit.record(w.conn, "update", "memory", memory_id, before, text, reason)
    _vector(w, memory_id, vector, model)


def supersede(
    w: Write, memory_id: int, reason: str, *, by: int | None = None, text: str | None = None
) -> None:
    """A memory is replaced (a contradicting fact, a session summarized anew): it stays in the file and its
    history, out of recall."""
    stamp = timeutil.now_iso()
    before = _text(w, memory_id)
    w.conn.execute(
        "update memories set valid_to = ?, superseded_by = coalesce(?, superseded_by), updated_at = ?"
        " where id = ?",
        (stamp, by, stamp, memory_id),
    )
    audit.record(w.conn, "supersede", "memory", memory_id, before if by else None, text, reason)
    _leaves_recall(w, [memory_id])


def archive(w: Write, memory_id: int, reason: str) -> bool:
    """Forgetting's archive: out of recall, kept in the file, restorable. False when it was already."""
    before = _text(w, memory_id)
    cursor = w.conn.execute(
        "update memories set archived = 1, updated_at = ? where id = ? and archived = 0",
        (timeutil.now_iso(), memory_id),
    )
    if not cursor.rowcount:
        return False
    audit.record(w.conn, "archive", "memory", memory_id, before, before, reason)
    _leaves_recall(w, [memory_id])
    return True


def restore(w: Write, memory_id: int, vector: np.ndarray | None, model: str) -> None:
    """An archived memory back in recall, as strong as a fresh one."""
    before = _text(w, memory_id)
    now = timeutil.now_iso()
    w.conn.execute(
        "update memories set archived = 0, strength = max(strength, 1.0), last_recalled_at = ?,"
        " updated_at = ? where id = ?",
        (now, now, memory_id),
    )
    audit.record(w.conn, "restore", "memory", memory_id, None, before, "restored by the user")
    _vector(w, memory_id, vector, model)


def pin(w: Write, memory_id: int, pinned: bool) -> None:
    text = _text(w, memory_id)
    w.conn.execute(
        "update memories set pinned = ?, updated_at = ? where id = ?",
        (int(pinned), timeutil.now_iso(), memory_id),
    )
    audit.record(w.conn, "pin" if pinned else "unpin", "memory", memory_id, text, text, "user")


def close_thread(w: Write, memory_id: int, reason: str) -> None:
    """An open thread (a future event the companion may ask about) is closed: asked about, or past."""
    w.conn.execute(
        "update memories set thread = 'closed', updated_at = ? where id = ?", (timeutil.now_iso(), memory_id)
    )
    audit.record(w.conn, "update", "memory", memory_id, None, None, reason)


def claim_for_persona(w: Write, session_id: int) -> None:
    """What was learned in a persona's conversation belongs to that persona (`persona.memory = separate`)."""
    w.conn.execute(
        "update memories set persona = (select persona from sessions where id = ?) where session_id = ?"
        " and persona = ''",
        (session_id, session_id),
    )


def reinforce(store: Store, memory_ids: list[int], stamp: str) -> None:
    """Recalling a memory strengthens it (spaced repetition): strength +1, last recalled = now."""
    with store.transaction() as conn:
        conn.executemany(
            "update memories set strength = strength + 1, recall_count = recall_count + 1,"
            " last_recalled_at = ? where id = ?",
            [(stamp, i) for i in memory_ids],
        )


# -- reading --------------------------------------------------------------------------------------------------
def get(store: Store, memory_id: int) -> Memory | None:
    rows = list(store.db.query("select * from memories where id = ?", [memory_id]))
    return Memory.from_row(rows[0]) if rows else None


def many(store: Store, memory_ids: list[int]) -> list[Memory]:
    out: list[Memory] = []
    for chunk in chunks(sorted(memory_ids)):
        out += [
            Memory.from_row(r)
            for r in store.db.query(f"select * from memories where id in ({marks(chunk)})", chunk)
        ]
    return out


def sources(store: Store, memory_id: int) -> list[Message]:
    rows = store.db.query(
        "select m.* from messages m join memory_sources s on s.message_id = m.id where s.memory_id = ?"
        " order by m.id",
        [memory_id],
    )
    return [Message.from_row(r) for r in rows]


def source_ids(store: Store, memory_ids: list[int]) -> list[int]:
    """The messages any of these memories come from."""
    found: set[int] = set()
    for chunk in chunks(sorted(memory_ids)):
        found |= {
            r[0]
            for r in store.conn.execute(
                f"select message_id from memory_sources where memory_id in ({marks(chunk)})", chunk
            )
        }
    return sorted(found)


def threads(
    store: Store, state: str = "open", due_before: str | None = None, limit: int = 1000
) -> list[Memory]:
    """Threads (future events the companion may ask about) by state, soonest first; with `due_before`, only
    those whose date has come by then."""
    clause, params = "", [state]
    if due_before is not None:
        clause = " and event_time <= ?"
        params.append(timeutil.normalize(due_before) or due_before)
    rows = store.db.query(
        f"select * from memories where thread = ? and {ACTIVE}{clause} order by event_time, id limit ?",
        [*params, limit],
    )
    return [Memory.from_row(r) for r in rows]


def active_of_kind(store: Store, kind: str, conn: Any = None) -> list[Memory]:
    rows = (conn or store.conn).execute(
        f"select * from memories where kind = ? and {ACTIVE} order by id", (kind,)
    )
    names = [d[0] for d in rows.description]
    return [Memory.from_row(dict(zip(names, r, strict=True))) for r in rows]


def session_summaries(w: Write, session_id: int) -> list[int]:
    """The summaries of a session still in use (summarized anew, they are superseded)."""
    rows = w.conn.execute(
        "select id from memories where kind = 'summary' and session_id = ? and valid_to is null",
        (session_id,),
    )
    return [r[0] for r in rows]


def facts_since(store: Store, since: str, limit: int = 30) -> list[Memory]:
    """Facts and notes in use learned after a time, most important first (what a profile update reads)."""
    rows = store.db.query(
        f"select * from memories where kind in ('fact', 'note') and {ACTIVE} and created_at > ?"
        " order by importance desc, id limit ?",
        [since, limit],
    )
    return [Memory.from_row(r) for r in rows]


def dated(store: Store, kind: str, period: str | None = None) -> list[Memory]:
    """Memories of a kind in use that have a date (summaries, digests of a period), by date."""
    clause, params = ("and period = ?", [kind, period]) if period else ("", [kind])
    rows = store.db.query(
        f"select * from memories where kind = ? and valid_to is null and event_time is not null {clause}"
        " order by event_time",
        params,
    )
    return [Memory.from_row(r) for r in rows]


def unpinned_in_use(store: Store) -> list[Memory]:
    rows = store.db.query(f"select * from memories where {ACTIVE} and pinned = 0")
    return [Memory.from_row(r) for r in rows]


def texts(store: Store, memory_ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for chunk in chunks(sorted(memory_ids)):
        out.update(store.conn.execute(f"select id, text from memories where id in ({marks(chunk)})", chunk))
    return out


def filtered(
    store: Store,
    kind: str | None,
    archived: bool,
    matching: str | None,
    limit: int = 200,
    offset: int = 0,
) -> list[Memory]:
    """One page of memories, oldest first; `matching` keeps those whose words start with the given ones."""
    where, params = _filter(kind, archived, matching)
    rows = store.db.query(
        f"select * from memories where {where} order by id limit ? offset ?", [*params, limit, offset]
    )
    return [Memory.from_row(r) for r in rows]


def count_filtered(store: Store, kind: str | None, archived: bool, matching: str | None) -> int:
    where, params = _filter(kind, archived, matching)
    return int(store.scalar(f"select count(*) from memories where {where}", tuple(params)))


def _filter(kind: str | None, archived: bool, matching: str | None) -> tuple[str, list[Any]]:
    if kind and kind not in MEMORY_KINDS:
        raise CompanionError(
            f"'{kind}' is not a memory kind; use one of: message, {', '.join(MEMORY_KINDS)}."
        )
    clauses = ["archived = ?"]
    params: list[Any] = [int(archived)]
    if kind:
        clauses.append("kind = ?")
        params.append(kind)
    words = re.findall(r"\w+", matching or "")
    if words:  # each word quoted for FTS5 (so no query syntax can break it), matched as a prefix
        clauses.append("id in (select rowid from memories_fts where memories_fts match ?)")
        params.append(" ".join(f'"{word}"*' for word in words))
    return " and ".join(clauses), params


def counts(store: Store) -> dict[str, Any]:
    """What `memory stats` says of the memories."""
    kinds = {
        k: n
        for k, n in store.conn.execute("select kind, count(*) from memories where archived = 0 group by kind")
    }
    return {
        "memories": kinds,
        "archived": store.scalar("select count(*) from memories where archived = 1"),
        "superseded": store.scalar("select count(*) from memories where valid_to is not null"),
        "pinned": store.scalar("select count(*) from memories where pinned = 1"),
    }
