"""Where one conversation's messages live. Two kinds, one interface:

- `SavedLog`: a session of the memory file (every message committed as it is said);
- `MemoryLog`: a list in memory that never touches the file — an off-the-record conversation, or the rest of a
  conversation whose memory file stopped taking writes (the unsaved fallback).

The engine talks to a `ConversationLog` and never asks which kind it has. A `Reply` is how a turn stores its
draft and its reply: through the log, never through the engine.
"""

from __future__ import annotations

import itertools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from companion import timeutil
from companion.errors import StorageError
from companion.llm.prompt import clean_reply
from companion.memory.db.store import Store
from companion.memory.records import Message
from companion.memory.tables import messages as message_table
from companion.memory.tables import sessions as session_table

# Ids of messages kept in memory: negative, and never the same twice in a process, so nothing keyed by a
# message id (the memory block a turn was sent with) can leak from one conversation into another.
_memory_ids = itertools.count(-1, -1)


class ConversationLog(ABC):
    """One conversation. `messages()` is how it reads, a branch's shared start included."""

    session_id: int
    saved: bool  # whether its messages are written to the memory file

    def __init__(self) -> None:
        # The persona's greeting, kept aside until the user answers: opening the app and leaving again leaves
        # nothing behind.
        self.greeting: Message | None = None

    def greet(self, speaker: str, text: str) -> None:
        self.greeting = Message(0, self.session_id, "assistant", speaker, text, timeutil.now_iso(), False)

    def messages(self) -> list[Message]:
        said = self.said()
        return [self.greeting, *said] if self.greeting is not None else said

    def add_user(self, text: str, speaker: str) -> tuple[list[Message], int]:
        """Store the user's message (and the greeting it answers, first). Returns the conversation before it
        and the message's id."""
        if self.greeting is not None:
            self.add(
                "assistant",
                self.greeting.text,
                speaker=self.greeting.speaker,
                created_at=self.greeting.created_at,
            )
            self.greeting = None
        before = self.said()
        return before, self.add("user", text, speaker=speaker)

    def owns(self, message: Message) -> bool:
        """Said in this conversation (not in the conversation a branch continues)."""
        return message.session_id == self.session_id

    @abstractmethod
    def said(self) -> list[Message]: ...

    @abstractmethod
    def add(
        self,
        role: str,
        text: str,
        *,
        speaker: str = "",
        incomplete: bool = False,
        token_count: int | None = None,
        model: str | None = None,
        created_at: str | None = None,
        reasoning: str | None = None,
    ) -> int: ...

    @abstractmethod
    def update(
        self,
        message_id: int,
        text: str,
        *,
        incomplete: bool,
        token_count: int | None = None,
        model: str | None = None,
        reasoning: str | None = None,
    ) -> None:
        """Rewrite a reply saved while it was being written (`reasoning`: kept beside it, if given)."""

    @abstractmethod
    def replace(self, message_id: int) -> None:
        """A reply is being regenerated: it leaves the conversation."""

    @abstractmethod
    def branch(self, at: Message, persona: str, started_at: str) -> ConversationLog:
        """The user edited `at`: the conversation goes on from the turns before it, in a new log."""

    @abstractmethod
    def end(self) -> None:
        """The conversation is over."""

    @abstractmethod
    def recall_excluded(self) -> list[int]:
        """Sessions whose messages recall must not bring back (this one, and those a branch continues)."""

    @property
    def persona(self) -> str:
        """The persona the conversation is filed under ("" when it is not filed anywhere)."""
        return ""

    def switch_persona(self, name: str) -> None:  # noqa: B027 - a log that is not filed anywhere has none
        """The conversation goes on with another persona."""


class SavedLog(ConversationLog):
    saved = True

    def __init__(self, store: Store, session_id: int) -> None:
        super().__init__()
        self.store = store
        self.session_id = session_id

    @classmethod
    def open(
        cls,
        store: Store,
        persona: str,
        started_at: str,
        parent_id: int | None = None,
        branch_at: int | None = None,
    ) -> SavedLog:
        session = session_table.new(
            store, persona=persona, parent_id=parent_id, branch_at=branch_at, started_at=started_at
        )
        return cls(store, session)

    def said(self) -> list[Message]:
        return message_table.conversation(self.store, self.session_id)

    @property
    def persona(self) -> str:
        return session_table.persona(self.store, self.session_id)

    def switch_persona(self, name: str) -> None:
        session_table.set_persona(self.store, self.session_id, name)

    def add(
        self,
        role: str,
        text: str,
        *,
        speaker: str = "",
        incomplete: bool = False,
        token_count: int | None = None,
        model: str | None = None,
        created_at: str | None = None,
        reasoning: str | None = None,
    ) -> int:
        return message_table.add(
            self.store,
            self.session_id,
            role,
            text,
            speaker=speaker,
            incomplete=incomplete,
            token_count=token_count,
            model=model,
            created_at=created_at,
            reasoning=reasoning,
        )

    def update(
        self,
        message_id: int,
        text: str,
        *,
        incomplete: bool,
        token_count: int | None = None,
        model: str | None = None,
        reasoning: str | None = None,
    ) -> None:
        message_table.update(
            self.store,
            message_id,
            text,
            incomplete=incomplete,
            token_count=token_count,
            model=model,
            reasoning=reasoning,
        )

    def replace(self, message_id: int) -> None:
        message_table.mark_replaced(self.store, message_id)

    def branch(self, at: Message, persona: str, started_at: str) -> ConversationLog:
        self.end()
        return SavedLog.open(self.store, persona, started_at, parent_id=self.session_id, branch_at=at.id)

    def end(self) -> None:
        self.greeting = None
        session_table.close(self.store, self.session_id)

    def recall_excluded(self) -> list[int]:
        return session_table.lineage(self.store, self.session_id)


