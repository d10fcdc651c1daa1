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
import json
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


def _head(database: Path) -> bytes:
    try:
        with open(database, "rb") as handle:
            return handle.read(16)
    except OSError:
        return b""


def state(database: Path) -> State:
    head = _head(database)
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


def _write_marker(database: Path, unlock: str, encrypted_file: Path) -> None:
    write_private_text(marker(database), f"{unlock}\nsalt {_head(encrypted_file).hex()}\n")


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
    if current.damaged and os.environ.get(PASSPHRASE_ENV):
        return passphrase(ask, "")  # an encrypted file whose marker was lost: its passphrase opens it
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
    """Copy the whole database into `target` with another key (or none) through sqlcipher_export. The target
    is private (0600) from the moment it exists."""
    from companion.memory.store import SQL_ERRORS

    _shred(target)
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
        expect = _counts(conn)
        attach_key = key_literal(target_key) if target_key is not None else "''"
        conn.execute(f"ATTACH DATABASE ? AS target KEY {attach_key}", (str(target),))
        conn.execute("SELECT sqlcipher_export('target')")
        conn.execute(f"PRAGMA target.user_version = {int(version)}")
        conn.execute(f"PRAGMA target.application_id = {int(application)}")
        conn.execute("DETACH DATABASE target")
    except SQL_ERRORS as error:
        _shred(target)
        raise CompanionError(
            f"The memory file could not be rewritten ({error}); it is kept as it was."
        ) from None
    finally:
        conn.close()
    try:
        _verify(target, target_key, expect, version)
    except BaseException:
        _shred(target)
        raise


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


def _shred(path: Path) -> None:
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


# -- rewriting the whole file, and finishing what an interrupted rewrite left -----------------------------------
def _temporary(database: Path, op: str) -> Path:
    return database.with_name(f"{database.name}.{op}ing")  # memory.db.encrypting, memory.db.decrypting


def journal(database: Path) -> Path:
    """`memory.db.rewrite`: written once the new file is verified, removed when the rewrite is complete."""
    return database.with_name(database.name + ".rewrite")


def leftovers(database: Path) -> list[Path]:
    """What an interrupted rewrite left beside the memory file."""
    found = [journal(database), _temporary(database, "encrypt"), _temporary(database, "decrypt")]
    return [p for p in found if p.exists()]


def _after_encrypt(paths: Paths) -> None:
    # The FAISS index holds the embeddings in the clear: from now on it is only kept in memory.
    for stale in (paths.index_file, paths.index_file.with_name(paths.index_file.name + ".json")):
        _shred(stale)


def _after_decrypt(database: Path, unlock: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        marker(database).unlink()
    if unlock == "keyring":
        import keyring.errors

        with contextlib.suppress(keyring.errors.KeyringError):
            _keyring().delete_password(SERVICE, keyring_entry(database))  # type: ignore[attr-defined]


def _rewrite(paths: Paths, op: str, source_key: str | None, target_key: str | None, unlock: str) -> None:
    """Export to a temporary file, verify it, note in the journal that it is complete, swap it in, then the
    steps after the swap. A crash at any point leaves the old file or the new one, and `recover` finishes or
    removes whatever else is left. Holds the memory file exclusively throughout."""
    database = paths.database
    new = _temporary(database, op)
    _export(database, source_key, new, target_key)
    if op == "encrypt":
        _write_marker(database, unlock, new)
    write_private_text(journal(database), json.dumps({"op": op, "file": new.name, "unlock": unlock}))
    _swap(new, database)
    if op == "encrypt":
        _after_encrypt(paths)
    else:
        _after_decrypt(database, unlock)
    journal(database).unlink()


def recover(paths: Paths) -> str | None:
    """Finish a rewrite that was verified but interrupted before its last steps, or remove what an interrupted
    one left (a plaintext `memory.db.decrypting` is overwritten first). Needs the file to itself: when another
    process has it open, nothing is done now. Returns what was done."""
    from companion.memory import lock

    database = paths.database
    if not leftovers(database):
        return None
    with lock.try_exclusive(database) as alone:
        if not alone:
            return None
        done = "removed what an interrupted encryption or decryption left"
        try:
            job = json.loads(journal(database).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            job = None
        if isinstance(job, dict) and job.get("op") in ("encrypt", "decrypt"):
            new = database.with_name(str(job.get("file", "")))
            if new.name and new.exists():
                _swap(new, database)
            if job["op"] == "encrypt":
                _after_encrypt(paths)
            elif not _head(database) or _head(database) == SQLITE_HEADER:
                _after_decrypt(database, str(job.get("unlock", "")))
            done = f"finished an interrupted {'encryption' if job['op'] == 'encrypt' else 'decryption'}"
        for temporary in (_temporary(database, "encrypt"), _temporary(database, "decrypt")):
            _shred(temporary)
        with contextlib.suppress(FileNotFoundError):
            journal(database).unlink()
        return done


def encrypt(paths: Paths, ask: Ask | None = None, use_passphrase: bool = False) -> State:
    """Encrypt the memory file in place. The key goes to the OS keyring, or a passphrase is chosen where there
    is no keyring (or when `use_passphrase`). Refused while another process has the file open."""
    from companion.memory import lock

    database = paths.database
    if state(database).encrypted:
        raise CompanionError("The memory file is already encrypted; nothing was changed.")
    if not database.exists():
        from companion.memory.store import Store

        Store(database).close()  # a new, empty memory file to encrypt
    with lock.exclusive(database, "Encrypting the memory file"):
        unlock = "keyring" if keyring_usable() and not use_passphrase else "passphrase"
        if unlock == "keyring":
            hexkey = random_secrets.token_hex(32)
            key = f"x'{hexkey}'"
            import keyring.errors

            try:
                _keyring().set_password(SERVICE, keyring_entry(database), hexkey)  # type: ignore[attr-defined]
            except keyring.errors.KeyringError as error:
                raise CompanionError(
                    f"The OS keyring could not keep the key ({error}); nothing was changed."
                ) from None
        else:
            key = passphrase(ask, "Choose a passphrase for the memory file: ", confirm=True)
        _rewrite(paths, "encrypt", None, key, unlock)
    return state(database)


def decrypt(paths: Paths, ask: Ask | None = None) -> State:
    """Turn encryption off: the memory file is rewritten in the clear, the keyring entry removed. Refused
    while another process has the file open."""
    from companion.memory import lock
    from companion.memory.store import Store

    database = paths.database
    current = state(database)
    if not current.encrypted:
        raise CompanionError("The memory file is not encrypted; nothing was changed.")
    key = unlock_key(database, ask)
    Store(database, key).close()  # a wrong passphrase fails here, with its clear message
    with lock.exclusive(database, "Decrypting the memory file"):
        _rewrite(paths, "decrypt", key, None, current.unlock)
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
