"""Typed messages that workers post back to the app (worker threads never touch widgets)."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class EngineReady(Message):
    """The model is loaded (or failed to load: `error`); the memory file is open either way when `memory`."""

    def __init__(self, name: str, error: str = "", memory: bool = True) -> None:
        super().__init__()
        self.name = name
        self.error = error
        self.memory = memory


class ModelLoading(Message):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class Greeted(Message):
    def __init__(self, text: str | None) -> None:
        super().__init__()
        self.text = text


class ReplyStarted(Message):
    """The user's message is stored (`user_id`) and the reply is streaming; `hits` are what was recalled."""

    def __init__(self, user_id: int, hits: list[Any], usage: dict[str, int]) -> None:
        super().__init__()
        self.user_id = user_id
        self.hits = hits
        self.usage = usage


class ReplyFinished(Message):
    def __init__(
        self,
        incomplete: bool,
        tokens: int,
        tok_s: float,
        seconds: float,
        error: str,
        reply_id: int | None = None,
        usage: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.incomplete = incomplete
        self.tokens = tokens
        self.tok_s = tok_s
        self.seconds = seconds
        self.error = error
        self.reply_id = reply_id
        self.usage = usage or {}


class EarlierLoaded(Message):
    """Messages of earlier sessions, oldest first, to put above what is on screen."""

    def __init__(self, rows: list[Any], more: bool) -> None:
        super().__init__()
        self.rows = rows
        self.more = more


class MemoryChanged(Message):
    """A memory was pinned, edited, forgotten or restored: screens showing memories refresh."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what


class SessionStarted(Message):
    def __init__(self, off_record: bool) -> None:
        super().__init__()
        self.off_record = off_record