class MemoryLog(ConversationLog):
    """A conversation kept in a list. Off the record it starts empty (session 0); as the unsaved fallback it
    starts with what the file already holds of the conversation and keeps its session id."""

    saved = False

    def __init__(
        self, start: list[Message] | None = None, session_id: int = 0, excluded: list[int] | None = None
    ):
        super().__init__()
        self.session_id = session_id
        self._said = list(start or [])
        self._excluded = excluded or []

    def said(self) -> list[Message]:
        return list(self._said)

    def add(
        self,
        role: str,
        text: str,
        *,
        speaker: str = "",
        incomplete: bool = False,
        token_count: int | None = None,
        model: str | None = None,
        created_at: str | None = None,
        reasoning: str | None = None,
    ) -> int:
        message = Message(
            id=next(_memory_ids),
            session_id=self.session_id,
            role=role,
            speaker=speaker,
            text=text,
            created_at=created_at or timeutil.now_iso(),
            incomplete=incomplete,
            token_count=token_count,
        )
        self._said.append(message)
        return message.id

    def update(
        self,
        message_id: int,
        text: str,
        *,
        incomplete: bool,
        token_count: int | None = None,
        model: str | None = None,
        reasoning: str | None = None,
    ) -> None:
        self._said = [
            replace(m, text=text, incomplete=incomplete, token_count=token_count or m.token_count)
            if m.id == message_id
            else m
            for m in self._said
        ]

    def replace(self, message_id: int) -> None:
        self._said = [m for m in self._said if m.id != message_id]

    def branch(self, at: Message, persona: str, started_at: str) -> ConversationLog:
        kept = self._said[: self._said.index(at)] if at in self._said else list(self._said)
        return MemoryLog(kept, self.session_id, self._excluded)

    def end(self) -> None:
        self.greeting = None
        self._said = []

    def recall_excluded(self) -> list[int]:
        return list(self._excluded)


@dataclass
class Reply:
    """How a turn stores what the model says: a draft while it is written (so even a killed process keeps
    what was said), then the reply. `on_saved(reply_id)` runs once the reply is stored (None: there was no
    answer to store — the reply was stopped while the model was still thinking, or it said nothing)."""

    log: ConversationLog
    speaker: str
    model: str | None
    on_saved: Callable[[int | None], None]
    names: list[str] = field(default_factory=list)  # the speakers, whose names are not part of a reply
    draft_id: int | None = None
    # A reasoning model's reasoning is kept beside the reply (`model.keep_reasoning`).
    keep_reasoning: bool = False
    # The file refused the reply (full disk, read-only, locked): the log the conversation goes on in, unsaved.
    on_lost: Callable[[StorageError], ConversationLog] | None = None
    # The draft and the reply are one row: the streaming thread saves drafts while a closing app may store
    # the reply from its own thread, so both go through this lock, and no draft follows the reply.
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _stored: bool = False

    def clean(self, text: str) -> str:
        """What is kept of what the model said: no speaker name at its start, no name cut short at its end."""
        return clean_reply(text, self.names)

    def save_draft(self, text: str) -> None:
        text = self.clean(text)
        if not text:
            return
        with self._lock:
            if not self._stored:
                self._write_draft(text)

    def _write_draft(self, text: str) -> None:
        if self.draft_id is None:
            self.draft_id = self.log.add("assistant", text, speaker=self.speaker, incomplete=True)
        else:
            self.log.update(self.draft_id, text, incomplete=True)

    def save_reply(self, text: str, *, incomplete: bool, tokens: int, reasoning: str = "") -> int | None:
        """Store the answer (never the reasoning as its text). Without an answer nothing is stored. When the
        file refuses it, the conversation goes on unsaved (`on_lost`) and the reply is kept there."""
        with self._lock:
            self._stored = True
            return self._save_or_move(text, incomplete=incomplete, tokens=tokens, reasoning=reasoning)

    def _save_or_move(self, text: str, *, incomplete: bool, tokens: int, reasoning: str) -> int | None:
        try:
            return self._save_reply(text, incomplete=incomplete, tokens=tokens, reasoning=reasoning)
        except StorageError as error:
            if self.on_lost is None or not self.log.saved:
                raise
            self.log = self.on_lost(error)
            self.draft_id = None
            return self._save_reply(text, incomplete=incomplete, tokens=tokens, reasoning=reasoning)

    def _save_reply(self, text: str, *, incomplete: bool, tokens: int, reasoning: str) -> int | None:
        text = self.clean(text).strip()
        kept = reasoning.strip() if self.keep_reasoning and reasoning.strip() else None
        reply_id: int | None
        if self.draft_id is not None:
            self.log.update(
                self.draft_id,
                text,
                incomplete=incomplete,
                token_count=tokens,
                model=self.model,
                reasoning=kept,
            )
            reply_id = self.draft_id
        elif text:
            reply_id = self.log.add(
                "assistant",
                text,
                speaker=self.speaker,
                incomplete=incomplete,
                token_count=tokens,
                model=self.model,
                reasoning=kept,
            )
        else:
            reply_id = None
        self.on_saved(reply_id)
        return reply_id
