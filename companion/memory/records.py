"""The memory layer's records: rows as dataclasses, the keys of their vectors, and the change a write makes
to the FAISS index. No SQL here; every room reads and hands these."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from companion import timeutil
from companion.errors import CompanionError
from companion.memory.recall.timewords import spoken_of

if TYPE_CHECKING:
    import numpy as np

MEMORY_KINDS = ("fact", "summary", "digest", "profile", "note", "lore")

# FAISS ids: one int64 key per vector, from the item and which text of it was embedded (a message alone, a
# message read with the turn before it, a derived memory).
VARIANT_MESSAGE, VARIANT_MESSAGE_CONTEXT, VARIANT_MEMORY = 0, 1, 2


def vector_key(item_id: int, variant: int) -> int:
    return item_id * 4 + variant


def split_key(key: int) -> tuple[int, int]:
    """(item id, variant) of a vector key."""
    return key // 4, key % 4


def base_key(key: int) -> int:
    """The key a hit is scored under: a message's two vectors count as one message."""
    item, variant = split_key(key)
    return vector_key(item, VARIANT_MEMORY if variant == VARIANT_MEMORY else VARIANT_MESSAGE)


def message_keys(message_ids: list[int]) -> list[int]:
    """Both vector keys of each message (alone, and read with the turn before it)."""
    return [vector_key(i, v) for i in message_ids for v in (VARIANT_MESSAGE, VARIANT_MESSAGE_CONTEXT)]


def memory_keys(memory_ids: list[int]) -> list[int]:
    return [vector_key(i, VARIANT_MEMORY) for i in memory_ids]


@dataclass
class VectorChange:
    """What one write did to the vectors in the file, for the FAISS index to follow once it has committed:
    keys whose vectors were added or replaced (with them), keys whose vectors are gone."""

    added: dict[int, np.ndarray] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)

    def add(self, keys: list[int], vectors: np.ndarray) -> None:
        for key, vector in zip(keys, vectors, strict=True):
            self.added[int(key)] = vector
            self.removed.discard(int(key))

    def remove(self, keys: list[int]) -> None:
        for key in keys:
            self.added.pop(int(key), None)
            self.removed.add(int(key))

    def merge(self, other: VectorChange) -> VectorChange:
        self.remove(sorted(other.removed))
        for key, vector in other.added.items():
            self.added[key] = vector
            self.removed.discard(key)
        return self

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


@dataclass(frozen=True)
class Message:
    id: int
    session_id: int
    role: str
    speaker: str
    text: str
    created_at: str
    incomplete: bool
    source_id: str | None = None
    token_count: int | None = None
    event_time: str | None = None  # the day the message speaks of, when it names one

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Message:
        return cls(
            id=row["id"],
            session_id=row["session_id"],
            role=row["role"],
            speaker=row["speaker"] or "",
            text=row["text"],
            created_at=row["created_at"],
            incomplete=bool(row["incomplete"]),
            source_id=row.get("source_id"),
            token_count=row.get("token_count"),
            event_time=row.get("event_time"),
        )

    @property
    def who(self) -> str:
        return self.speaker or self.role


@dataclass(frozen=True)
class Memory:
    id: int
    kind: str
    text: str
    event_time: str | None
    created_at: str
    importance: float
    strength: float
    last_recalled_at: str | None
    recall_count: int
    pinned: bool
    archived: bool
    valid_from: str | None = None
    valid_to: str | None = None
    superseded_by: int | None = None
    session_id: int | None = None
    thread: str | None = None
    period: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Memory:
        return cls(
            id=row["id"],
            kind=row["kind"],
            text=row["text"],
            event_time=row["event_time"],
            created_at=row["created_at"],
            importance=float(row["importance"] if row["importance"] is not None else 0.5),
            strength=float(row["strength"] if row["strength"] is not None else 1.0),
            last_recalled_at=row["last_recalled_at"],
            recall_count=int(row["recall_count"] or 0),
            pinned=bool(row["pinned"]),
            archived=bool(row["archived"]),
            valid_from=row["valid_from"],
            valid_to=row["valid_to"],
            superseded_by=row["superseded_by"],
            session_id=row["session_id"],
            thread=row.get("thread"),
            period=row.get("period"),
        )

    @property
    def active(self) -> bool:
        """In use: neither archived nor superseded (the Python side of `ACTIVE`)."""
        return not self.archived and self.valid_to is None

    @property
    def state(self) -> str:
        return "archived" if self.archived else ("superseded" if self.valid_to else "active")


