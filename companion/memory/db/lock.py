"""Who has the memory file open, so that nothing rewrites it under another process's feet.

Every companion process that opens the memory file holds a *shared* lock on `memory.db.lock` for as long as it
has the file open (the app, `companion maintain` from cron, an import: they share the file safely through
SQLite's WAL). Rewriting the whole file — `memory encrypt`, `memory decrypt`, finishing an interrupted rewrite —
takes the lock *exclusively*, which it gets only when no other process has the file open; when it cannot, it
says who has (each holder leaves a note in `memory.db.users/` naming what it is) and what to do. Locks are
operating-system file locks (portalocker: flock on Linux and macOS, LockFileEx on Windows), so a process that
dies, even by kill -9, lets go of its lock at once. Opening the file (creating it, checking what it is, switching
it to WAL, migrating) is one process at a time, under `memory.db.opening`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import portalocker

from companion.errors import CompanionError
from companion.paths import FILE_MODE, ensure_private_dir

WAIT_FOR_REWRITE = 10.0  # seconds a process that opens the file waits for a rewrite in progress
WAIT_FOR_OPENING = 300.0  # seconds a process waits while another opens (and perhaps upgrades) the file


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def opening_path(database: Path) -> Path:
    return database.with_name(database.name + ".opening")


def notes_dir(database: Path) -> Path:
    return database.with_name(database.name + ".users")


def process_label() -> str:
    """What this process is, in the words a user would recognise: `the companion app`, `companion memory
    import`, or a program that uses companion as a library."""
    argv = [a for a in sys.argv if a]
    program = Path(argv[0]).name if argv else ""
    if program in ("companion", "__main__.py", "companion.exe"):
        words = [a for a in argv[1:] if not a.startswith("-")][:2]
        if not words or words == ["chat"]:
            return "the companion app"
        if words[0] in ("memory", "model", "persona", "config", "profile"):
            return f"`companion {' '.join(words)}`"
        return f"`companion {words[0]}`"
    return f"another program using companion ({program or 'python'})"


def _open(path: Path) -> IO[bytes]:
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    return os.fdopen(fd, "r+b")


class SharedLock:
    """This process has the memory file open (held from `acquire` to `release`)."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self._handle: IO[bytes] | None = None
        self._note: Path | None = None

    def acquire(self) -> None:
        self._handle = _lock_waiting(
            lock_path(self.database),
            portalocker.LockFlags.SHARED,
            WAIT_FOR_REWRITE,
            f"The memory file {self.database} is being rewritten (encrypted or decrypted) by another companion "
            "process; try again when it has finished.",
        )
        self._note = self._write_note()

    def _write_note(self) -> Path | None:
        try:
            notes = ensure_private_dir(notes_dir(self.database))
            note = notes / f"{os.getpid()}-{id(self)}"
            fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(f"{os.getpid()}\n{process_label()}\n")
            return note
        except OSError:  # a note is a courtesy: the lock itself is what protects the file
            return None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._note is not None:
            with contextlib.suppress(OSError):
                self._note.unlink()
            self._note = None
        if self._handle is not None:
            _unlock(self._handle)
            self._handle = None


def holders(database: Path) -> list[str]:
    """What the processes that have the file open are (notes of dead processes are cleared on the way)."""
    import psutil

    found: list[str] = []
    try:
        notes = sorted(notes_dir(database).iterdir())
    except OSError:
        return found
    for note in notes:
        try:
            pid_text, label = (note.read_text(encoding="utf-8").splitlines() + ["", ""])[:2]
            pid = int(pid_text)
        except (OSError, ValueError):
            continue
        if pid == os.getpid() or not psutil.pid_exists(pid):
            if pid != os.getpid():
                with contextlib.suppress(OSError):
                    note.unlink()
            continue
        entry = f"{label} (pid {pid})"
        if entry not in found:
            found.append(entry)
    return found


def _lock_waiting(path: Path, kind: portalocker.LockFlags, seconds: float, refusal: str) -> IO[bytes]:
    """The lock file at `path` locked (`kind`: shared or exclusive), waiting up to `seconds` for whoever holds
    it otherwise; past that, `refusal` as the error."""
    handle = _open(path)
    deadline = time.monotonic() + seconds
    while True:
        try:
            portalocker.lock(handle, kind | portalocker.LockFlags.NON_BLOCKING)
            return handle
        except portalocker.exceptions.LockException:
            if time.monotonic() > deadline:
                handle.close()
                raise CompanionError(refusal) from None
            time.sleep(0.02)


def _lock_exclusive(database: Path) -> IO[bytes] | None:
    """The lock file locked exclusively, or None when another process holds it."""
    handle = _open(lock_path(database))
    try:
        portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
    except portalocker.exceptions.LockException:
        handle.close()
        return None
    return handle


def _unlock(handle: IO[bytes]) -> None:
    with contextlib.suppress(portalocker.exceptions.LockException, OSError):
        portalocker.unlock(handle)
    handle.close()


@contextlib.contextmanager
def opening(database: Path) -> Iterator[None]:
    """One process at a time runs the open sequence (create the file, check what it is, switch it to WAL,
    migrate): a second opener waits until the first has finished, so it never sees a file half-way through
    its first migrations, and never meets SQLite's immediate "database is locked" of two connections switching
    a new file's journal at once. Held for the open only; using the file afterwards is shared through WAL."""
    handle = _lock_waiting(
        opening_path(database),
        portalocker.LockFlags.EXCLUSIVE,
        WAIT_FOR_OPENING,
        f"Another companion process has been opening (upgrading) the memory file {database} for "
        f"{WAIT_FOR_OPENING:.0f} s; let it finish, or quit it, and try again.",
    )
    try:
        yield
    finally:
        _unlock(handle)


@contextlib.contextmanager
def exclusive(database: Path, doing: str) -> Iterator[None]:
    """The memory file to this process alone, for a whole-file rewrite; a sentence saying who has it open when
    another process does. `doing` completes "… needs the memory file to itself", e.g. "Encrypting it"."""
    handle = _lock_exclusive(database)
    if handle is None:
        users = holders(database)
        who = " and ".join(users) if users else "another companion process"
        raise CompanionError(
            f"{doing} needs the memory file to itself, but {who} has it open; close it (quit the app, let the "
            "import or upkeep finish) and try again. Nothing was changed."
        )
    try:
        yield
    finally:
        _unlock(handle)


@contextlib.contextmanager
def try_exclusive(database: Path) -> Iterator[bool]:
    """Like `exclusive`, for work that can wait for another time: True when this process has the file to
    itself, False (the caller does nothing) when another process has it open."""
    handle = _lock_exclusive(database)
    try:
        yield handle is not None
    finally:
        if handle is not None:
            _unlock(handle)
