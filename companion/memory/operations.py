"""Long-term memory as the app and the user act on it: embed, recall, pin, edit, forget, stats.

One object (`LongTermMemory`) over the store, the embedder and the FAISS index. The faces (CLI, TUI) and the
engine all call these functions: there is one `search`, one `forget`.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from companion import timeutil
from companion.errors import CompanionError
from companion.memory.embed import DEFAULT_MODEL, Embedder
from companion.memory.forgetting import DEFAULT_TAU_DAYS, DEFAULT_THRESHOLD, Sweep, sweep, sweep_messages
from companion.memory.index import (
    VARIANT_MEMORY,
    VARIANT_MESSAGE,
    VARIANT_MESSAGE_CONTEXT,
    VectorIndex,
    describe_saved,
    split_key,
    vector_key,
)
from companion.memory.retrieve import DEFAULT_WEIGHTS, Hit, Retriever, Weights
from companion.memory.store import ACTIVE, MEMORY_KINDS, SQL_OPERATIONAL_ERRORS, Memory, Store, context_text

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True)
class Ref:
    """What a memory command points at: a derived memory (`45`) or a message (`message:123`)."""

    kind: str  # "memory" | "message"
    id: int

    @classmethod
    def parse(cls, text: str) -> Ref:
        raw = text.strip().lower()
        kind = "memory"
        for prefix, name in (("message:", "message"), ("msg:", "message"), ("memory:", "memory")):
            if raw.startswith(prefix):
                kind, raw = name, raw[len(prefix) :]
        if not raw.isdigit():
            raise CompanionError(
                f"'{text}' is not a memory id; use a number (a memory) or message:NUMBER (a message), as shown by "
                "`companion memory search` or `list`."
            )
        return cls(kind, int(raw))


def progress_counter(progress: Progress | None, what: str, total: int) -> Callable[[int], None]:
    """A callback that adds up finished items and reports (what, done, total) to `progress`."""
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(what, done, total)

    return tick


class LongTermMemory:
    def __init__(
        self,
        store: Store,
        index_path: Path | None = None,
        embed_model: str = DEFAULT_MODEL,
        tau_days: float = DEFAULT_TAU_DAYS,
    ) -> None:
        self.store = store
        self.tau_days = tau_days
        self.index_path = index_path
        self.embed_model = embed_model
        self.embedder = Embedder(embed_model)
        self._index: VectorIndex | None = None
        self._retriever: Retriever | None = None
        self._ready_lock = threading.Lock()  # the UI's loader and a first turn may both ask

    # -- embeddings and index -------------------------------------------------------------------------------
    @property
    def embedder_loaded(self) -> bool:
        return self.embedder.loaded and self._index is not None

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            self.ready()
        assert self._index is not None
        return self._index

    @property
    def retriever(self) -> Retriever:
        if self._retriever is None:
            self._retriever = Retriever(self.store, self.embedder, self.index, self.tau_days)
        return self._retriever

    def reset_retriever(self) -> None:
        """The next search builds a new retriever (after `tau_days` changed)."""
        self._retriever = None

    def ready(self, progress: Progress | None = None) -> str:
        """Embed whatever has no vector for the configured model (all of it after switching models), then open
        the FAISS index (loading the saved one if it matches, else rebuilding). Returns the index state."""
        with self._ready_lock:
            self.embed_missing(progress, everything=False)
            if self._index is None:
                self._index = VectorIndex(self.store, self.embed_model, self.embedder.dim, self.index_path)
            return self._index.open()

    def embed_missing(self, progress: Progress | None = None, everything: bool = True) -> int:
        """Embed what has no vector for the configured model (all of it after switching models). With
        `everything` False, only messages after the newest one that has a vector are looked at (what a crash or
        another process left behind): at a million messages that is microseconds against seconds for the whole
        table, which the index job still looks through (a gap an embedding error left in the middle)."""
        model = self.embed_model
        after = 0
        if not everything:
            newest = self.store.scalar(
                "select max(item_id) from vectors where kind = 'message' and model = ?", (model,)
            )
            after = int(newest or 0)
        message_ids = [
            r[0]
            for r in self.store.conn.execute(
                "select id from messages m where id > ? and archived = 0 and not exists (select 1 from vectors v"
                " where v.kind = 'message' and v.item_id = m.id and v.model = ?) order by id",
                (after, model),
            )
        ]
        memory_ids = [
            r[0]
            for r in self.store.conn.execute(
                f"select id from memories m where {ACTIVE} and not exists (select 1 from vectors v where"
                " v.kind = 'memory' and v.item_id = m.id and v.model = ?) order by id",
                (model,),
            )
        ]
        total = len(message_ids) + len(memory_ids)
        stale = self.store.scalar(  # vectors of a model no longer in use (counted by triggers: no scan)
            "select 1 from vector_fingerprints where model != ? and count > 0", (model,)
        )
        if not total and not stale:
            return 0
        tick = progress_counter(progress, "Embedding memories", total)
        for start in range(0, len(message_ids), 2048):
            self.embed_messages(message_ids[start : start + 2048], tick, add_to_index=False)
        for start in range(0, len(memory_ids), 2048):
            self.embed_memories(memory_ids[start : start + 2048], tick, add_to_index=False)
        if stale:
            with self.store.transaction() as conn:
                conn.execute("delete from vectors where model != ?", (model,))
        return total

    def message_vectors(
        self,
        rows: list[tuple[int, int, str]],
        tick: Callable[[int], None] | None = None,
        previous: dict[int, tuple[int, np.ndarray | None]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """rows: (message id, session id, text), in conversation order -> (keys, vectors).

        Each message gets two vectors: its text alone, and its text read with the turn before it. The second is
        the normalized sum of the two turns' vectors rather than a second encoding of the joined text: on LoCoMo
        both give the same recall (R@10 0.740 against 0.741) and it halves the embedding work of an import.
        `previous` maps a session to its last message already stored (id, vector) for rows that continue it.
        """
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.embedder.dim), dtype=np.float32)
        plain = self.embedder.encode([r[2] for r in rows], progress=tick)
        last: dict[int, np.ndarray | None] = {}
        if previous:
            last.update({session: vector for session, (_, vector) in previous.items()})
        context = np.empty_like(plain)
        for position, (_, session_id, _) in enumerate(rows):
            before = last.get(session_id)
            joined = plain[position] if before is None else plain[position] + before
            context[position] = joined / max(float(np.linalg.norm(joined)), 1e-12)
            last[session_id] = plain[position]
        keys = [vector_key(r[0], VARIANT_MESSAGE) for r in rows] + [
            vector_key(r[0], VARIANT_MESSAGE_CONTEXT) for r in rows
        ]
        return np.asarray(keys, dtype=np.int64), np.concatenate([plain, context])

    def previous_vectors(self, first_ids: dict[int, int]) -> dict[int, tuple[int, np.ndarray | None]]:
        """For each session, the stored message just before `first_ids[session]` and its plain vector."""
        out: dict[int, tuple[int, np.ndarray | None]] = {}
        for session_id, first in first_ids.items():
            row = self.store.conn.execute(
                "select m.id, v.vector from messages m left join vectors v on v.key = m.id * 4 + ? and v.model = ?"
                " where m.session_id = ? and m.id < ? order by m.id desc limit 1",
                (VARIANT_MESSAGE, self.embed_model, session_id, first),
            ).fetchone()
            if row:
                vector = np.frombuffer(row[1], dtype=np.float32) if row[1] is not None else None
                if vector is None:  # not embedded yet: embed it on the way
                    text = self.store.scalar("select text from messages where id = ?", (row[0],))
                    vector = self.embedder.encode_one(text)
                out[session_id] = (row[0], vector)
        return out

    def embed_messages(
        self, ids: list[int], tick: Callable[[int], None] | None = None, add_to_index: bool = True
    ) -> None:
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        rows = self.store.conn.execute(
            f"select id, session_id, text from messages where id in ({marks}) order by session_id, id", ids
        ).fetchall()
        firsts: dict[int, int] = {}
        for message_id, session_id, _ in rows:
            firsts.setdefault(session_id, message_id)
        keys, vectors = self.message_vectors([tuple(r) for r in rows], tick, self.previous_vectors(firsts))
        self._write_vectors("message", keys, vectors, add_to_index)

    def embed_memories(
        self, ids: list[int], tick: Callable[[int], None] | None = None, add_to_index: bool = True
    ) -> None:
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        rows = self.store.conn.execute(
            f"select id, text from memories where id in ({marks}) order by id", ids
        ).fetchall()
        vectors = self.embedder.encode([r[1] for r in rows], progress=tick)
        keys = np.asarray([vector_key(r[0], VARIANT_MEMORY) for r in rows], dtype=np.int64)
        self._write_vectors("memory", keys, vectors, add_to_index)

    def _write_vectors(self, kind: str, keys: np.ndarray, vectors: np.ndarray, add_to_index: bool) -> None:
        with self.store.transaction() as conn:
            self.store.put_vectors(
                conn,
                [
                    (int(k), kind, split_key(int(k))[0], split_key(int(k))[1], self.embed_model, v.tobytes())
                    for k, v in zip(keys, vectors, strict=True)
                ],
            )
        if add_to_index and self._index is not None:
            self._index.add(keys, vectors)

    # -- recall ---------------------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        now: datetime | None = None,
        limit: int = 10,
        exclude_session: int | Collection[int] | None = None,
        kinds: set[str] | None = None,
        query_vector: np.ndarray | None = None,
        persona: str | None = None,
        separate: bool = False,
        weights: Weights = DEFAULT_WEIGHTS,
    ) -> list[Hit]:
        if not query.strip():
            raise CompanionError("The search is empty; give some words to look for.")
        return self.retriever.search(
            query,
            now=now,
            limit=limit,
            exclude_session=exclude_session,
            kinds=kinds,
            query_vector=query_vector,
            persona=persona,
            separate=separate,
            weights=weights,
        )

    def reinforce(self, hits: Iterable[Hit], now: datetime | None = None) -> None:
        """Recalling a memory strengthens it (spaced repetition): strength +1, last recalled = now."""
        ids = [h.id for h in hits if h.kind != "message"]
        if not ids:
            return
        stamp = timeutil.iso(now or timeutil.now())
        with self.store.transaction() as conn:
            conn.executemany(
                "update memories set strength = strength + 1, recall_count = recall_count + 1,"
                " last_recalled_at = ? where id = ?",
                [(stamp, i) for i in ids],
            )

    # -- the user's operations ------------------------------------------------------------------------------
    def require_memory(self, memory_id: int) -> Memory:
        memory = self.store.get_memory(memory_id)
        if memory is None:
            raise CompanionError(f"There is no memory {memory_id}; see `companion memory list`.")
        return memory

    def add_note(self, text: str, sources: list[int] | None = None) -> int:
        text = text.strip()
        if not text:
            raise CompanionError("The note is empty; give the text to remember.")
        memory_id = self.store.add_memory(
            "note", text, sources=sources, importance=0.8, reason="added by the user"
        )
        self.embed_memories([memory_id], add_to_index=self._index is not None)
        self._save()
        return memory_id

    def pin(self, memory_id: int, pinned: bool = True) -> None:
        memory = self.require_memory(memory_id)
        with self.store.transaction() as conn:
            conn.execute(
                "update memories set pinned = ?, updated_at = ? where id = ?",
                (int(pinned), timeutil.now_iso(), memory_id),
            )
            self.store.audit(
                conn, "pin" if pinned else "unpin", "memory", memory_id, memory.text, memory.text, "user"
            )

    def edit(self, memory_id: int, text: str) -> None:
        memory = self.require_memory(memory_id)
        text = text.strip()
        if not text:
            raise CompanionError(
                "The new text is empty; to remove a memory use `companion memory forget ID`."
            )
        with self.store.transaction() as conn:
            conn.execute(
                "update memories set text = ?, updated_at = ? where id = ?",
                (text, timeutil.now_iso(), memory_id),
            )
            self.store.audit(conn, "update", "memory", memory_id, memory.text, text, "edited by the user")
        if not memory.archived:
            self.embed_memories([memory_id], add_to_index=self._index is not None)
        self._save()

    def archive_faded(
        self, now: datetime | None = None, threshold: float = DEFAULT_THRESHOLD, messages: bool = False
    ) -> Sweep:
        """The forgetting sweep: archive what has faded below `threshold`, and take it out of the index.
        Messages too only when `messages` (the `memory.archive_messages` option)."""
        now = now or timeutil.now()
        result = sweep(self.store, now, tau_days=self.tau_days, threshold=threshold)
        keys = [vector_key(i, VARIANT_MEMORY) for i in result.archived]
        if messages:
            result.messages = sweep_messages(self.store, now, tau_days=self.tau_days, threshold=threshold)
            keys += [
                vector_key(i, v) for i in result.messages for v in (VARIANT_MESSAGE, VARIANT_MESSAGE_CONTEXT)
            ]
        if keys and self._index is not None:
            self._index.remove(keys)
            self._save()
        return result

    def restore_message(self, message_id: int) -> None:
        row = self.store.conn.execute("select archived from messages where id = ?", (message_id,)).fetchone()
        if row is None:
            raise CompanionError(f"There is no message {message_id}.")
        if not row[0]:
            raise CompanionError(f"Message {message_id} is not archived.")
        with self.store.transaction() as conn:
            conn.execute("update messages set archived = 0 where id = ?", (message_id,))
            self.store.audit(conn, "restore", "message", message_id, None, None, "restored by the user")
        self.embed_messages([message_id], add_to_index=self._index is not None)
        self._save()

    def close_thread(self, memory_id: int) -> None:
        memory = self.require_memory(memory_id)
        if memory.thread != "open":
            raise CompanionError(f"Memory {memory_id} is not an open thread; see `companion memory threads`.")
        with self.store.transaction() as conn:
            conn.execute(
                "update memories set thread = 'closed', updated_at = ? where id = ?",
                (timeutil.now_iso(), memory_id),
            )
            self.store.audit(conn, "update", "memory", memory_id, memory.text, memory.text, "thread closed")

    def restore(self, memory_id: int) -> None:
        memory = self.require_memory(memory_id)
        if not memory.archived:
            raise CompanionError(f"Memory {memory_id} is not archived.")
        with self.store.transaction() as conn:
            conn.execute(
                "update memories set archived = 0, strength = max(strength, 1.0), last_recalled_at = ?,"
                " updated_at = ? where id = ?",
                (timeutil.now_iso(), timeutil.now_iso(), memory_id),
            )
            self.store.audit(conn, "restore", "memory", memory_id, None, memory.text, "restored by the user")
        self.embed_memories([memory_id], add_to_index=self._index is not None)
        self._save()

    def select_messages(
        self, *, session: int | None = None, before: datetime | None = None, matching: str | None = None
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
        return [r[0] for r in self.store.conn.execute(sql, params)]

    def select_memories(self, *, before: datetime | None = None, matching: str | None = None) -> list[int]:
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
            for r in self.store.conn.execute(f"select id from memories where {' and '.join(clauses)}", params)
        ]

    def forget(
        self,
        *,
        messages: Iterable[int] = (),
        memories: Iterable[int] = (),
        sessions: Iterable[int] = (),
        words: str | None = None,
    ) -> dict[str, int]:
        """Delete for good. Forgetting a message removes what was derived only from it and re-links what has
        other sources; the neighbouring turn's context is rebuilt without it; FTS and FAISS are updated; the text
        is overwritten on disk (secure_delete, FTS merge, WAL checkpoint) and scrubbed from the audit log.
        `words` (what `forget --matching` was given) is also removed from every string that keeps it anywhere
        else: the change history of memories that stay, session titles, external ids, persona cards and their
        lorebooks, the profile and its vetoes."""
        message_ids = sorted(set(messages))
        memory_ids = set(memories)
        session_ids = sorted(set(sessions))
        if session_ids:
            marks = ",".join("?" * len(session_ids))
            message_ids = sorted(
                set(message_ids)
                | {
                    r[0]
                    for r in self.store.conn.execute(
                        f"select id from messages where session_id in ({marks})", session_ids
                    )
                }
            )
        removed_keys: list[int] = []
        rebuilt_context: list[int] = []
        with self.store.transaction() as conn:
            if message_ids:
                for chunk in _chunks(message_ids):
                    marks = ",".join("?" * len(chunk))
                    linked = conn.execute(
                        f"select distinct memory_id from memory_sources where message_id in ({marks})", chunk
                    ).fetchall()
                    for (memory_id,) in linked:
                        others = conn.execute(
                            "select count(*) from memory_sources where memory_id = ? and message_id not in"
                            f" ({marks})",
                            (memory_id, *chunk),
                        ).fetchone()[0]
                        if others == 0:
                            memory_ids.add(memory_id)
                        else:
                            self.store.audit(
                                conn, "relink", "memory", memory_id, None, None, "a source was forgotten"
                            )
                    conn.execute(f"delete from memory_sources where message_id in ({marks})", chunk)
            for chunk in _chunks(sorted(memory_ids)):
                marks = ",".join("?" * len(chunk))
                conn.execute(f"delete from memory_sources where memory_id in ({marks})", chunk)
                conn.execute(
                    f"update memories set superseded_by = null where superseded_by in ({marks})", chunk
                )
                conn.execute(f"delete from memories where id in ({marks})", chunk)
                conn.execute(
                    f"update audit set old_text = null, new_text = null where target = 'memory' and target_id in ({marks})",
                    chunk,
                )
                removed_keys += [vector_key(i, VARIANT_MEMORY) for i in chunk]
                for memory_id in chunk:
                    self.store.audit(conn, "forget", "memory", memory_id, None, None, "forgotten by the user")
            forgotten = set(message_ids)
            for chunk in _chunks(message_ids):
                marks = ",".join("?" * len(chunk))
                # The turn after a forgotten one carries it in its context: rebuild that context without it.
                followers = conn.execute(
                    f"select n.id, n.session_id, n.text from messages n where n.id in (select (select min(id) from"
                    f" messages x where x.session_id = m.session_id and x.id > m.id) from messages m where m.id in ({marks}))",
                    chunk,
                ).fetchall()
                conn.execute(f"delete from vectors where kind = 'message' and item_id in ({marks})", chunk)
                conn.execute(f"delete from messages where id in ({marks})", chunk)
                removed_keys += [
                    vector_key(i, v) for i in chunk for v in (VARIANT_MESSAGE, VARIANT_MESSAGE_CONTEXT)
                ]
                for follower_id, session_id, text in followers:
                    if follower_id in forgotten:
                        continue
                    previous = conn.execute(
                        "select text from messages where session_id = ? and id < ? order by id desc limit 1",
                        (session_id, follower_id),
                    ).fetchone()
                    conn.execute(
                        "update messages set context = ? where id = ?",
                        (context_text(previous[0] if previous else None, text), follower_id),
                    )
                    rebuilt_context.append(follower_id)
            if message_ids:
                self.store.audit(
                    conn,
                    "forget",
                    "messages",
                    None,
                    None,
                    None,
                    f"{len(message_ids)} messages forgotten by the user",
                )
            for chunk in _chunks(session_ids):
                marks = ",".join("?" * len(chunk))
                conn.execute(f"delete from sessions where id in ({marks})", chunk)
            conn.execute(
                "delete from vectors where kind = 'memory' and item_id not in (select id from memories)"
            )
            if words:
                scrub_words(self.store, conn, words)
        self.scrub()
        if self._index is not None:
            self._index.remove(removed_keys)
        if rebuilt_context:
            self.embed_messages(rebuilt_context, add_to_index=self._index is not None)
        if self._retriever is not None:
            self._retriever.forget_caches()
        self._save()
        return {"messages": len(message_ids), "memories": len(memory_ids), "sessions": len(session_ids)}

    def scrub(self) -> None:
        """Make deleted text unrecoverable from the files: merge the FTS indexes (old segments are freed and
        zeroed by secure_delete) and checkpoint the WAL into the database, truncating it."""
        with self.store.transaction() as conn:
            conn.execute("insert into messages_fts(messages_fts) values ('optimize')")
            conn.execute("insert into memories_fts(memories_fts) values ('optimize')")
        with contextlib.suppress(*SQL_OPERATIONAL_ERRORS):
            self.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- reading --------------------------------------------------------------------------------------------
    def list_memories(
        self,
        kind: str | None = None,
        archived: bool = False,
        limit: int = 200,
        offset: int = 0,
        matching: str | None = None,
    ) -> list[Memory]:
        """One page of memories, oldest first; `matching` keeps those whose words start with the given ones."""
        where, params = self._memory_filter(kind, archived, matching)
        rows = self.store.db.query(
            f"select * from memories where {where} order by id limit ? offset ?", [*params, limit, offset]
        )
        return [Memory.from_row(r) for r in rows]

    def count_memories(
        self, kind: str | None = None, archived: bool = False, matching: str | None = None
    ) -> int:
        where, params = self._memory_filter(kind, archived, matching)
        return int(self.store.scalar(f"select count(*) from memories where {where}", tuple(params)))

    @staticmethod
    def _memory_filter(kind: str | None, archived: bool, matching: str | None) -> tuple[str, list[Any]]:
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

    def stats(self) -> dict[str, Any]:
        s = self.store
        kinds = {
            k: n
            for k, n in s.conn.execute("select kind, count(*) from memories where archived = 0 group by kind")
        }
        times = s.conn.execute("select min(created_at), max(created_at) from messages").fetchone()
        db_size = sum(p.stat().st_size for p in (s.path, Path(f"{s.path}-wal")) if p.exists())
        index_file = self.index_path
        if self._index is not None:
            index_kind, index_state = self._index.kind, self._index.state
        else:
            index_kind, index_state = describe_saved(s, self.embed_model, index_file)
        return {
            "messages": s.count("messages"),
            "sessions": s.count("sessions"),
            "memories": kinds,
            "archived": s.scalar("select count(*) from memories where archived = 1"),
            "superseded": s.scalar("select count(*) from memories where valid_to is not null"),
            "pinned": s.scalar("select count(*) from memories where pinned = 1"),
            "vectors": s.scalar("select count(*) from vectors where model = ?", (self.embed_model,)),
            "embedding_model": self.embed_model,
            "file": str(s.path),
            "file_bytes": db_size,
            "index_file": str(index_file) if index_file else None,
            "index_bytes": index_file.stat().st_size if index_file and index_file.exists() else 0,
            "index_state": index_state,
            "index_kind": index_kind,
            "oldest": times[0],
            "newest": times[1],
        }

    def add_vectors(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Vectors already written to SQLite (an import) join the open index, which is saved."""
        if self._index is not None and len(keys):
            self._index.add(keys, vectors)
            self._index.save()

    def reopen_index(self) -> None:
        """Bring an open index in line with SQLite after many rows changed at once (a json import)."""
        if self._index is not None:
            self._index.open()

    def _save(self) -> None:
        if self._index is not None:
            self._index.save()

    def close(self) -> None:
        """Save the index and close the memory file."""
        self._save()
        self.store.close()


