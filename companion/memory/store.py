"""The memory file: one SQLite database (sqlite-utils), WAL, versioned migrations via `PRAGMA user_version`.

Every message is kept here (the episodic log); it is the ground truth everything else is derived from. A
message is committed before the model is asked anything, so a crash mid-reply never loses what the user said.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from companion.errors import CompanionError, storage_error
from companion.paths import FILE_MODE, ensure_private_dir


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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
            source_id=row["source_id"],
            token_count=row["token_count"],
        )


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
        )


MEMORY_KINDS = ("fact", "summary", "digest", "profile", "note", "lore")
# FAISS ids: one int64 key per vector, from the item and which text of it was embedded.
VARIANT_MESSAGE, VARIANT_MESSAGE_CONTEXT, VARIANT_MEMORY = 0, 1, 2


def vector_key(item_id: int, variant: int) -> int:
    return item_id * 4 + variant


def split_key(key: int) -> tuple[int, int]:
    return key // 4, key % 4


@dataclass(frozen=True)
class Session:
    id: int
    title: str
    started_at: str
    ended_at: str | None
    off_record: bool


def _m001_sessions_and_messages(db: sqlite_utils.Database) -> None:
    db["sessions"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "persona": str,
            "title": str,
            "started_at": str,
            "ended_at": str,
            "off_record": int,
            "external_id": str,
        },
        pk="id",
        not_null={"started_at"},
        defaults={"off_record": 0, "title": "", "persona": ""},
    )
    db["messages"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "session_id": int,
            "role": str,
            "speaker": str,
            "text": str,
            "created_at": str,
            "source_id": str,
            "token_count": int,
            "incomplete": int,
            "model": str,
        },
        pk="id",
        foreign_keys=[("session_id", "sessions", "id")],
        not_null={"session_id", "role", "text", "created_at"},
        defaults={"incomplete": 0, "speaker": ""},
    )
    db["messages"].create_index(["session_id", "id"])  # type: ignore[union-attr]
    db["messages"].create_index(["created_at"])  # type: ignore[union-attr]


def _fts(db: sqlite_utils.Database, table: str, columns: list[str]) -> None:
    """An external-content FTS5 table kept in sync by triggers (what sqlite-utils' `enable_fts` writes, issued
    statement by statement: `enable_fts` uses executescript, which would commit the migration's transaction)."""
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    fts = f"{table}_fts"
    db.execute(
        f"create virtual table {fts} using fts5({cols}, content={table}, content_rowid=id, "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    db.execute(f"insert into {fts} (rowid, {cols}) select id, {cols} from {table}")
    db.execute(
        f"create trigger {table}_ai after insert on {table} begin "
        f"insert into {fts} (rowid, {cols}) values (new.id, {new}); end"
    )
    db.execute(
        f"create trigger {table}_ad after delete on {table} begin "
        f"insert into {fts} ({fts}, rowid, {cols}) values ('delete', old.id, {old}); end"
    )
    db.execute(
        f"create trigger {table}_au after update of {cols} on {table} begin "
        f"insert into {fts} ({fts}, rowid, {cols}) values ('delete', old.id, {old}); "
        f"insert into {fts} (rowid, {cols}) values (new.id, {new}); end"
    )


def _m002_long_term_memory(db: sqlite_utils.Database) -> None:
    # The neighbouring turn, for recall: a question often matches a reply only together with what it answered.
    db.execute("alter table messages add column context text not null default ''")
    db.execute("create index messages_source_id on messages(source_id)")
    db.execute("create index sessions_external_id on sessions(external_id)")
    db["memories"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "kind": str,  # fact | summary | digest | profile | note
            "text": str,
            "event_time": str,
            "created_at": str,
            "updated_at": str,
            "importance": float,
            "strength": float,
            "last_recalled_at": str,
            "recall_count": int,
            "pinned": int,
            "archived": int,
            "valid_from": str,
            "valid_to": str,
            "superseded_by": int,
            "session_id": int,
            "persona": str,
        },
        pk="id",
        not_null={"kind", "text", "created_at"},
        defaults={
            "importance": 0.5,
            "strength": 1.0,
            "recall_count": 0,
            "pinned": 0,
            "archived": 0,
            "persona": "",
        },
    )
    db.execute("create index memories_kind on memories(kind, archived)")
    db["memory_sources"].create(  # type: ignore[union-attr]
        {"memory_id": int, "message_id": int},
        pk=("memory_id", "message_id"),
        foreign_keys=[("memory_id", "memories", "id"), ("message_id", "messages", "id")],
    )
    db.execute("create index memory_sources_message on memory_sources(message_id)")
    db["audit"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "at": str,
            "action": str,
            "target": str,
            "target_id": int,
            "old_text": str,
            "new_text": str,
            "reason": str,
        },
        pk="id",
        not_null={"at", "action", "target"},
    )
    db.execute("create index audit_target on audit(target, target_id)")
    # Every embedding, so the SQLite file alone is the whole memory; FAISS is a cache rebuilt from here.
    db["vectors"].create(  # type: ignore[union-attr]
        {"key": int, "kind": str, "item_id": int, "variant": int, "model": str, "vector": bytes},
        pk="key",
        not_null={"kind", "item_id", "variant", "model", "vector"},
    )
    db.execute("create index vectors_item on vectors(kind, item_id)")
    db["meta"].create({"key": str, "value": str}, pk="key")  # type: ignore[union-attr]
    # Personas the user talks with; the card (Character Card V2 JSON) is the persona issue's to fill.
    db["personas"].create(  # type: ignore[union-attr]
        {"id": int, "name": str, "card": str, "created_at": str, "updated_at": str},
        pk="id",
        not_null={"name", "created_at"},
    )
    db.execute("create unique index personas_name on personas(name)")
    _fts(db, "messages", ["text", "context"])
    _fts(db, "memories", ["text"])


