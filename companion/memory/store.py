"""The memory file: one SQLite database (sqlite-utils), WAL, versioned migrations via `PRAGMA user_version`.

Every message is kept here (the episodic log); it is the ground truth everything else is derived from. A
message is committed before the model is asked anything, so a crash mid-reply never loses what the user said.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from companion.errors import CompanionError
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


# Each migration runs once, in order, in one transaction with the version bump; the list only ever grows.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m001_sessions_and_messages,
]


class Store:
    """The memory database. Safe to share between threads: writes are serialised by a lock.

    Writes are plain SQL inside `transaction()`: sqlite-utils' own write helpers commit on their own, which would
    end an enclosing transaction early; sqlite-utils serves the schema and the queries.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        ensure_private_dir(path.parent)
        existed = path.exists()
        try:
            self.conn = sqlite3.connect(
                str(path), check_same_thread=False, timeout=30.0, isolation_level=None
            )
            if not existed:
                os.chmod(path, FILE_MODE)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA busy_timeout=30000")
            self.db = sqlite_utils.Database(self.conn)
            self._lock = threading.RLock()
            self.migrate()
        except sqlite3.DatabaseError as error:
            raise CompanionError(
                f"The memory file {path} cannot be opened ({error}); if it is damaged, move it aside and restore "
                "a backup or an export."
            ) from None

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
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    # -- sessions -------------------------------------------------------------------------------------------
    def new_session(self, title: str = "", persona: str = "", off_record: bool = False) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "insert into sessions (title, persona, started_at, off_record) values (?, ?, ?, ?)",
                (title, persona, utcnow(), int(off_record)),
            )
            return int(cursor.lastrowid or 0)

    def latest_session(self) -> Session | None:
        row = self.conn.execute(
            "select id, title, started_at, ended_at, off_record from sessions order by id desc limit 1"
        ).fetchone()
        return Session(row[0], row[1] or "", row[2], row[3], bool(row[4])) if row else None

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
            cursor = conn.execute(
                "insert into messages (session_id, role, speaker, text, created_at, source_id, token_count,"
                " incomplete, model) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                ),
            )
            return int(cursor.lastrowid or 0)

    def session_messages(self, session_id: int) -> list[Message]:
        rows = self.db.query("select * from messages where session_id = ? order by id", [session_id])
        return [Message.from_row(row) for row in rows]

    def get_message(self, message_id: int) -> Message | None:
        rows = list(self.db.query("select * from messages where id = ?", [message_id]))
        return Message.from_row(rows[0]) if rows else None

    def count(self, table: str) -> int:
        return int(self.conn.execute(f"select count(*) from [{table}]").fetchone()[0])

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()
