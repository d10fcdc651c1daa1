"""The user's forget: messages, memories and sessions deleted for good, with everything derived only from them,
in one transaction. What has other sources stays and is re-linked; the turn after a forgotten one has its
context rebuilt without it; the audit log keeps that something was forgotten, never what."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from companion import timeutil
from companion.memory.db.store import Store
from companion.memory.records import (
    READ_WITH,
    VARIANT_MEMORY,
    VARIANT_MESSAGE_CONTEXT,
    TurnBefore,
    message_keys,
    sentences_of,
    vector_key,
)
from companion.memory.tables import (
    Write,
    audit,
    chunks,
    marks,
    messages,
    meta,
    personas,
    profile,
    scrub,
    vectors,
)
from companion.memory.tables.words import Words, register


@dataclass
class Forgotten:
    messages: int = 0
    memories: int = 0
    sessions: int = 0
    rebuilt: list[int] = field(default_factory=list)  # messages whose context changed: they are embedded anew


@dataclass(frozen=True)
class Criteria:
    """What the user asked to forget. The rows it names are chosen inside the forget's own transaction, so
    whatever upkeep wrote meanwhile that matches is forgotten too."""

    messages: tuple[int, ...] = ()
    memories: tuple[int, ...] = ()
    sessions: tuple[int, ...] = ()
    before: datetime | None = None
    words: Words | None = None

    @property
    def empty(self) -> bool:
        return not (self.messages or self.memories or self.sessions or self.before or self.words)


@dataclass(frozen=True)
class Selection:
    messages: list[int]
    memories: list[int]
    sessions: list[int]


@dataclass(frozen=True)
class Preview:
    """What a forget would remove, for the user to read before saying yes."""

    messages: int
    sessions: int
    memories: list[tuple[int, str, str]]  # id, kind, text
    lore: list[tuple[str, str]]  # persona, entry text
    speakers: list[str]  # names that become "someone"
    personas: list[str]  # persona names that become "Companion"

    @property
    def nothing(self) -> bool:
        return not (
            self.messages or self.sessions or self.memories or self.lore or self.speakers or self.personas
        )


def select_messages(
    store: Store,
    *,
    session: int | None = None,
    before: datetime | None = None,
    matching: str | Words | None = None,
    conn: Any = None,
) -> list[int]:
    # A kept reasoning is part of what the user forgets.
    return _ids(conn or store.conn, "messages", "text || char(10) || coalesce(reasoning, '')", before, matching,
                ("session_id = ?", session))  # fmt: skip


def select_memories(
    store: Store,
    *,
    before: datetime | None = None,
    matching: str | Words | None = None,
    conn: Any = None,
) -> list[int]:
    return _ids(conn or store.conn, "memories", "text", before, matching)


def _ids(
    conn: sqlite3.Connection,
    table: str,
    text: str,
    before: datetime | None,
    matching: str | Words | None,
    *extra: tuple[str, Any],
) -> list[int]:
    """The ids of `table`'s rows said before `before` and/or whose `text` holds the words (none: no rows)."""
    words = Words(matching) if isinstance(matching, str) else matching
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in extra:
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if before is not None:
        clauses.append("created_at < ?")
        params.append(timeutil.iso(before))
    if words is not None:
        register(conn)
        clause, args = words.sql(text)
        clauses.append(clause)
        params += args
    if not clauses:
        return []
    return [
        r[0]
        for r in conn.execute(f"select id from {table} where {' and '.join(clauses)} order by id", params)
    ]


def select(conn: sqlite3.Connection, store: Store, criteria: Criteria) -> Selection:
    """The rows `criteria` names, read on `conn` (inside the forget's transaction, or for a preview)."""
    messages = list(criteria.messages)
    memories = list(criteria.memories)
    if criteria.before is not None or criteria.words is not None:
        messages += select_messages(store, before=criteria.before, matching=criteria.words, conn=conn)
        memories += select_memories(store, before=criteria.before, matching=criteria.words, conn=conn)
    return Selection(sorted(set(messages)), sorted(set(memories)), sorted(set(criteria.sessions)))


def preview(store: Store, criteria: Criteria) -> Preview:
    """What `forget(criteria)` would remove now: the memories it deletes (their own and those derived only
    from forgotten messages), the lorebook entries and names it takes out, and how many messages."""
    conn = store.conn
    chosen = select(conn, store, criteria)
    message_ids = _with_sessions(conn, chosen.messages, chosen.sessions)
    memory_ids = set(chosen.memories) | set(_derived_only(conn, sorted(message_ids))[0])
    rows: list[tuple[int, str, str]] = []
    for chunk in chunks(sorted(memory_ids)):
        rows += conn.execute(
            f"select id, kind, text from memories where id in ({marks(chunk)}) and kind != 'lore' order by id",
            chunk,
        ).fetchall()
    lore: list[tuple[str, str]] = []
    speakers: list[str] = []
    names: list[str] = []
    if criteria.words is not None:
        words = criteria.words
        register(conn)
        clause, args = words.sql("speaker")
        speakers = [r[0] for r in conn.execute(f"select distinct speaker from messages where {clause}", args)]
        for name, card in conn.execute("select name, card from personas").fetchall():
            if words.found(name):
                names.append(name)
            lore += [(name, entry) for entry in personas.lore_holding(card, words)]
    return Preview(len(message_ids), len(chosen.sessions), rows, lore, sorted(speakers), names)


