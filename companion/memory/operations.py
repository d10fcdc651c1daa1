"""Long-term memory as the app and the user act on it: embed, recall, pin, edit, forget, stats.

One object (`LongTermMemory`) over the memory file, the embedder and the FAISS index — the thin front the faces
(CLI, TUI) and the engine call: there is one `search`, one `forget`. What changes the file is a function of the
tables room, in a transaction opened by `write()`, which applies what the write did to the vectors to the index
once it has committed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from companion import timeutil
from companion.errors import CompanionError
from companion.memory.db.store import Store
from companion.memory.recall.embed import DEFAULT_MODEL, Embedder
from companion.memory.recall.index import VectorIndex, describe_saved
from companion.memory.recall.retention import DEFAULT_TAU_DAYS
from companion.memory.recall.retrieve import DEFAULT_WEIGHTS, Bar, Retriever, Weights
from companion.memory.records import (
    READ_WITH,
    READ_WITH_RULE,
    VARIANT_MEMORY,
    VARIANT_MESSAGE,
    VARIANT_MESSAGE_CONTEXT,
    Hit,
    Memory,
    MessageText,
    Sent,
    TurnBefore,
    VectorChange,
    check_length,
    read_with,
    vector_key,
)
from companion.memory.tables import Write, forget, memories, messages, meta, scrub, vectors
from companion.memory.tables import write as write_tables

Progress = Callable[[str, int, int], None]  # (what, done, total)


def progress_counter(progress: Progress | None, what: str, total: int) -> Callable[[int], None]:
    """A callback that adds up finished items and reports (what, done, total) to `progress`."""
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(what, done, total)

    return tick


# The meta key that names the rule every message's context follows (`reread_contexts`).
CONTEXTS_READ = "contexts.read_with"


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
        self._forgets_seen: int | None = None  # the file's forget counter when this process last caught up
        self._retriever: Retriever | None = None
        self._ready_lock = threading.Lock()  # the UI's loader and a first turn may both ask

    # -- writing --------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[Write]:
        """One transaction of table functions; once it commits, the index follows what it did to the vectors
        and is saved."""
        with write_tables(self.store) as w:
            before = vectors.rewrites(w.conn, self.embed_model)
            yield w
            after = vectors.rewrites(w.conn, self.embed_model)
        self.apply(w.change, (before, after))

    def apply(self, change: VectorChange, rewrites: tuple[int, int] | None = None) -> None:
        """A committed write's change of the vectors, followed by the open index (a closed one catches up
        from the file when it opens); `rewrites`: the file's vector rewrites before and after the write (its
        own rewrites are in `change`, anyone else's make the index open again, `VectorIndex.follow`)."""
        if change and self._index is not None:
            self._index.apply(change)
            if rewrites is not None:
                self._index.wrote(*rewrites)
            self._index.save()
        if change.removed and self._retriever is not None:
            self._retriever.forget_caches()

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
        after = 0 if everything else vectors.newest_message(self.store, model)
        message_ids = vectors.messages_without(self.store, model, after)
        memory_ids = vectors.memories_without(self.store, model)
        total = len(message_ids) + len(memory_ids)
        stale = vectors.other_models(self.store, model)
        if not total and not stale:
            return 0
        tick = progress_counter(progress, "Embedding memories", total)
        for start in range(0, len(message_ids), 2048):
            self.embed_messages(message_ids[start : start + 2048], tick)
        for start in range(0, len(memory_ids), 2048):
            self.embed_memories(memory_ids[start : start + 2048], tick)
        if stale:
            with self.write() as w:
                vectors.remove_other_models(w, model)
        return total

    def message_vectors(
        self,
        rows: list[MessageText],
        tick: Callable[[int], None] | None = None,
        before: dict[int, list[TurnBefore]] | None = None,
        plain: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Messages, in conversation order -> (keys, vectors).

        Each message gets two vectors: its text alone, and its text read with the turns it is read with
        (`records.read_with`: the burst it ends and the turn before that; without a burst, the turn before it).
        The second is the normalized sum of those turns' vectors rather than a second encoding of the joined
        text: on LoCoMo both give the same recall (R@10 0.740 against 0.741) and it halves the embedding work of
        an import. A row reads on from the row before it of its session in `rows`; `before` maps a row to the
        turns before it in the file instead (each with its plain vector), for a row that does not follow the
        row before it here (the first of a session that goes on, a row after a gap).
        """
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.embedder.dim), dtype=np.float32)
        if plain is None:  # (given: the texts' own vectors, already stored)
            plain = self.embedder.encode([r.text for r in rows], progress=tick)
        given = before or {}
        history: dict[int, list[tuple[Sent, np.ndarray]]] = {}
        context = np.empty_like(plain)
        for position, row in enumerate(rows):
            if row.id in given:
                history[row.session_id] = [(t, t.vector) for t in given[row.id] if t.vector is not None]
            earlier = history.setdefault(row.session_id, [])
            taken = read_with([turn for turn, _ in earlier], row)
            joined = plain[position].copy()
            for _, vector in earlier[len(earlier) - taken :]:
                joined += vector
            context[position] = joined / max(float(np.linalg.norm(joined)), 1e-12)
            earlier.append((row, plain[position]))
            del earlier[:-READ_WITH]
        keys = [vector_key(r.id, VARIANT_MESSAGE) for r in rows] + [
            vector_key(r.id, VARIANT_MESSAGE_CONTEXT) for r in rows
        ]
        return np.asarray(keys, dtype=np.int64), np.concatenate([plain, context])

    def turns_before(self, firsts: dict[int, tuple[int, int]]) -> dict[int, list[TurnBefore]]:
        """For each row (`firsts`: row -> (session, the message id it comes before)), the last turns of its
        session's conversation before it, each with its plain vector (embedded here when it has none yet)."""
        out: dict[int, list[TurnBefore]] = {}
        for row, (session_id, first) in firsts.items():
            turns = vectors.before_in_session(self.store, self.embed_model, session_id, first)
            out[row] = [
                t if t.vector is not None else replace(t, vector=self.embedder.encode_one(t.text))
                for t in turns
            ]
        return out

    def embed_messages(
        self, ids: list[int], tick: Callable[[int], None] | None = None, texts_unchanged: bool = False
    ) -> None:
        """Messages enter recall: their two vectors, in the file and (when open) the index. With
        `texts_unchanged` (only what they are read with changed), their texts' stored vectors are used."""
        if not ids:
            return
        keys, found = self._vectors_of_messages(ids, tick, texts_unchanged)
        with self.write() as w:
            vectors.put(w, "message", keys.tolist(), found, self.embed_model)

    def _vectors_of_messages(
        self, ids: list[int], tick: Callable[[int], None] | None = None, texts_unchanged: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """The two vectors of each of these messages, as stored messages (each read on from the file)."""
        rows = messages.texts(self.store, ids)
        plain = None
        if texts_unchanged and rows:
            stored = vectors.plain_vectors(self.store, self.embed_model, ids)
            if all(r.id in stored for r in rows):  # else (one was never embedded) all are embedded
                plain = np.stack([stored[r.id] for r in rows])
        last: dict[int, int] = {}
        firsts: dict[int, tuple[int, int]] = {}
        for row in rows:
            if row.before_id is not None and last.get(row.session_id) != row.before_id:
                firsts[row.id] = (row.session_id, row.id)  # the turns before it are not here: from the file
            last[row.session_id] = row.id
        return self.message_vectors(rows, tick, self.turns_before(firsts), plain)

    def reread_contexts(self, sessions_at_once: int = 200) -> int:
        """A file stored under an earlier rule of what a message is read with (`records.READ_WITH_RULE`; before
        bursts, the one message before it) is read again: each message whose context is not the rule's gets it,
        and its vectors with it (only a burst's messages and the turns after them change), a batch of sessions
        per transaction. Once every session is read, the rule is marked in `meta` and this costs nothing.
        Returns how many messages were read again."""
        if meta.get(self.store, CONTEXTS_READ) == READ_WITH_RULE:
            return 0
        changed, after, whole = 0, 0, True
        while batch := messages.sessions_after(self.store, after, sessions_at_once):
            after = batch[-1]
            stale = messages.stale_contexts(self.store.conn, batch)
            if not stale:
                continue
            _ = self.index  # open: a vector rewritten under its own key must reach the index (and its file)
            in_recall = vectors.messages_with(self.store, self.embed_model, [*stale])
            made = self._vectors_of_messages(in_recall, texts_unchanged=True) if in_recall else None
            with self.write() as w:
                # Read again inside the write: a forget or a message since then leaves this batch to the next
                # run (no forgotten text comes back in a context, no vector is made of one).
                if messages.stale_contexts(w.conn, batch) != stale:
                    whole = False
                    continue
                messages.set_contexts(w, stale)
                if made is not None:
                    vectors.put(w, "message", made[0].tolist(), made[1], self.embed_model)
            changed += len(stale)
        if whole:
            meta.put(self.store, CONTEXTS_READ, READ_WITH_RULE)
        return changed

    def embed_memories(self, ids: list[int], tick: Callable[[int], None] | None = None) -> None:
        if not ids:
            return
        by_id = memories.texts(self.store, ids)
        order = sorted(by_id)
        found = self.embedder.encode([by_id[i] for i in order], progress=tick)
        with self.write() as w:
            vectors.put(w, "memory", [vector_key(i, VARIANT_MEMORY) for i in order], found, self.embed_model)

    def vector_of(self, text: str) -> np.ndarray:
        """The vector a memory's text gets (for a write that puts it in recall)."""
        return self.embedder.encode_one(text)

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
        bar: Bar | None = None,
        everything: bool = False,
    ) -> list[Hit]:
        """What recall brings for `query`: the hits that clear the relevance bar (possibly none), best first;
        with `everything`, the whole ranking, each hit marked relevant or not."""
        if not query.strip():
            raise CompanionError("The search is empty; give some words to look for.")
        hits = self.retriever.search(
            query,
            now=now,
            limit=limit,
            exclude_session=exclude_session,
            kinds=kinds,
            query_vector=query_vector,
            persona=persona,
            separate=separate,
            weights=weights,
            bar=bar,
        )
        return hits if everything else [hit for hit in hits if hit.relevant]

    def reinforce(self, hits: Iterable[Hit], now: datetime | None = None) -> None:
        """Recalling a memory strengthens it (spaced repetition): strength +1, last recalled = now."""
        ids = [h.id for h in hits if h.kind != "message"]
        if ids:
            memories.reinforce(self.store, ids, timeutil.iso(now or timeutil.now()))

    # -- the user's operations ------------------------------------------------------------------------------
    def require_memory(self, memory_id: int) -> Memory:
        memory = memories.get(self.store, memory_id)
        if memory is None:
            raise CompanionError(f"There is no memory {memory_id}; see `companion memory list`.")
        return memory

    def add_note(self, text: str, sources: list[int] | None = None) -> int:
        """A note the user adds: pinned (what a person tells you to remember does not fade)."""
        text = text.strip()
        if not text:
            raise CompanionError("The note is empty; give the text to remember.")
        check_length(text, "The note")
        vector = self.vector_of(text)
        with self.write() as w:
            return memories.add(
                w,
                "note",
                text,
                sources=sources,
                importance=0.8,
                reason="added by the user",
                pinned=True,
                vector=vector,
                model=self.embed_model,
            )

    def pin(self, memory_id: int, pinned: bool = True) -> None:
        self.require_memory(memory_id)
        with self.write() as w:
            memories.pin(w, memory_id, pinned)

    def edit(self, memory_id: int, text: str) -> None:
        memory = self.require_memory(memory_id)
        text = text.strip()
        if not text:
            raise CompanionError(
                "The new text is empty; to remove a memory use `companion memory forget ID`."
            )
        vector = self.vector_of(text) if memory.active else None
        with self.write() as w:
            memories.update_text(
                w, memory_id, text, "edited by the user", vector=vector, model=self.embed_model
            )

    def restore_message(self, message_id: int) -> None:
        state = messages.archived(self.store, message_id)
        if state is None:
            raise CompanionError(f"There is no message {message_id}.")
        if not state:
            raise CompanionError(f"Message {message_id} is not archived.")
        with self.write() as w:
            messages.restore(w, message_id)
        self.embed_messages([message_id])

    def close_thread(self, memory_id: int, reason: str = "thread closed") -> None:
        """An open thread (or one a check-in asked about) is closed: the companion does not bring it up."""
        memory = self.require_memory(memory_id)
        if memory.thread not in ("open", "asked"):
            raise CompanionError(f"Memory {memory_id} is not an open thread; see `companion memory threads`.")
        with self.write() as w:
            memories.close_thread(w, memory_id, reason)

    def restore(self, memory_id: int) -> None:
        memory = self.require_memory(memory_id)
        if not memory.archived:
            raise CompanionError(f"Memory {memory_id} is not archived.")
        vector = self.vector_of(memory.text)
        with self.write() as w:
            memories.restore(w, memory_id, vector, self.embed_model)

    def select_messages(
        self, *, session: int | None = None, before: datetime | None = None, matching: str | None = None
    ) -> list[int]:
        return forget.select_messages(self.store, session=session, before=before, matching=matching)

    def preview_forget(self, criteria: forget.Criteria) -> forget.Preview:
        """What `forget(criteria)` would remove now, to show before the user says yes."""
        return forget.preview(self.store, criteria)

    def forget(
        self,
        criteria: forget.Criteria | None = None,
        *,
        messages: Iterable[int] = (),
        memories: Iterable[int] = (),
        sessions: Iterable[int] = (),
    ) -> dict[str, int]:
        """Delete for good. Forgetting a message removes what was derived only from it and re-links what has
        other sources; the neighbouring turn's context is rebuilt without it; FTS and FAISS are updated; the text
        is overwritten on disk (secure_delete, FTS merge, WAL checkpoint) and scrubbed from the audit log.
        What `criteria` matches (a date, words) is chosen inside the forget's own transaction. Its words are
        also removed from every string that keeps them anywhere else: the change history of memories that
        stay, session titles, external ids, speakers' and personas' names, persona cards and their lorebooks,
        the profile and its vetoes."""
        criteria = criteria or forget.Criteria()
        criteria = forget.Criteria(
            tuple(criteria.messages) + tuple(messages),
            tuple(criteria.memories) + tuple(memories),
            tuple(criteria.sessions) + tuple(sessions),
            criteria.before,
            criteria.words,
        )
        with self.write() as w:
            done = forget.forget(w, self.store, criteria)
        self._index_forgets()
        self._forgets_seen = self.forgets()  # this process's own forget: nothing to catch up on
        scrub.pages(self.store)
        if done.rebuilt:  # their context vectors went with the forget: made again without what it forgot
            self.embed_messages(done.rebuilt, texts_unchanged=True)
        if self._retriever is not None:
            self._retriever.forget_caches()
        return {"messages": done.messages, "memories": done.memories, "sessions": done.sessions}

    def _index_forgets(self) -> None:
        """No forgotten vector stays in any file: an open index that is memory-mapped (it only hides what went)
        is folded and saved whole; a saved index nobody opened here is removed (rebuilt at the next start)."""
        if self._index is not None:
            self._index.compact()
            return
        if self.index_path is not None:
            from companion.memory.db.cipher import shred
            from companion.memory.recall.index import saved_files

            for saved in saved_files(self.index_path):
                shred(saved)

    def forgets(self) -> int:
        """How many forgets the file has seen (any process's): a change means cached text may be gone."""
        return forget.forgets(self.store)

    def notice_forgets(self) -> None:
        """Before a job: when another process forgot something since this one last looked, catch up."""
        now = self.forgets()
        if self._forgets_seen is not None and now != self._forgets_seen:
            self.catch_up()
        self._forgets_seen = now

    def catch_up(self) -> None:
        """Another process forgot something: the index and recall's caches follow the file again."""
        self.reopen_index()
        if self._retriever is not None:
            self._retriever.forget_caches()

    def scrub(self) -> None:
        """Make deleted text unrecoverable from the files (see `tables.scrub.pages`)."""
        scrub.pages(self.store)

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
        return memories.filtered(self.store, kind, archived, matching, limit, offset)

    def count_memories(
        self, kind: str | None = None, archived: bool = False, matching: str | None = None
    ) -> int:
        return memories.count_filtered(self.store, kind, archived, matching)

    def stats(self) -> dict[str, Any]:
        s = self.store
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
            **memories.counts(s),
            "vectors": vectors.count(s, self.embed_model),
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
