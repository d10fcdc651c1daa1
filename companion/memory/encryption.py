"""Encryption at rest: the memory file as an SQLCipher database, its key in the OS keyring or a passphrase.

The key is 32 random bytes kept in the OS keyring (one entry per memory file). Where no keyring backend exists
(a headless Linux box) the user chooses a passphrase instead (typed at a prompt, or `COMPANION_PASSPHRASE` for
scripts), and SQLCipher derives the key from it. A key is never written to disk in the clear; a small marker
beside the file says only which of the two unlocks it. Whether a file is encrypted is read from the file itself
(an SQLCipher file has no plain SQLite header), so a crash between steps can never make the app misread it.

`encrypt` and `decrypt` migrate in place safely: write a new file next to the old one with `sqlcipher_export`,
verify it (integrity check, same schema version, same row count in every table), then swap it in with one
`os.replace`. While the file is encrypted the FAISS index is never saved (it would hold the embeddings in the
clear): it lives in memory and is rebuilt from the encrypted vectors at start.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets as random_secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from companion.errors import CompanionError
from companion.paths import FILE_MODE, Paths, write_private_text
from companion.secrets import SERVICE, keyring_usable

PASSPHRASE_ENV = "COMPANION_PASSPHRASE"
MIN_PASSPHRASE = 8

Ask = Callable[[str], str]


@dataclass(frozen=True)
class State:
    encrypted: bool
    unlock: str  # "keyring" | "passphrase" | "" (not encrypted)

    def describe(self) -> str:
        if not self.encrypted:
            return "not encrypted (`companion memory encrypt` turns it on)"
        where = "the OS keyring" if self.unlock == "keyring" else "a passphrase"
        return f"encrypted with SQLCipher, unlocked by {where}"


def marker(database: Path) -> Path:
    return database.with_name(database.name + ".unlock")


def keyring_entry(database: Path) -> str:
    return f"memory-key:{database.resolve()}"


def state(database: Path) -> State:
    if not is_encrypted_file(database):
        return State(False, "")
    try:
        unlock = marker(database).read_text(encoding="utf-8").strip()
    except OSError:
        unlock = "passphrase"
    return State(True, unlock if unlock in ("keyring", "passphrase") else "passphrase")


# -- SQLCipher connections ------------------------------------------------------------------------------------
SQLITE_HEADER = b"SQLite format 3\x00"


def is_encrypted_file(path: Path) -> bool:
    """An SQLCipher file has no plain SQLite header (its first page is ciphertext, salt first)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return len(head) == 16 and head != SQLITE_HEADER


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


def _keyring() -> object:
    import keyring

    return keyring


