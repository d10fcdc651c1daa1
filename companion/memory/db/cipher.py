"""The memory file's encryption as connections see it: whether a file is encrypted (read from its header and the
marker beside it), and SQLCipher connections unlocked with a key. Rewriting a whole file (encrypt, decrypt,
recovering an interrupted rewrite) is `memory/encryption.py`."""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from companion.errors import CompanionError
from companion.paths import FILE_MODE


@dataclass(frozen=True)
class State:
    encrypted: bool
    unlock: str  # "keyring" | "passphrase" | "" (not encrypted)
    damaged: bool = False  # neither a plain SQLite file nor one companion encrypted here

    def describe(self) -> str:
        if self.damaged:
            return "damaged: it is neither a SQLite file nor a file companion encrypted here"
        if not self.encrypted:
            return "not encrypted (`companion memory encrypt` turns it on)"
        where = "the OS keyring" if self.unlock == "keyring" else "a passphrase"
        return f"encrypted with SQLCipher, unlocked by {where}"


def marker(database: Path) -> Path:
    """`memory.db.unlock`: which key source unlocks the encrypted file, and the file's salt (its first 16
    bytes), so an encrypted file is told from a damaged one. No key material."""
    return database.with_name(database.name + ".unlock")


def keyring_entry(database: Path) -> str:
    return f"memory-key:{database.resolve()}"


def file_head(database: Path) -> bytes:
    try:
        with open(database, "rb") as handle:
            return handle.read(16)
    except OSError:
        return b""


def state(database: Path) -> State:
    head = file_head(database)
    if not head or head == SQLITE_HEADER:
        return State(False, "")  # no file yet, an empty one, or plain SQLite
    try:
        words = marker(database).read_text(encoding="utf-8").split()
    except OSError:
        return State(False, "", damaged=True)  # companion never encrypted this file here
    unlock = words[0] if words and words[0] in ("keyring", "passphrase") else "passphrase"
    salt = words[words.index("salt") + 1] if "salt" in words[:-1] else None
    if len(head) < 16 or (salt is not None and salt != head.hex()):
        return State(False, "", damaged=True)  # not the file that was encrypted
    return State(True, unlock)


def damaged_sentence(database: Path) -> str:
    return (
        f"The memory file {database} is damaged: it is neither a SQLite file nor one companion encrypted here. "
        "Move it aside and restore a backup or an export (`companion memory import`); if it is an encrypted "
        f"memory file copied from another machine, copy its {marker(database).name} beside it too."
    )


def check_readable(database: Path) -> None:
    """Before a plain (unkeyed) open: one sentence for an encrypted file without its key, or a damaged one."""
    current = state(database)
    if current.damaged:
        raise CompanionError(damaged_sentence(database))
    if current.encrypted:
        raise CompanionError(
            f"The memory file {database} is encrypted; give its passphrase (COMPANION_PASSPHRASE) or unlock "
            "the OS keyring that holds its key."
        )


# -- SQLCipher connections ------------------------------------------------------------------------------------
SQLITE_HEADER = b"SQLite format 3\x00"


def is_encrypted_file(path: Path) -> bool:
    """Whether companion encrypted this file (its header is not plain SQLite and its marker says so)."""
    return state(path).encrypted


def cipher_module() -> Any:
    """sqlcipher3's DB-API module (imported on first use: only encrypted files need it)."""
    import sqlcipher3.dbapi2 as cipher

    return cipher


def cipher_errors(name: str) -> tuple[type[Exception], ...]:
    """SQLCipher's exception class of that name (`Error`, `OperationalError`), as a tuple to catch."""
    try:
        return (getattr(cipher_module(), name),)
    except ImportError:  # pragma: no cover - sqlcipher3-wheels is a dependency
        return ()


@functools.cache
def cipher_connection_class() -> Any:
    """An SQLCipher connection class that can be weakly referenced (made once, on first use)."""
    return type("CipherConnection", (cipher_module().Connection,), {})


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


def verify_copy(path: Path, key: str | None, expect: dict[str, int], version: int) -> None:
    import sqlite3

    conn = cipher_module().connect(str(path)) if key is not None else sqlite3.connect(str(path))
    try:
        if key is not None:
            apply_key(conn, key)
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise CompanionError(
                "The new memory file failed its integrity check; the old one is kept as it was."
            )
        if conn.execute("PRAGMA user_version").fetchone()[0] != version:
            raise CompanionError(
                "The new memory file lost its schema version; the old one is kept as it was."
            )
        for table, count in expect.items():
            if conn.execute(f"select count(*) from [{table}]").fetchone()[0] != count:
                raise CompanionError(
                    f"The new memory file does not hold every row of {table}; the old one is kept as it was."
                )
    finally:
        conn.close()


def row_counts(conn: object) -> dict[str, int]:
    tables = [
        r[0]
        for r in conn.execute(  # type: ignore[attr-defined]
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
            " and sql not like 'create virtual table%' and name not like '%_fts_%'"
        )
    ]
    return {t: conn.execute(f"select count(*) from [{t}]").fetchone()[0] for t in tables}  # type: ignore[attr-defined]


def copy_with_key(database: Path, source_key: str | None, target: Path, target_key: str | None) -> None:
    """Copy the whole database into `target` with another key (or none) through sqlcipher_export, and verify
    the copy (integrity, schema version, every table's rows). The target is private (0600) from the moment it
    exists; a failed copy is shredded."""
    shred(target)
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    conn = cipher_module().connect(str(database), isolation_level=None)
    try:
        if source_key is not None:
            apply_key(conn, source_key)
        else:
            conn.execute("PRAGMA cipher_log_level = NONE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        application = conn.execute("PRAGMA application_id").fetchone()[0]
        expect = row_counts(conn)
        attach_key = key_literal(target_key) if target_key is not None else "''"
        conn.execute(f"ATTACH DATABASE ? AS target KEY {attach_key}", (str(target),))
        conn.execute("SELECT sqlcipher_export('target')")
        conn.execute(f"PRAGMA target.user_version = {int(version)}")
        conn.execute(f"PRAGMA target.application_id = {int(application)}")
        conn.execute("DETACH DATABASE target")
    except SQL_ERRORS as error:
        shred(target)
        raise CompanionError(
            f"The memory file could not be rewritten ({error}); it is kept as it was."
        ) from None
    finally:
        conn.close()
    try:
        verify_copy(target, target_key, expect, version)
    except BaseException:
        shred(target)
        raise


def shred(path: Path) -> None:
    """Remove a file (and its SQLite journals) whose bytes may hold the memory in the clear, overwriting it
    first."""
    for leftover in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            size = leftover.stat().st_size
        except FileNotFoundError:
            continue
        with contextlib.suppress(OSError), open(leftover, "r+b") as handle:
            handle.write(b"\x00" * size)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


# What the memory file's connections raise: sqlite3's, or SQLCipher's for an encrypted file.
SQL_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, *cipher_errors("Error"))
SQL_OPERATIONAL_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.OperationalError,
    *cipher_errors("OperationalError"),
)
