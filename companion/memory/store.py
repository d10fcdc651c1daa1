"""The memory file: one SQLite database (sqlite-utils), WAL, its schema in `schema.py`.

Every message is kept here (the episodic log); it is the ground truth everything else is derived from. A
message is committed before the model is asked anything, so a crash mid-reply never loses what the user said.

Only `companion/memory/` writes SQL. The faces and the engine ask this class by name ("a page of earlier
messages", "open threads due before T", "what this message was derived from").
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from companion import timeutil
from companion.errors import CompanionError, storage_error
from companion.memory import encryption
from companion.memory.lock import SharedLock, opening
from companion.memory.schema import APPLICATION_ID, MIGRATIONS
from companion.memory.timewords import event_time
from companion.paths import FILE_MODE, ensure_private_dir

MEMORY_KINDS = ("fact", "summary", "digest", "profile", "note", "lore")
# A derived memory in use: not archived by forgetting, not superseded by a newer one. The one definition.
ACTIVE = "archived = 0 and valid_to is null"


@dataclass(frozen=True)
class Message:
    id: int
    session_id: int
    role: str
    speaker: str
    text: str
    created_at: str
    incomplete: bool
    source_id: str | None = None
    token_count: int | None = None
    event_time: str | None = None  # the day the message speaks of, when it names one

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Message:
        return cls(
            id=row["id"],
            session_id=row["session_id"],
            role=row["role"],
            speaker=row["speaker"] or "",
            text=row["text"],
            created_at=row["created_at"],
            incomplete=bool(row["incomplete"]),
            source_id=row.get("source_id"),
            token_count=row.get("token_count"),
            event_time=row.get("event_time"),
        )

    @property
    def who(self) -> str:
        return self.speaker or self.role


@dataclass(frozen=True)
class Memory:
    id: int
    kind: str
    text: str
    event_time: str | None
    created_at: str
    importance: float
    strength: float
    last_recalled_at: str | None
    recall_count: int
    pinned: bool
    archived: bool
    valid_from: str | None = None
    valid_to: str | None = None
    superseded_by: int | None = None
    session_id: int | None = None
    thread: str | None = None
    period: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Memory:
        return cls(
            id=row["id"],
            kind=row["kind"],
            text=row["text"],
            event_time=row["event_time"],
            created_at=row["created_at"],
            importance=float(row["importance"] if row["importance"] is not None else 0.5),
            strength=float(row["strength"] if row["strength"] is not None else 1.0),
            last_recalled_at=row["last_recalled_at"],
            recall_count=int(row["recall_count"] or 0),
            pinned=bool(row["pinned"]),
            archived=bool(row["archived"]),
            valid_from=row["valid_from"],
            valid_to=row["valid_to"],
            superseded_by=row["superseded_by"],
            session_id=row["session_id"],
            thread=row.get("thread"),
            period=row.get("period"),
        )

    @property
    def active(self) -> bool:
        """In use: neither archived nor superseded (the Python side of `ACTIVE`)."""
        return not self.archived and self.valid_to is None

    @property
    def state(self) -> str:
        return "archived" if self.archived else ("superseded" if self.valid_to else "active")


@dataclass(frozen=True)
class SessionOverview:
    """One past conversation as the sessions screen lists it."""

    id: int
    started_at: str
    parent_id: int | None
    persona: str
    messages: int
    summary: str | None


class PlainConnection(sqlite3.Connection):
    """A plain connection that can be weakly referenced (the C type cannot)."""


# What the memory file's connections raise: sqlite3's, or SQLCipher's for an encrypted file.
SQL_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, *encryption.cipher_errors("Error"))
SQL_OPERATIONAL_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.OperationalError,
    *encryption.cipher_errors("OperationalError"),
)


class Store:
    """The memory database. Safe to share between threads: each thread gets its own connection.

    Writes are plain SQL inside `transaction()`: sqlite-utils' own write helpers commit on their own, which would
    end an enclosing transaction early; sqlite-utils serves the schema and the queries.
    """

    def __init__(self, path: Path, key: str | None = None, busy_timeout: float = 30.0) -> None:
        """`key`: the SQLCipher key of an encrypted file (a raw x'…' hex key or a passphrase). `busy_timeout`:
        how long a write waits for another connection's lock before saying the file is busy. While open, the
        store holds the memory file's shared lock (no other process can rewrite the file under it)."""
        self.path = path
        self.key = key
        self.busy_timeout = busy_timeout
        ensure_private_dir(path.parent)
        self._local = threading.local()
        # Weak: a finished thread's connection is closed when its thread-local storage goes away.
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._connections_lock = threading.Lock()
        self._lock = SharedLock(path)
        self._lock.acquire()
        try:
            with opening(path):
                existed = path.exists() and path.stat().st_size > 0
                if existed and key is None:
                    encryption.check_readable(path)
                conn = self.conn
                if not existed:
                    os.chmod(path, FILE_MODE)
                self._check_identity()
                conn.execute("PRAGMA journal_mode=WAL")
                self.migrate()
        except SQL_ERRORS as error:
            self._close_connections()
            self._lock.release()
            if key is not None and "not a database" in str(error):
                raise CompanionError(
                    f"The memory file {path} does not open with this key or passphrase; check "
                    "COMPANION_PASSPHRASE (or the OS keyring entry) and try again."
                ) from None
            raise CompanionError(
                f"The memory file {path} cannot be opened ({error}); if it is damaged, move it aside and restore "
                "a backup or an export."
            ) from None
        except BaseException:
            self._close_connections()
            self._lock.release()
            raise

    def _check_identity(self) -> None:
        """A companion file, an older companion file, or a new empty one; another application's SQLite file is
        refused before anything in it changes (not even its journal mode)."""
        conn = self.conn
        conn.execute("BEGIN")  # the three reads from one snapshot
        try:
            application = int(conn.execute("PRAGMA application_id").fetchone()[0])
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
        finally:
            with contextlib.suppress(*SQL_ERRORS):
                conn.execute("ROLLBACK")
        if application == APPLICATION_ID:
            return
        if application == 0 and not tables and version == 0:
            return  # a new file
        if application == 0 and version >= 1 and {"sessions", "messages"} <= tables:
            return  # written by a companion from before files were marked
        shown = ", ".join(sorted(tables)[:4]) or "no companion tables"
        raise CompanionError(
            f"{self.path} is not a companion memory file (another application's SQLite database: {shown}); "
            "nothing in it was changed. Move it aside, or set COMPANION_HOME to use another directory."
        )

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection. Each thread has its own (WAL lets readers and one writer work at once;
        a shared connection would mix one thread's statements into another's transaction)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.key is not None:
                conn = encryption.cipher_module().connect(
                    str(self.path),
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                    factory=encryption.cipher_connection_class(),
                )
                encryption.apply_key(conn, self.key)
            else:
                conn = sqlite3.connect(
                    str(self.path),
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                    factory=PlainConnection,
                )
            conn.execute("PRAGMA foreign_keys=ON")
            # Deleted text is overwritten on disk, not just unlinked: `forget` must really forget.
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            self._local.conn = conn
            self._local.db = sqlite_utils.Database(conn)
            with self._connections_lock:
                self._connections.add(conn)
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        self.conn  # noqa: B018 - makes sure this thread's connection exists
        return self._local.db

    @property
    def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Bring the schema up to date, one migration per transaction. The version is read inside each
        transaction, so two processes opening a new file at once never run a migration twice. An up-to-date
        file is only read: opening it never waits for another process's write."""
        if self.version == len(MIGRATIONS):
            return
        while True:
            with self.transaction():
                current = self.version
                if current > len(MIGRATIONS):
                    raise CompanionError(
                        f"The memory file {self.path} was written by a newer companion (schema {current}); "
                        "upgrade companion."
                    )
                if current == len(MIGRATIONS):
                    return
                MIGRATIONS[current](self.db)
                self.conn.execute(f"PRAGMA user_version = {current + 1}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except SQL_ERRORS as error:
            raise storage_error(self.path, error) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as error:
            with contextlib.suppress(*SQL_ERRORS):
                conn.execute("ROLLBACK")
            if isinstance(error, SQL_ERRORS):
                raise storage_error(self.path, error) from None
            raise

    def writing(
        self, conn: sqlite3.Connection | None
    ) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """The caller's transaction when it passes one, else a new one."""
        return self.transaction() if conn is None else contextlib.nullcontext(conn)

    # -- sessions -------------------------------------------------------------------------------------------
    def new_session(
        self,
        title: str = "",
        persona: str = "",
        parent_id: int | None = None,
        branch_at: int | None = None,
        started_at: str | None = None,
    ) -> int:
        with self.transaction() as conn:
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

    def close_session(self, session_id: int) -> None:
        """The conversation is over: an empty session (nothing said, no branch of it) is removed; one with
        messages is marked ended, so consolidation may take it."""
        with self.transaction() as conn:
            conn.execute(
                "delete from sessions where id = ? and not exists (select 1 from messages where session_id = ?)"
                " and not exists (select 1 from sessions where parent_id = ?)",
                (session_id, session_id, session_id),
            )
            conn.execute(
                "update sessions set ended_at = ? where id = ? and ended_at is null",
                (timeutil.now_iso(), session_id),
            )

    def session_exists(self, session_id: int) -> bool:
        return self.conn.execute("select 1 from sessions where id = ?", (session_id,)).fetchone() is not None

    def session_persona(self, session_id: int) -> str:
        row = self.conn.execute("select persona from sessions where id = ?", (session_id,)).fetchone()
        return str(row[0] or "") if row else ""

    def conversation(self, session_id: int) -> list[Message]:
        """What a session's conversation reads as: a branch continues its parent's messages before the branch
        point; replaced replies (regenerated) are left out."""
        row = self.conn.execute(
            "select parent_id, branch_at from sessions where id = ?", (session_id,)
        ).fetchone()
        before: list[Message] = []
        if row and row[0] is not None and row[0] != session_id:
            before = [m for m in self.conversation(int(row[0])) if row[1] is None or m.id < row[1]]
        rows = self.db.query(
            "select * from messages where session_id = ? and replaced = 0 order by id", [session_id]
        )
        return before + [Message.from_row(r) for r in rows]

    def lineage(self, session_id: int) -> list[int]:
        """A session and the sessions it branched from, nearest first."""
        chain = [session_id]
        while True:
            row = self.conn.execute("select parent_id from sessions where id = ?", (chain[-1],)).fetchone()
            if not row or row[0] is None or row[0] in chain:
                return chain
            chain.append(int(row[0]))

    def sessions_overview(self, limit: int) -> list[SessionOverview]:
        """The newest sessions first, each with its message count and latest summary."""
        rows = self.conn.execute(
            "select s.id, s.started_at, s.parent_id, s.persona,"
            " (select count(*) from messages m where m.session_id = s.id and m.replaced = 0),"
            " (select text from memories k where k.session_id = s.id and k.kind = 'summary'"
            "  order by k.id desc limit 1)"
            " from sessions s order by s.id desc limit ?",
            (limit,),
        ).fetchall()
        return [SessionOverview(r[0], r[1], r[2], r[3] or "", r[4], r[5]) for r in rows]

    def session_summary(self, session_id: int) -> str | None:
        row = self.conn.execute(
            "select text from memories where session_id = ? and kind = 'summary' order by id desc limit 1",
            (session_id,),
        ).fetchone()
        return row[0] if row else None

    # -- messages -------------------------------------------------------------------------------------------
    def add_message(
        self,
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
    ) -> int:
        """Insert one message and commit it before returning. `reasoning` is kept beside the text (a reasoning
        model's, when the user keeps it), never as part of it."""
        with self.transaction() as conn:
            previous = conn.execute(
                "select text from messages where session_id = ? order by id desc limit 1", (session_id,)
            ).fetchone()
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
                    context_text(previous[0] if previous else None, text),
                    event_time(text, said_at),
                    reasoning or None,
                ),
            )
            return int(cursor.lastrowid or 0)

    def update_message(
        self,
        message_id: int,
        text: str,
        *,
        incomplete: bool,
        token_count: int | None = None,
        model: str | None = None,
        reasoning: str | None = None,
    ) -> None:
        """Rewrite a reply that was saved while being written (its text so far), keeping its place."""
        with self.transaction() as conn:
            row = conn.execute(
                "select session_id, created_at from messages where id = ?", (message_id,)
            ).fetchone()
            if row is None:
                return
            previous = conn.execute(
                "select text from messages where session_id = ? and id < ? order by id desc limit 1",
                (row[0], message_id),
            ).fetchone()
            conn.execute(
                "update messages set text = ?, context = ?, incomplete = ?, token_count = coalesce(?, token_count),"
                " model = coalesce(?, model), event_time = ?, reasoning = coalesce(?, reasoning) where id = ?",
                (
                    text,
                    context_text(previous[0] if previous else None, text),
                    int(incomplete),
                    token_count,
                    model,
                    event_time(text, row[1]),
                    reasoning or None,
                    message_id,
                ),
            )

    def mark_replaced(self, message_id: int) -> None:
        """A regenerated reply stays in the file, out of the conversation and out of recall."""
        with self.transaction() as conn:
            conn.execute("update messages set replaced = 1, archived = 1 where id = ?", (message_id,))
            self.audit(conn, "replace", "message", message_id, None, None, "regenerated")

    def get_message(self, message_id: int) -> Message | None:
        rows = list(self.db.query("select * from messages where id = ?", [message_id]))
        return Message.from_row(rows[0]) if rows else None

    def neighbours(self, message_id: int, before: int = 1, after: int = 1) -> list[Message]:
        """The turns around a message in its session (not the message itself), in order."""
        row = self.conn.execute("select session_id from messages where id = ?", (message_id,)).fetchone()
        if not row:
            return []
        earlier = self.db.query(
            "select * from messages where session_id = ? and id < ? order by id desc limit ?",
            [row[0], message_id, before],
        )
        later = self.db.query(
            "select * from messages where session_id = ? and id > ? order by id limit ?",
            [row[0], message_id, after],
        )
        return [*reversed([Message.from_row(r) for r in earlier]), *(Message.from_row(r) for r in later)]

    def earlier_messages(self, exclude_session: int, before_id: int | None, limit: int) -> list[Message]:
        """A page of messages of other sessions said before `before_id` (newest page first, oldest first
        within it): the chat screen pages them in above the conversation as the user scrolls up."""
        clause, params = "", [exclude_session]
        if before_id is not None:
            clause = " and id < ?"
            params.append(before_id)
        rows = self.db.query(
            f"select * from messages where session_id != ? and replaced = 0{clause} order by id desc limit ?",
            [*params, limit],
        )
        return list(reversed([Message.from_row(r) for r in rows]))

    def messages_page(self, session_id: int | None = None, limit: int = 200) -> list[Message]:
        """Messages in the order they were said, of one session or all."""
        where, params = ("where session_id = ?", [session_id]) if session_id is not None else ("", [])
        rows = self.db.query(f"select * from messages {where} order by id limit ?", [*params, limit])
        return [Message.from_row(r) for r in rows]

    def derived_from(self, message_id: int) -> list[int]:
        """The memories drawn from a message (its provenance, read the other way)."""
        rows = self.conn.execute(
            "select memory_id from memory_sources where message_id = ? order by memory_id", (message_id,)
        )
        return [r[0] for r in rows]

    def has_recallable(self, outside_session: int) -> bool:
        """Anything to recall outside this conversation? (Saves loading the embedder on a first chat.)"""
        row = self.conn.execute(
            "select exists(select 1 from messages where session_id != ? and archived = 0)"
            " or exists(select 1 from memories)",
            (outside_session,),
        ).fetchone()
        return bool(row[0])

    def count(self, table: str) -> int:
        return int(self.conn.execute(f"select count(*) from [{table}]").fetchone()[0])

    # -- memories -------------------------------------------------------------------------------------------
    def add_memory(
        self,
        kind: str,
        text: str,
        *,
        sources: list[int] | None = None,
        event_time: str | None = None,
        importance: float = 0.5,
        reason: str = "",
        session_id: int | None = None,
        period: str | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> int:
        """Insert a derived memory with its provenance and an audit entry, in one transaction."""
        if kind not in MEMORY_KINDS:
            raise CompanionError(f"'{kind}' is not a memory kind; use one of: {', '.join(MEMORY_KINDS)}.")
        event_time = timeutil.normalize(event_time)
        with self.writing(conn) as c:
            now = timeutil.now_iso()
            cursor = c.execute(
                "insert into memories (kind, text, event_time, created_at, updated_at, importance, strength,"
                " valid_from, session_id, period, uid) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
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
                ),
            )
            memory_id = int(cursor.lastrowid or 0)
            self.add_sources(memory_id, sources or [], c)
            self.audit(c, "add", "memory", memory_id, None, text, reason)
            return memory_id

    def add_sources(self, memory_id: int, message_ids: list[int], conn: sqlite3.Connection) -> None:
        conn.executemany(
            "insert or ignore into memory_sources (memory_id, message_id) values (?, ?)",
            [(memory_id, m) for m in message_ids],
        )

    def get_memory(self, memory_id: int) -> Memory | None:
        rows = list(self.db.query("select * from memories where id = ?", [memory_id]))
        return Memory.from_row(rows[0]) if rows else None

    def memory_sources(self, memory_id: int) -> list[Message]:
        rows = self.db.query(
            "select m.* from messages m join memory_sources s on s.message_id = m.id where s.memory_id = ?"
            " order by m.id",
            [memory_id],
        )
        return [Message.from_row(r) for r in rows]

    def threads(self, state: str = "open", due_before: str | None = None, limit: int = 1000) -> list[Memory]:
        """Threads (future events the companion may ask about) by state, soonest first; with `due_before`,
        only those whose date has come by then."""
        clause, params = "", [state]
        if due_before is not None:
            clause = " and event_time <= ?"
            params.append(timeutil.normalize(due_before) or due_before)
        rows = self.db.query(
            f"select * from memories where thread = ? and {ACTIVE}{clause} order by event_time, id limit ?",
            [*params, limit],
        )
        return [Memory.from_row(r) for r in rows]

    def history(self, target: str, target_id: int) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "select * from audit where target = ? and target_id = ? order by id", [target, target_id]
            )
        )

    @staticmethod
    def audit(
        conn: sqlite3.Connection,
        action: str,
        target: str,
        target_id: int | None,
        old_text: str | None,
        new_text: str | None,
        reason: str = "",
    ) -> None:
        conn.execute(
            "insert into audit (at, action, target, target_id, old_text, new_text, reason)"
            " values (?, ?, ?, ?, ?, ?, ?)",
            (timeutil.now_iso(), action, target, target_id, old_text, new_text, reason),
        )

    # -- vectors and meta -----------------------------------------------------------------------------------
    def put_vectors(
        self, conn: sqlite3.Connection, rows: list[tuple[int, str, int, int, str, bytes]]
    ) -> None:
        """rows: (key, kind, item_id, variant, model, float32 bytes). A key already there is updated (an upsert,
        so the fingerprint triggers see it as one vector, not two)."""
        conn.executemany(
            "insert into vectors (key, kind, item_id, variant, model, vector) values (?, ?, ?, ?, ?, ?)"
            " on conflict(key) do update set kind = excluded.kind, item_id = excluded.item_id,"
            " variant = excluded.variant, model = excluded.model, vector = excluded.vector",
            rows,
        )

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("select value from meta where key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str, conn: sqlite3.Connection | None = None) -> None:
        with self.writing(conn) as c:
            c.execute("insert or replace into meta (key, value) values (?, ?)", (key, value))

    def vector_fingerprint(self, model: str) -> tuple[int, int]:
        """(count, checksum) of the vectors of one model: what a saved FAISS index must match. Kept by
        triggers, so it costs nothing to read."""
        row = self.conn.execute(
            "select count, checksum from vector_fingerprints where model = ?", (model,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        if self._lock.held:
            with contextlib.suppress(*SQL_ERRORS):
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._close_connections()
        self._lock.release()

    def _close_connections(self) -> None:
        with self._connections_lock:
            for conn in list(self._connections):
                with contextlib.suppress(*SQL_ERRORS):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()


def new_uid() -> str:
    """The identity of a new session or memory; it travels with exports (see `schema.row_uid`)."""
    return uuid.uuid4().hex


def context_text(previous: str | None, text: str) -> str:
    """A message read together with the turn before it (what recall's context features see)."""
    return f"{previous}\n{text}" if previous else text
