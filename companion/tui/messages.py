"""Typed messages that workers post back to the app (worker threads never touch widgets)."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from companion.memory.store import Message as StoredMessage
from companion.prompt_builder import Recalled


@dataclass
class ModelLoading(Message):
    name: str


@dataclass
class EngineReady(Message):
    """The model is loaded, or failed to load (`error`); the memory file is open either way."""

    name: str
    error: str = ""


@dataclass
class Greeted(Message):
    text: str | None


@dataclass
class ReplyStarted(Message):
    """The user's message is stored (`user_id`) and the reply is streaming; `recall` is what was recalled and
    what became of it (in the prompt, shortened, left out, already in view)."""

    user_id: int
    recall: list[Recalled]
    usage: dict[str, int]


@dataclass
class ReplyFinished(Message):
    """The reply is over; `text` is the reply as it is kept (a speaker's name the model began to write is not
    part of it), which replaces what streamed when the two differ."""

    incomplete: bool
    tok_s: float
    error: str
    reply_id: int | None = None
    usage: dict[str, int] = field(default_factory=dict)
    text: str | None = None
    unanswered: str = ""  # why the reply has no answer (stopped while thinking…): nothing was stored


@dataclass
class EarlierLoaded(Message):
    """Messages of earlier sessions, oldest first, to put above what is on screen."""

    messages: list[StoredMessage]
    more: bool


@dataclass
class MemoryChanged(Message):
    """A memory was pinned, edited, forgotten or restored: screens showing memories refresh."""

    what: str


@dataclass
class SessionStarted(Message):
    off_record: bool