@dataclass(frozen=True)
class SessionOverview:
    """One past conversation as the sessions screen lists it."""

    id: int
    started_at: str
    parent_id: int | None
    persona: str
    messages: int
    summary: str | None


@dataclass(frozen=True)
class SessionActivity:
    """A session as consolidation looks at it: whether it ended, and its last message."""

    id: int
    ended_at: str | None
    last_time: str
    last_message: int


@dataclass(frozen=True)
class MessageText:
    """A message as its vectors are made from it: its text, and who sent it when (what decides the turns it is
    read with, `read_with`). `before_id`: the message before it in its session's conversation, when the
    caller knows it."""

    id: int
    session_id: int
    text: str
    role: str = ""
    speaker: str = ""
    time: str = ""
    before_id: int | None = None


@dataclass(frozen=True)
class TurnBefore:
    """A message before another in its session, and its plain vector when it has one (a message's context
    vector is made from its own and those of the turns it is read with)."""

    id: int
    text: str
    vector: np.ndarray | None
    role: str = ""
    speaker: str = ""
    time: str = ""


@dataclass(frozen=True)
class Said:
    """One turn of a conversation as upkeep reads it: who said what, when."""

    id: int
    who: str
    role: str
    text: str
    time: str


@dataclass
class Fact:
    """A fact learned in a conversation, before it is written: its text, the turns it comes from, how much it
    matters, the day it is about, and whether that day is ahead (an open thread)."""

    text: str
    sources: list[int]
    importance: float
    when: str | None
    future: bool


Action = Literal["ADD", "UPDATE", "SUPERSEDE", "NOOP"]


@dataclass(frozen=True)
class Decision:
    """What a new fact does to what is known: ADD it, UPDATE `target` with `text`, SUPERSEDE `target`, or
    NOOP (`target`, when there is one, gains the fact's turns as sources)."""

    action: Action
    fact: Fact
    target: int | None
    text: str


@dataclass
class SessionPlan:
    """What consolidating one session writes, decided before anything is: its summary (the whole session; a
    session that went on is summarized anew), what each new fact does, how far the session is now
    consolidated (its progress marker, claimed in the same transaction), and the vectors of every text written
    (by text)."""

    session_id: int
    summary: str | None
    summary_time: str | None
    summary_sources: list[int]
    decisions: list[Decision]
    last_message: int
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DigestPlan:
    """One digest of a day's session summaries (or a week's daily digests), before it is written."""

    day: str
    period: Literal["day", "week"]
    text: str
    sources: list[int]
    vector: np.ndarray | None = None


@dataclass
class Hit:
    id: int
    kind: str  # "message" or a memory kind (fact, summary, ...)
    text: str
    score: float
    time: str
    source_ids: list[str] = field(default_factory=list)
    session_id: int | None = None
    speaker: str = ""
    role: str = ""
    why: dict[str, float] = field(default_factory=dict)
    event_time: str | None = None  # the day a recalled message speaks of, when it names one
    relevance: float = 0.0  # how well it answers the question, on an absolute scale (recall's `Bar`)
    relevant: bool = True  # whether it clears the bar: only relevant hits are recalled
    features: dict[str, float] = field(default_factory=dict)  # what the relevance is made of

    @property
    def spoken_of(self) -> str:
        """The time the message speaks of, as people say it ("6 May 2023", "April 2023"), or ""."""
        return spoken_of(self.text, self.time) if self.event_time else ""

    def as_json(self, detail: bool = False) -> dict[str, Any]:
        """The hit for `memory search --json`; with `detail`, the parts of its score and of its relevance."""
        more: dict[str, Any] = {}
        if detail:
            more = {
                "why": {k: round(v, 4) for k, v in self.why.items()},
                "features": {k: round(v, 4) for k, v in self.features.items()},
            }
        return {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "score": round(self.score, 4),
            "time": self.time,
            "source_ids": self.source_ids,
            "relevance": round(self.relevance, 4),
            "relevant": self.relevant,
            **more,
        }


