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
import json
import os
import secrets as random_secrets
from collections.abc import Callable
from pathlib import Path

from companion.errors import CompanionError
from companion.memory.db import cipher, lock
from companion.memory.db.cipher import (
    SQLITE_HEADER,
    State,
    file_head,
    keyring_entry,
    marker,
    state,
)
from companion.memory.db.store import Store
from companion.paths import Paths, write_private_text
from companion.secrets import SERVICE, keyring_usable

PASSPHRASE_ENV = "COMPANION_PASSPHRASE"
MIN_PASSPHRASE = 8

Ask = Callable[[str], str]


def _write_marker(database: Path, unlock: str, encrypted_file: Path) -> None:
    write_private_text(marker(database), f"{unlock}\nsalt {file_head(encrypted_file).hex()}\n")


def _keyring() -> object:
    import keyring

    return keyring


def passphrase(ask: Ask | None, prompt: str, confirm: bool = False, what: str = "the memory file") -> str:
    """COMPANION_PASSPHRASE, else typed at `ask` (twice when choosing one; a choice too short is refused
    before it is asked again). `what` is whose passphrase it is, for the sentences."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        if ask is None:
            raise CompanionError(
                f"{what[:1].upper()}{what[1:]} needs a passphrase: set {PASSPHRASE_ENV}, or run companion in a "
                "terminal to type it."
            )
        value = ask(prompt)
        if confirm and len(value) < MIN_PASSPHRASE:
            raise CompanionError(f"The passphrase is too short; use at least {MIN_PASSPHRASE} characters.")
        if confirm and ask("Type it again: ") != value:
            raise CompanionError("The two passphrases differ; nothing was changed.")
    if confirm and len(value) < MIN_PASSPHRASE:
        raise CompanionError(f"The passphrase is too short; use at least {MIN_PASSPHRASE} characters.")
    if not value:
        raise CompanionError(f"The passphrase is empty; type the passphrase of {what}.")
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
    # The FAISS index holds the embeddings in the clear (its delta and any save's .part too): from now on it is
    # only kept in memory.
    from companion.memory.recall.index import saved_files

    for stale in saved_files(paths.index_file):
        cipher.shred(stale)


def _refuse_a_link(database: Path, op: str) -> None:
    """A rewrite swaps a new file in where the memory file is; through a symbolic link it would replace the link
    and leave the file it points to as it was (in the clear, for encrypt)."""
    if database.is_symlink():
        raise CompanionError(
            f"The memory file {database} is a symbolic link to {os.path.realpath(database)}; to {op} it, set "
            "COMPANION_HOME to the folder that holds the real file (or move the file in place of the link)."
        )


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
    cipher.copy_with_key(database, source_key, new, target_key)
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
            elif not file_head(database) or file_head(database) == SQLITE_HEADER:
                _after_decrypt(database, str(job.get("unlock", "")))
            done = f"finished an interrupted {'encryption' if job['op'] == 'encrypt' else 'decryption'}"
        for temporary in (_temporary(database, "encrypt"), _temporary(database, "decrypt")):
            cipher.shred(temporary)
        with contextlib.suppress(FileNotFoundError):
            journal(database).unlink()
        return done


def encrypt(paths: Paths, ask: Ask | None = None, use_passphrase: bool = False) -> State:
    """Encrypt the memory file in place. The key goes to the OS keyring, or a passphrase is chosen where there
    is no keyring (or when `use_passphrase`). Refused while another process has the file open."""

    database = paths.database
    _refuse_a_link(database, "encrypt")
    if state(database).encrypted:
        raise CompanionError("The memory file is already encrypted; nothing was changed.")
    if not database.exists():
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

    database = paths.database
    _refuse_a_link(database, "decrypt")
    current = state(database)
    if not current.encrypted:
        raise CompanionError("The memory file is not encrypted; nothing was changed.")
    key = unlock_key(database, ask)
    Store(database, key).close()  # a wrong passphrase fails here, with its clear message
    with lock.exclusive(database, "Decrypting the memory file"):
        _rewrite(paths, "decrypt", key, None, current.unlock)
    return state(database)