def _with_sessions(conn: sqlite3.Connection, messages: list[int], sessions: list[int]) -> set[int]:
    ids = set(messages)
    for chunk in chunks(sessions):
        ids |= {
            r[0] for r in conn.execute(f"select id from messages where session_id in ({marks(chunk)})", chunk)
        }
    return ids


def _derived_only(conn: sqlite3.Connection, message_ids: list[int]) -> tuple[list[int], list[int]]:
    """Memories whose every source is among `message_ids`, or that quote one of them (an extractive summary is
    its session's central sentences word for word), go; those with other sources too stay, re-linked."""
    forgotten = set(message_ids)
    linked: set[int] = set()
    for chunk in chunks(message_ids):
        linked |= {
            r[0]
            for r in conn.execute(
                f"select distinct memory_id from memory_sources where message_id in ({marks(chunk)})", chunk
            )
        }
    only: list[int] = []
    shared: list[int] = []
    for memory_id in sorted(linked):
        sources = {
            r[0]
            for r in conn.execute("select message_id from memory_sources where memory_id = ?", (memory_id,))
        }
        (only if sources <= forgotten or _quotes(conn, memory_id, sources & forgotten) else shared).append(
            memory_id
        )
    return only, shared


def _quotes(conn: sqlite3.Connection, memory_id: int, message_ids: set[int]) -> bool:
    """Whether a memory's text holds a sentence of one of these messages word for word."""
    text = conn.execute("select text from memories where id = ?", (memory_id,)).fetchone()[0] or ""
    for chunk in chunks(sorted(message_ids)):
        for (said,) in conn.execute(f"select text from messages where id in ({marks(chunk)})", chunk):
            if any(sentence in text for sentence in sentences_of(said or "")):
                return True
    return False


FORGETS = "forgets"  # meta: how many forgets the file has seen; every process with it open watches it


def forgets(store: Store) -> int:
    """The file's forget counter: a process that saw another value has text in its caches that may be gone."""
    return int(meta.get(store, FORGETS) or 0)


def forget(w: Write, store: Store, criteria: Criteria) -> Forgotten:
    conn = w.conn
    meta.write(conn, FORGETS, str(int(meta.read(conn, FORGETS) or 0) + 1))  # in the forget's transaction
    chosen = select(conn, store, criteria)
    message_ids = _with_sessions(conn, chosen.messages, chosen.sessions)
    session_ids = chosen.sessions
    message_ids_sorted = sorted(message_ids)
    memory_ids = set(chosen.memories)
    only, shared = _derived_only(conn, message_ids_sorted)
    memory_ids |= set(only)
    for memory_id in sorted(set(shared) - memory_ids):
        audit.record(conn, "relink", "memory", memory_id, None, None, "a source was forgotten")
    for chunk in chunks(message_ids_sorted):
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
    profile.drop_sources(conn, sorted(memory_ids))
    result = Forgotten(len(message_ids), len(memory_ids), len(session_ids))
    followers: dict[int, tuple[int, str, str, str, str]] = {}
    for chunk in chunks(message_ids_sorted):
        # The turns after a forgotten one may be read with it (`records.read_with`): found before it goes.
        for row in conn.execute(
            "select n.id, n.session_id, n.text, n.role, n.speaker, n.created_at from messages m join messages n"
            f" on n.id in (select x.id from messages x where x.session_id = m.session_id and x.id > m.id"
            f" order by x.id limit {READ_WITH}) where m.id in ({marks(chunk)})",
            chunk,
        ):
            followers[row[0]] = row[1:]
        vectors.remove(w, message_keys(chunk))
        conn.execute(f"delete from messages where id in ({marks(chunk)})", chunk)
    for follower_id, (session_id, text, role, speaker, said_at) in sorted(followers.items()):
        if follower_id in message_ids:
            continue
        # Rebuilt without what was forgotten; a context that did not hold it stays (and keeps its vectors).
        turn = TurnBefore(follower_id, text, None, role, speaker, said_at)
        context = messages.context_of(conn, session_id, turn, follower_id)
        if conn.execute(
            "update messages set context = ? where id = ? and context is not ?",
            (context, follower_id, context),
        ).rowcount:
            result.rebuilt.append(follower_id)
    # A rebuilt context's vector was made with what was forgotten: it goes in this transaction (the front makes
    # it again from the texts' own vectors once this commits).
    vectors.remove(w, [vector_key(i, VARIANT_MESSAGE_CONTEXT) for i in result.rebuilt])
    if message_ids:
        audit.record(
            conn, "forget", "messages", None, None, None, f"{len(message_ids)} messages forgotten by the user"
        )
    for chunk in chunks(session_ids):
        conn.execute(f"delete from sessions where id in ({marks(chunk)})", chunk)
    vectors.remove_orphans(w)
    if criteria.words is not None:
        scrub.words_everywhere(conn, criteria.words)
    return result