def redact(text: str, words: str) -> str:
    """`words` taken out of `text`, whatever their case."""
    return re.sub(re.escape(words), "[forgotten]", text, flags=re.IGNORECASE)


def scrub_words(store: Store, conn: sqlite3.Connection, words: str) -> None:
    """Remove `words` from every string that could still hold them once the messages and memories that say
    them are gone (inside the forget's transaction)."""
    from companion.memory import personas, profile

    contains = "instr(lower({0}), lower(?)) > 0"
    for column in ("old_text", "new_text"):
        conn.execute(f"update audit set {column} = null where {contains.format(column)}", (words,))
    conn.execute(f"update audit set reason = '' where {contains.format('reason')}", (words,))
    for session_id, title in conn.execute(
        f"select id, title from sessions where {contains.format('title')}", (words,)
    ).fetchall():
        conn.execute("update sessions set title = ? where id = ?", (redact(title, words), session_id))
    conn.execute(
        f"update sessions set external_id = 'forgotten-' || id where {contains.format('external_id')}",
        (words,),
    )
    conn.execute(f"update messages set source_id = null where {contains.format('source_id')}", (words,))
    for key, value in conn.execute(
        f"select key, value from meta where {contains.format('value')}", (words,)
    ).fetchall():
        conn.execute("update meta set value = ? where key = ?", (redact(value, words), key))
    personas.scrub(store, conn, words)
    profile.scrub(store, conn, words)


def _chunks(items: list[int], size: int = 500) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