def _m003_profile_and_threads(db: sqlite_utils.Database) -> None:
    # The user's portrait, one row per version: sections as JSON, the diff against the version before, and the
    # memories it was built from.
    db["profile_versions"].create(  # type: ignore[union-attr]
        {"id": int, "created_at": str, "sections": str, "diff": str, "sources": str, "reason": str},
        pk="id",
        not_null={"created_at", "sections"},
    )
    db["profile_vetoes"].create({"line": str, "created_at": str}, pk="line")  # type: ignore[union-attr]
    # A fact about a future event is an open thread until it is closed ("open" | "closed" | null).
    db.execute("alter table memories add column thread text")


def _m004_archived_messages(db: sqlite_utils.Database) -> None:
    # Only when the user turns on `memory.archive_messages`: a faded message leaves recall, stays in the file.
    db.execute("alter table messages add column archived integer not null default 0")


def _m005_branches(db: sqlite_utils.Database) -> None:
    # Editing an earlier message branches the conversation: the new session continues the parent's messages
    # before `branch_at`, and the old branch stays as it was. A regenerated reply is kept, marked replaced.
    db.execute("alter table sessions add column parent_id integer")
    db.execute("alter table sessions add column branch_at integer")
    db.execute("alter table messages add column replaced integer not null default 0")


SQLITE_HEADER = b"SQLite format 3\x00"


