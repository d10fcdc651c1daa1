"""What every command group shares: the consoles, the passphrase prompt, the memory file opened for one
command, a progress bar for long work, and reading the user's times and ids. Nothing heavy at import time."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console

from companion import config as config_mod
from companion import timeutil
from companion.english import plural
from companion.errors import CompanionError
from companion.paths import get_paths

if TYPE_CHECKING:
    from companion.memory.operations import LongTermMemory
    from companion.memory.records import Ref

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

Progress = Callable[[str, int, int], None]
__all__ = ["MemoryContext", "ask", "err", "memory_id", "out", "plural", "progress", "when"]


def ask() -> Callable[[str], str] | None:
    """A hidden prompt on the terminal for a passphrase, or None when there is no terminal (scripts use
    COMPANION_PASSPHRASE)."""
    if not sys.stdin.isatty():
        return None
    import getpass

    return getpass.getpass


def when(value: str | None, option: str) -> datetime | None:
    """A time given on the command line (`--now`, `--before`), or None."""
    return timeutil.parse_user(value, option) if value is not None else None


class MemoryContext:
    """The memory file opened for one command (`with MemoryContext() as memory:`). With `ready`, what has no
    vector yet is embedded and the index opened first, behind a progress bar: only commands that search or
    embed ask for it, so the others never load the embedding model."""

    def __init__(self, ready: bool = False) -> None:
        from companion.memory import open_memory

        paths = get_paths().ensure()
        self.memory: LongTermMemory = open_memory(paths, config_mod.load(paths).memory, ask())
        if ready:
            try:
                with progress() as report:
                    self.memory.ready(report)
            except BaseException:
                self.memory.close()
                raise

    def __enter__(self) -> LongTermMemory:
        return self.memory

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.memory.close()


class progress:  # noqa: N801 - used like a function
    """A rich progress bar on stderr that appears only once there is something to report."""

    def __enter__(self) -> Progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self.tasks: dict[str, Any] = {}

        def report(what: str, done: int, total: int) -> None:
            if what not in self.tasks:
                if not self.tasks:
                    self.bar.start()
                self.tasks[what] = self.bar.add_task(what, total=total, rate="")
            task = self.tasks[what]
            speed = self.bar.tasks[task].speed
            rate = f"{speed:,.0f}/s" if speed else ""  # messages (or memories) a second
            self.bar.update(task, completed=done, total=total, rate=rate)

        return report

    def __exit__(self, *exc: object) -> None:
        if self.tasks:
            self.bar.stop()


def memory_id(ref: Ref) -> int:
    """A memory's id from a reference; a message cannot be pinned or edited."""
    if ref.kind != "memory":
        raise CompanionError(
            "Messages cannot be pinned or edited; they are what was said. Forget one with `forget message:ID`."
        )
    return ref.id