def passphrase(ask: Ask | None, prompt: str, confirm: bool = False) -> str:
    """COMPANION_PASSPHRASE, else typed at `ask` (twice when choosing one)."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        if ask is None:
            raise CompanionError(
                f"The memory file needs a passphrase: set {PASSPHRASE_ENV}, or run companion in a terminal to "
                "type it."
            )
        value = ask(prompt)
        if confirm and ask("Type it again: ") != value:
            raise CompanionError("The two passphrases differ; nothing was changed.")
    if confirm and len(value) < MIN_PASSPHRASE:
        raise CompanionError(f"The passphrase is too short; use at least {MIN_PASSPHRASE} characters.")
    if not value:
        raise CompanionError("The passphrase is empty; type the passphrase of the memory file.")
    return value


def unlock_key(database: Path, ask: Ask | None = None) -> str | None:
    """The SQLCipher key of the memory file, or None when it is not encrypted."""
    current = state(database)
    if not current.encrypted:
        return None
    if current.unlock == "keyring":
        import keyring.errors

        try:
            hexkey = _keyring().get_password(SERVICE, keyring_entry(database))  # type: ignore[attr-defined]
        except keyring.errors.KeyringError as error:
            raise CompanionError(
                f"The memory file is encrypted and its key is in the OS keyring, which cannot be reached ({error}); "
                "unlock the keyring and try again."
            ) from None
        if not hexkey:
            raise CompanionError(
                "The memory file is encrypted but its key is not in the OS keyring any more; restore the keyring "
                "entry or import an export."
            )
        return f"x'{hexkey}'"
    return passphrase(ask, "Passphrase for the memory file: ")


def _verify(path: Path, key: str | None, expect: dict[str, int], version: int) -> None:
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


def _counts(conn: object) -> dict[str, int]:
    tables = [
        r[0]
        for r in conn.execute(  # type: ignore[attr-defined]
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
            " and sql not like 'create virtual table%' and name not like '%_fts_%'"
        )
    ]
    return {t: conn.execute(f"select count(*) from [{t}]").fetchone()[0] for t in tables}  # type: ignore[attr-defined]


def _export(database: Path, source_key: str | None, target: Path, target_key: str | None) -> None:
    """Copy the whole database into `target` with another key (or none) through sqlcipher_export."""
    from companion.memory.store import SQL_ERRORS

    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    conn = cipher_module().connect(str(database), isolation_level=None)
    try:
        if source_key is not None:
            apply_key(conn, source_key)
        else:
            conn.execute("PRAGMA cipher_log_level = NONE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        expect = _counts(conn)
        attach_key = key_literal(target_key) if target_key is not None else "''"
        conn.execute(f"ATTACH DATABASE ? AS target KEY {attach_key}", (str(target),))
        conn.execute("SELECT sqlcipher_export('target')")
        conn.execute(f"PRAGMA target.user_version = {int(version)}")
        conn.execute("DETACH DATABASE target")
    except SQL_ERRORS as error:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        raise CompanionError(
            f"The memory file could not be rewritten ({error}); it is kept as it was."
        ) from None
    finally:
        conn.close()
    os.chmod(target, FILE_MODE)
    _verify(target, target_key, expect, version)


def _swap(new: Path, database: Path) -> None:
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{database}{suffix}").unlink()
    os.replace(new, database)
    fd = os.open(database.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encrypt(paths: Paths, ask: Ask | None = None, use_passphrase: bool = False) -> State:
    """Encrypt the memory file in place. The key goes to the OS keyring, or a passphrase is chosen where there
    is no keyring (or when `use_passphrase`)."""
    database = paths.database
    if state(database).encrypted:
        raise CompanionError("The memory file is already encrypted; nothing was changed.")
    if not database.exists():
        from companion.memory.store import Store

        Store(database).close()  # a new, empty memory file to encrypt
    unlock = "keyring" if keyring_usable() and not use_passphrase else "passphrase"
    if unlock == "keyring":
        hexkey = random_secrets.token_hex(32)
        key = f"x'{hexkey}'"
    else:
        key = passphrase(ask, "Choose a passphrase for the memory file: ", confirm=True)
    new = database.with_name(database.name + ".encrypting")
    _export(database, None, new, key)
    if unlock == "keyring":
        import keyring.errors

        try:
            _keyring().set_password(SERVICE, keyring_entry(database), hexkey)  # type: ignore[attr-defined]
        except keyring.errors.KeyringError as error:
            new.unlink()
            raise CompanionError(
                f"The OS keyring could not keep the key ({error}); nothing was changed."
            ) from None
    write_private_text(marker(database), unlock + "\n")
    _swap(new, database)
    # The FAISS index holds the embeddings in the clear: from now on it is only kept in memory.
    for stale in (paths.index_file, paths.index_file.with_name(paths.index_file.name + ".json")):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    return state(database)


def decrypt(paths: Paths, ask: Ask | None = None) -> State:
    """Turn encryption off: the memory file is rewritten in the clear, the keyring entry removed."""
    database = paths.database
    current = state(database)
    if not current.encrypted:
        raise CompanionError("The memory file is not encrypted; nothing was changed.")
    key = unlock_key(database, ask)
    from companion.memory.store import Store

    Store(database, key).close()  # a wrong passphrase fails here, with its clear message
    new = database.with_name(database.name + ".decrypting")
    _export(database, key, new, None)
    _swap(new, database)
    with contextlib.suppress(FileNotFoundError):
        marker(database).unlink()
    if current.unlock == "keyring":
        import keyring.errors

        with contextlib.suppress(keyring.errors.KeyringError):
            _keyring().delete_password(SERVICE, keyring_entry(database))  # type: ignore[attr-defined]
    return state(database)


# -- encrypted exports ----------------------------------------------------------------------------------------
SEALED_MAGIC = b"COMPANION-SEALED-EXPORT-1\n"
SALT_BYTES, NONCE_BYTES = 16, 12


def _derive(secret: str, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(secret.encode("utf-8"))


def seal(data: bytes, secret: str) -> bytes:
    """An export encrypted with a passphrase: scrypt for the key, AES-256-GCM for the bytes (authenticated,
    so a wrong passphrase or a damaged file is detected, never half-read)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = random_secrets.token_bytes(SALT_BYTES), random_secrets.token_bytes(NONCE_BYTES)
    return SEALED_MAGIC + salt + nonce + AESGCM(_derive(secret, salt)).encrypt(nonce, data, SEALED_MAGIC)


def unseal(blob: bytes, secret: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    body = blob[len(SEALED_MAGIC) :]
    if not blob.startswith(SEALED_MAGIC) or len(body) < SALT_BYTES + NONCE_BYTES + 16:
        raise CompanionError("The file is not a complete encrypted companion export; nothing was imported.")
    salt, nonce, data = (
        body[:SALT_BYTES],
        body[SALT_BYTES : SALT_BYTES + NONCE_BYTES],
        body[SALT_BYTES + NONCE_BYTES :],
    )
    try:
        return AESGCM(_derive(secret, salt)).decrypt(nonce, data, SEALED_MAGIC)
    except InvalidTag:
        raise CompanionError(
            "The passphrase does not open this export (or the file is damaged); nothing was imported."
        ) from None


def is_sealed_file(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SEALED_MAGIC)) == SEALED_MAGIC
    except OSError:
        return False