@dataclass(frozen=True)
class Ref:
    """What a memory command points at: a derived memory (`45`) or a message (`message:123`)."""

    kind: str  # "memory" | "message"
    id: int

    @classmethod
    def parse(cls, text: str) -> Ref:
        raw = text.strip().lower()
        kind = "memory"
        for prefix, name in (("message:", "message"), ("msg:", "message"), ("memory:", "memory")):
            if raw.startswith(prefix):
                kind, raw = name, raw[len(prefix) :]
        if not raw.isdigit():
            raise CompanionError(
                f"'{text}' is not a memory id; use a number (a memory) or message:NUMBER (a message), as shown by "
                "`companion memory search` or `list`."
            )
        return cls(kind, int(raw))


def new_uid() -> str:
    """The identity of a new session or memory; it travels with exports (see `db.schema.row_uid`)."""
    return uuid.uuid4().hex


class Sent(Protocol):
    """A message as `read_with` sees it: who sent it, when, and what it says."""

    @property
    def text(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def speaker(self) -> str: ...
    @property
    def time(self) -> str: ...


# People type in bursts: "I love watching sports" / "basketball mostly" / "and tennis", seconds apart. A
# message sent by the same speaker within this many seconds of the one before belongs to its burst.
BURST_SECONDS = 120.0
# The most turns before a message that it is read with.
READ_WITH = 4
# The name of the rule above, kept in a memory file once every message's context follows it (a file stored
# under an earlier rule is read again: `LongTermMemory.reread_contexts`). Change it when the rule changes.
READ_WITH_RULE = f"burst and the turn it answers, {BURST_SECONDS:g} s, at most {READ_WITH}"


def read_with(before: Sequence[Sent], this: Sent) -> int:
    """How many of the last turns of `before` (the conversation before `this`, oldest first) `this` is read
    with, for recall's context features: the burst it ends (the messages its speaker sent just before it, each
    within `BURST_SECONDS` of the next; a time that is not known does not break a burst) and the turn it
    answers: the other side's burst before that. Without bursts, the turn before it. At most `READ_WITH`."""
    taken = 0
    after: Sent = this
    crossed = False  # into the other side's turn
    for turn in reversed(before):
        if taken == READ_WITH:
            break
        if not _same_burst(turn, after):
            if crossed:
                break
            crossed = True
        taken += 1
        after = turn
    return taken


S = TypeVar("S", bound=Sent)


def turns_read_with(before: Sequence[S], this: Sent) -> list[S]:
    """The turns of `before` that `this` is read with (`read_with`), oldest first."""
    return list(before[len(before) - read_with(before, this) :])


def keep_turn(earlier: list[S], turn: S) -> None:
    """`turn` joins a conversation's last turns, of which `READ_WITH` are kept: what the next one is read with."""
    earlier.append(turn)
    del earlier[:-READ_WITH]


def _same_burst(turn: Sent, after: Sent) -> bool:
    if (turn.role, turn.speaker.casefold()) != (after.role, after.speaker.casefold()):
        return False
    sent, next_sent = timeutil.parse(turn.time), timeutil.parse(after.time)
    if sent is None or next_sent is None:
        return True
    return abs((next_sent - sent).total_seconds()) <= BURST_SECONDS


def context_text(before: Sequence[Sent], this: Sent) -> str:
    """`this` read together with the turns of `before` (the conversation before it, oldest first) that it is
    read with (`read_with`): what recall's context features see."""
    return "\n".join([*(t.text for t in turns_read_with(before, this)), this.text])


def sentences_of(text: str) -> list[str]:
    """A message's sentences of three words or more: what an extractive summary quotes, word for word."""
    return [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if len(p.strip().split()) >= 3]


MAX_TEXT_CHARS = 1_000_000  # one message, note or imported line: longer is refused before anything is stored


def check_length(text: str, what: str = "This message") -> None:
    """Refuse a text longer than any one thing said (a pasted file, a runaway script), before it is stored or
    embedded."""
    if len(text) > MAX_TEXT_CHARS:
        raise CompanionError(
            f"{what} is {len(text):,} characters long; the most one message can be is {MAX_TEXT_CHARS:,}; "
            "shorten or split it."
        )
