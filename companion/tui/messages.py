"""Typed messages that workers post back to the app (worker threads never touch widgets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textual.message import Message

from companion.engine import ContextUsage
from companion.memory.records import Message as StoredMessage
from companion.memory.records import SessionOverview
from companion.memory.tables.profile import Version
from companion.memory.upkeep.scheduler import JobStatus
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
    checkin: str | None = None  # the conversation is a check-in not answered yet: its message


# What a reply answers: a new message, the last message again, or an edited earlier message (a branch).
ReplyKind = Literal["send", "regenerate", "branch"]


@dataclass
class ReplyStarted(Message):
    """The user's message is stored (`user_id`) and the reply is streaming; `recall` is what was recalled and
    what became of it (in the prompt, shortened, left out, already in view)."""

    user_id: int
    recall: list[Recalled]
    usage: ContextUsage | None


@dataclass
class ReplyFinished(Message):
    """The reply is over; `text` is the reply as it is kept (a speaker's name the model began to write is not
    part of it), which replaces what streamed when the two differ."""

    incomplete: bool
    tok_s: float = 0.0
    error: str = ""
    reply_id: int | None = None
    usage: ContextUsage | None = None
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


@dataclass
class SessionsLoaded(Message):
    """The sessions screen's page of past conversations, and which one is going on."""

    rows: list[SessionOverview]
    current: int


@dataclass
class TranscriptLoaded(Message):
    """One past conversation, read whole, as Markdown."""

    text: str


@dataclass
class SettingsLoaded(Message):
    personas: list[str]
    jobs: list[JobStatus]


@dataclass(frozen=True)
class MemoryRow:
    """One memory as the memories screen lists it."""

    id: int
    kind: str
    text: str
    day: str
    kept: float  # its retention (1.0 for a pinned memory)
    pinned: bool


@dataclass
class MemoriesLoaded(Message):
    rows: list[MemoryRow]
    total: int
    page: int


@dataclass
class ProfileLoaded(Message):
    version: int | None
    lines: list[str]
    history: list[Version]


@dataclass
class PersonasLoaded(Message):
    names: list[str]


@dataclass
class DetailLoaded(Message):
    """One memory or message seen whole, as Markdown (None: it is gone)."""

    text: str | None