def is_encrypted_file(path: Path) -> bool:
    """An SQLCipher file has no plain SQLite header (its first page is ciphertext, salt first)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return len(head) == 16 and head != SQLITE_HEADER


@functools.cache
def _cipher_connection_class() -> Any:
    """An SQLCipher connection class that can be weakly referenced (made once, on first use)."""
    return type("_CipherConnection", (_cipher().Connection,), {})


# Each migration runs once, in order, in one transaction with the version bump; the list only ever grows.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m001_sessions_and_messages,
    _m002_long_term_memory,
    _m003_profile_and_threads,
    _m004_archived_messages,
    _m005_branches,
]


class _Connection(sqlite3.Connection):
    """A plain connection that can be weakly referenced (the C type cannot)."""


def _cipher() -> Any:
    import sqlcipher3.dbapi2 as cipher

    return cipher


def _cipher_errors(name: str) -> tuple[type[Exception], ...]:
    try:
        return (getattr(_cipher(), name),)
    except ImportError:  # pragma: no cover - sqlcipher3-wheels is a dependency
        return ()


# What the memory file's connections raise: sqlite3's, or SQLCipher's for an encrypted file.
SQL_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, *_cipher_errors("Error"))
SQL_OPERATIONAL_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.OperationalError,
    *_cipher_errors("OperationalError"),
)


def key_literal(key: str) -> str:
    """A key as SQLCipher reads it in `PRAGMA key` or `ATTACH … KEY`: a raw hex key (x'…') in double quotes,
    a passphrase as an SQL string."""
    if key.startswith("x'") and key.endswith("'"):
        return f'"{key}"'
    return "'" + key.replace("'", "''") + "'"


def apply_key(conn: Any, key: str) -> None:
    """Unlock an SQLCipher connection. Its own log stays quiet: a wrong key is reported once, by us."""
    conn.execute("PRAGMA cipher_log_level = NONE")
    conn.execute(f"PRAGMA key = {key_literal(key)}")


class Store:
    """The memory database. Safe to share between threads: each thread gets its own connection.

    Writes are plain SQL inside `transaction()`: sqlite-utils' own write helpers commit on their own, which would
    end an enclosing transaction early; sqlite-utils serves the schema and the queries.
    """

    def __init__(self, path: Path, key: str | None = None, busy_timeout: float = 30.0) -> None:
        """`key`: the SQLCipher key of an encrypted file (a raw x'…' hex key or a passphrase). `busy_timeout`:
        how long a write waits for another connection's lock before saying the file is busy."""
        self.path = path
        self.key = key
        self.busy_timeout = busy_timeout
        ensure_private_dir(path.parent)
        existed = path.exists()
        self._local = threading.local()
        # Weak: a finished thread's connection is closed when its thread-local storage goes away.
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._connections_lock = threading.Lock()
        try:
            conn = self.conn
            if not existed:
                os.chmod(path, FILE_MODE)
            conn.execute("PRAGMA journal_mode=WAL")
            self.migrate()
        except SQL_ERRORS as error:
            self._close_connections()
            if key is not None and "not a database" in str(error):
                raise CompanionError(
                    f"The memory file {path} does not open with this key or passphrase; check "
                    "COMPANION_PASSPHRASE (or the OS keyring entry) and try again."
                ) from None
            if key is None and "not a database" in str(error) and is_encrypted_file(path):
                raise CompanionError(
                    f"The memory file {path} is encrypted; give its passphrase (COMPANION_PASSPHRASE) or unlock "
                    "the OS keyring that holds its key."
                ) from None
            raise CompanionError(
                f"The memory file {path} cannot be opened ({error}); if it is damaged, move it aside and restore "
                "a backup or an export."
            ) from None
        except CompanionError:
            self._close_connections()
            raise

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection. Each thread has its own (WAL lets readers and one writer work at once;
        a shared connection would mix one thread's statements into another's transaction)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.key is not None:
                cipher = _cipher()
                conn = cipher.connect(
                    str(self.path),
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                    factory=_cipher_connection_class(),
                )
                apply_key(conn, self.key)
            else:
                conn = sqlite3.connect(
                    str(self.path),
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                    factory=_Connection,
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
        current = self.version
        if current > len(MIGRATIONS):
            raise CompanionError(
                f"The memory file {self.path} was written by a newer companion (schema {current}); upgrade companion."
            )
        for number, migration in enumerate(MIGRATIONS[current:], start=current + 1):
            with self.transaction():
                migration(self.db)
                self.conn.execute(f"PRAGMA user_version = {number}")

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

    # -- sessions -------------------------------------------------------------------------------------------
    def new_session(
        self,
        title: str = "",
        persona: str = "",
        off_record: bool = False,
        parent_id: int | None = None,
        branch_at: int | None = None,
        started_at: str | None = None,
    ) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "insert into sessions (title, persona, started_at, off_record, parent_id, branch_at)"
                " values (?, ?, ?, ?, ?, ?)",
                (title, persona, started_at or utcnow(), int(off_record), parent_id, branch_at),
            )
            return int(cursor.lastrowid or 0)

    def latest_session(self) -> Session | None:
        row = self.conn.execute(
            "select id, title, started_at, ended_at, off_record from sessions order by id desc limit 1"
        ).fetchone()
        return Session(row[0], row[1] or "", row[2], row[3], bool(row[4])) if row else None

    def drop_session_if_empty(self, session_id: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "delete from sessions where id = ? and not exists (select 1 from messages where session_id = ?)"
                " and not exists (select 1 from sessions where parent_id = ?)",
                (session_id, session_id, session_id),
            )

    def end_session(self, session_id: int) -> None:
        with self.transaction():
            self.conn.execute("update sessions set ended_at = ? where id = ?", (utcnow(), session_id))

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
    ) -> int:
        """Insert one message and commit it before returning."""
        with self.transaction() as conn:
            previous = conn.execute(
                "select text from messages where session_id = ? order by id desc limit 1", (session_id,)
            ).fetchone()
            context = f"{previous[0]}\n{text}" if previous else text
            cursor = conn.execute(
                "insert into messages (session_id, role, speaker, text, created_at, source_id, token_count,"
                " incomplete, model, context) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    role,
                    speaker,
                    text,
                    created_at or utcnow(),
                    source_id,
                    token_count,
                    int(incomplete),
                    model,
                    context,
                ),
            )
            return int(cursor.lastrowid or 0)

    def session_messages(self, session_id: int) -> list[Message]:
        rows = self.db.query("select * from messages where session_id = ? order by id", [session_id])
        return [Message.from_row(row) for row in rows]

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

    def update_message(
        self,
        message_id: int,
        text: str,
        *,
        incomplete: bool,
        token_count: int | None = None,
        model: str | None = None,
    ) -> None:
        """Rewrite a reply that was saved while being written (its text so far), keeping its place."""
        with self.transaction() as conn:
            row = conn.execute("select session_id from messages where id = ?", (message_id,)).fetchone()
            if row is None:
                return
            previous = conn.execute(
                "select text from messages where session_id = ? and id < ? order by id desc limit 1",
                (row[0], message_id),
            ).fetchone()
            conn.execute(
                "update messages set text = ?, context = ?, incomplete = ?, token_count = coalesce(?, token_count),"
                " model = coalesce(?, model) where id = ?",
                (
                    text,
                    f"{previous[0]}\n{text}" if previous else text,
                    int(incomplete),
                    token_count,
                    model,
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
        conn: sqlite3.Connection | None = None,
    ) -> int:
        """Insert a derived memory with its provenance and an audit entry, in one transaction."""
        if kind not in MEMORY_KINDS:
            raise CompanionError(f"'{kind}' is not a memory kind; use one of: {', '.join(MEMORY_KINDS)}.")
        with self.transaction() if conn is None else contextlib.nullcontext(conn) as c:
            now = utcnow()
            cursor = c.execute(
                "insert into memories (kind, text, event_time, created_at, updated_at, importance, strength,"
                " valid_from, session_id) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                ),
            )
            memory_id = int(cursor.lastrowid or 0)
            c.executemany(
                "insert or ignore into memory_sources (memory_id, message_id) values (?, ?)",
                [(memory_id, m) for m in sources or []],
            )
            self.audit(c, "add", "memory", memory_id, None, text, reason)
            return memory_id

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
            (utcnow(), action, target, target_id, old_text, new_text, reason),
        )

    # -- vectors and meta -----------------------------------------------------------------------------------
    def put_vectors(
        self, conn: sqlite3.Connection, rows: list[tuple[int, str, int, int, str, bytes]]
    ) -> None:
        """rows: (key, kind, item_id, variant, model, float32 bytes)."""
        conn.executemany(
            "insert or replace into vectors (key, kind, item_id, variant, model, vector) values (?, ?, ?, ?, ?, ?)",
            rows,
        )

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("select value from meta where key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str, conn: sqlite3.Connection | None = None) -> None:
        with self.transaction() if conn is None else contextlib.nullcontext(conn) as c:
            c.execute("insert or replace into meta (key, value) values (?, ?)", (key, value))

    def vector_fingerprint(self, model: str) -> tuple[int, int]:
        """(count, checksum) of the vectors of one model: what a saved FAISS index must match."""
        row = self.conn.execute(
            "select count(*), coalesce(sum(key % 1000003), 0) + coalesce(max(key), 0) from vectors where model = ?",
            (model,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        with contextlib.suppress(*SQL_ERRORS):
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._close_connections()

    def _close_connections(self) -> None:
        with self._connections_lock:
            for conn in list(self._connections):
                with contextlib.suppress(*SQL_ERRORS):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()
