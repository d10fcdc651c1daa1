"""The one exception type a face turns into a clear sentence for the user.

Everything the user can cause (a bad file, a wrong key, an unknown name) is raised as a `CompanionError`
whose message says what is wrong and what to do. Anything else is a bug and may show a traceback.
"""


class CompanionError(Exception):
    """A problem the user can fix; `str(error)` is the sentence to show them."""


class ModelError(CompanionError):
    """The language model could not be loaded or stopped answering."""


class ModelUnavailable(ModelError):
    """The model cannot be reached or refused the request (a server down, a wrong key): later may work."""


class JobInterrupted(ModelError):
    """A background job let go of the model (a chat turn wants it, or the app is closing); it runs again later."""


class ConfigError(CompanionError):
    """A setting has a bad key or value."""


class WrongKeyError(CompanionError):
    """The memory file does not open with the key or passphrase given (a typed passphrase may be asked again)."""


class StorageError(CompanionError):
    """The memory file could not be read or written (full disk, read-only, locked, damaged)."""


def storage_error(path: object, error: BaseException) -> StorageError:
    """One sentence for an SQLite failure on the memory file, by what the user can do about it."""
    text = str(error)
    lowered = text.lower()
    if "full" in lowered:
        return StorageError(
            f"The disk is full: companion could not save to the memory file {path}; free some space and try "
            "again (nothing saved before was lost)."
        )
    if "readonly" in lowered or "read-only" in lowered:
        return StorageError(
            f"The memory file {path} is read-only ({text}); companion can show what it remembers but not save "
            "anything new. Check the permissions of the data directory and its disk."
        )
    if "locked" in lowered or "busy" in lowered:
        return StorageError(
            f"The memory file {path} is busy: another program (another companion?) holds it; close it and try "
            "again."
        )
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        return StorageError(
            f"The memory file {path} is damaged ({text}); move it aside and restore a backup or an export "
            "(`companion memory import`)."
        )
    return StorageError(f"The memory file {path} could not be used ({text}).")


def file_system_error(error: OSError) -> CompanionError | None:
    """One sentence for a file companion could not write (a full disk, a read-only or foreign folder), by what
    the user can do about it; None for other OS errors (those are bugs to see whole)."""
    import errno
    from pathlib import Path

    where = error.filename or "a file"
    folder = Path(str(where)).parent if error.filename else "a folder"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        room = f"nothing more fits in {folder}" if error.filename else "nothing more fits on the disk"
        return CompanionError(
            f"The disk is full: {room}; free some space and try again (nothing saved before was lost)."
        )
    if error.errno == errno.EROFS:
        return CompanionError(
            f"The folder {folder} is on a read-only file system, so companion cannot save there; remount it "
            "writable, or set COMPANION_HOME to a writable folder."
        )
    if error.errno in (errno.EACCES, errno.EPERM):
        return CompanionError(
            f"{where} cannot be written ({error.strerror}); check its permissions, or set COMPANION_HOME to a "
            "folder of your own."
        )
    return None
