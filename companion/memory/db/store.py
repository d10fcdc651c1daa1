"""The memory file: one SQLite database (sqlite-utils), WAL, its schema in `db/schema.py`.

Every message is kept here (the episodic log); it is the ground truth everything else is derived from. A
message is committed before the model is asked anything, so a crash mid-reply never loses what the user said.

This room owns the file itself: connections (one per thread), transactions, the file's identity, migrations and
the lock. What is in the tables is the tables room's (`memory/tables/`, the only code that writes SQL beside
the migrations); the faces and the engine ask it by name ("a page of earlier messages", "open threads due
before T").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from companion.errors import CompanionError, WrongKeyError, storage_error
from companion.memory.db import cipher
from companion.memory.db.cipher import SQL_ERRORS, SQL_OPERATIONAL_ERRORS
from companion.memory.db.lock import SharedLock, opening
from companion.memory.db.schema import APPLICATION_ID, MIGRATIONS
from companion.paths import FILE_MODE, ensure_private_dir

__all__ = ["SQL_ERRORS", "SQL_OPERATIONAL_ERRORS", "PlainConnection", "Store"]

FULL_BELOW_BYTES = 1 << 20  # less free than this under the memory file: the disk is full for SQLite


class PlainConnection(sqlite3.Connection):
    """A plain connection that can be weakly referenced (the C type cannot)."""


class Store:
    """The memory database. Safe to share between threads: each thread gets its own connection.

    Writes are plain SQL inside `transaction()`: sqlite-utils' own write helpers commit on their own, which would
    end an enclosing transaction early; sqlite-utils serves the schema and the queries.
    """

    def __init__(
        self,
        path: Path,
        key: str | None = None,
        busy_timeout: float = 30.0,
        unlock: Callable[[], str | None] | None = None,
    ) -> None:
        """`key`: the SQLCipher key of an encrypted file (a raw x'…' hex key or a passphrase); or `unlock`, which
        finds it once the shared lock is held — after waiting out another process's encrypt or decrypt, so the
        key fits the file as it is then, not as it was. `busy_timeout`: how long a write waits for another
        connection's lock before saying the file is busy. While open, the store holds the memory file's shared
        lock (no other process can rewrite the file under it)."""
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
        if unlock is not None:
            try:
                self.key = unlock()
            except BaseException:
                self._lock.release()
                raise
        try:
            with opening(path):
                existed = path.exists() and path.stat().st_size > 0
                if existed and self.key is None:
                    cipher.check_readable(path)
                conn = self.conn
                if not existed:
                    os.chmod(path, FILE_MODE)
                self._check_identity()
                conn.execute("PRAGMA journal_mode=WAL")
                self.migrate()
        except SQL_ERRORS as error:
            self._close_connections()
            self._lock.release()
            if self.key is not None and "not a database" in str(error):
                raise WrongKeyError(
                    f"The memory file {path} does not open with this key or passphrase; check "
                    "COMPANION_PASSPHRASE (or the OS keyring entry) and try again."
                ) from None
            if _disk_full(path):  # SQLite says "disk I/O error" when it cannot make its -shm file
                raise CompanionError(
                    f"The disk is full: the memory file {path} cannot be opened (SQLite needs room for its "
                    "journal); free some space and try again (nothing saved before was lost)."
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
                conn = cipher.cipher_module().connect(
                    str(self.path),
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                    factory=cipher.cipher_connection_class(),
                )
                cipher.apply_key(conn, self.key)
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

    def count(self, table: str) -> int:
        return int(self.conn.execute(f"select count(*) from [{table}]").fetchone()[0])

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def optimize(self) -> None:
        """SQLite's own upkeep of its query planner statistics (the nightly index job)."""
        self.conn.execute("PRAGMA optimize")

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


def _disk_full(path: Path) -> bool:
    """Whether the disk under the memory file is (all but) full."""
    try:
        return shutil.disk_usage(path.parent).free < FULL_BELOW_BYTES
    except OSError:
        return False
