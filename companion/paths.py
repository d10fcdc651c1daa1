"""Where companion keeps its files, in one place.

By default the platform's own directories (platformdirs). When `COMPANION_HOME` is set, config, data and
caches all live under it, so tests, benchmarks and a second profile never touch the user's real memory.
Directories are created 0700 and files written 0600: the memory is private.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from companion.errors import CompanionError

APP_NAME = "companion"
DIR_MODE = 0o700
FILE_MODE = 0o600


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def database(self) -> Path:
        return self.data_dir / "memory.db"

    @property
    def index_file(self) -> Path:
        return self.data_dir / "memory.faiss"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def ensure(self) -> Paths:
        for directory in (self.config_dir, self.data_dir, self.cache_dir, self.models_dir):
            ensure_private_dir(directory)
        return self


def home_override() -> Path | None:
    value = os.environ.get("COMPANION_HOME", "").strip()
    return Path(value).expanduser().resolve() if value else None


def get_paths() -> Paths:
    home = home_override()
    if home is not None:
        return Paths(config_dir=home / "config", data_dir=home / "data", cache_dir=home / "cache")
    return Paths(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME)),
        cache_dir=Path(platformdirs.user_cache_dir(APP_NAME)),
    )


def ensure_private_dir(directory: Path) -> Path:
    """The folder, made 0700 where it is missing. One that is there but cannot be changed (a read-only file
    system, another owner) is left as it is: reading from it still works, and `doctor` says what is wrong."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    except OSError as error:
        raise CompanionError(
            f"The folder {directory} cannot be created ({error.strerror}); make its parent writable, or set "
            "COMPANION_HOME to a folder that is."
        ) from None
    with contextlib.suppress(OSError):
        if directory.stat().st_mode & 0o777 != DIR_MODE:
            os.chmod(directory, DIR_MODE)
    return directory


@contextlib.contextmanager
def atomic_path(target: Path, *, ours: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename.

    An interruption (Ctrl+C, a crash, an exception) leaves `target` as it was and removes the temporary file,
    so nothing is ever half-written. `ours`: the folder is companion's own (made, and kept 0700); a file the
    user chose (`export -o`) goes into a folder that must exist, and the folder is left as it is (a shared
    /tmp keeps its sticky bit); the file itself is 0600 either way.
    """
    if ours:
        ensure_private_dir(target.parent)
    elif target.is_dir():
        raise CompanionError(f"{target} is a folder; give a file name in it (e.g. {target / 'export.json'}).")
    elif not target.parent.is_dir():
        raise CompanionError(
            f"The folder {target.parent} does not exist; create it first or choose another file."
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, FILE_MODE)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_private_text(target: Path, text: str, *, ours: bool = True) -> None:
    with atomic_path(target, ours=ours) as tmp:
        tmp.write_text(text, encoding="utf-8")


def assets_dir() -> Path:
    """The shipped assets: `companion/_assets` in an installed wheel, `assets/` in a source checkout."""
    packaged = Path(__file__).resolve().parent / "_assets"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "assets"
