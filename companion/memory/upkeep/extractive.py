"""Consolidation that needs no language model: what upkeep falls back to when the model cannot write usable
JSON in time (the built-in base model never learned to), so upkeep finishes in seconds and the memory is never
worse than the raw log.

- A session's summary: its most central sentences (the ones most like all the others, by the embeddings
  recall already uses), in the order they were said, each with who said it.
- Facts: what the user says about themselves in the first person ("I'm allergic to …", "my sister …",
  "I work …"), kept as said, with the message they come from. One that names a time ahead ("next Friday",
  "in two weeks") gets its date and becomes an open thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import numpy as np

from companion import timeutil
from companion.memory.recall.embed import Embedder
from companion.memory.recall.timewords import find_window

SUMMARY_SENTENCES = 3
FIRST_PERSON = re.compile(
    r"^(i'm|i am|i've|i have|i had|i was|i live|i lived|i work|i worked|i like|i love|i hate|i prefer|i enjoy|"
    r"i can't|i cannot|i don't|i never|i always|i started|i adopted|i got|i moved|i'll|i will|i'm going|"
    r"i need|i want|i'd like|i miss|i feel|my \w+)\b",
    re.IGNORECASE,
)
FUTURE = re.compile(
    r"\b(next|tomorrow|soon|upcoming|going to|will|i'll|on (monday|tuesday|wednesday|thursday|"
    r"friday|saturday|sunday))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Said:
    """One sentence of a session: which message, who said it, when."""

    message_id: int
    who: str
    role: str
    text: str
    time: str


def sentences(message_id: int, who: str, role: str, text: str, time: str) -> list[Said]:
    parts = re.split(r"(?<=[.!?])\s+|\n+", text.strip())
    return [Said(message_id, who, role, p.strip(), time) for p in parts if len(p.strip().split()) >= 3]


def summary(said: list[Said], embedder: Embedder, limit: int = SUMMARY_SENTENCES) -> str:
    """The session's most central sentences, in the order they were said."""
    if not said:
        return ""
    if len(said) <= limit:
        chosen = list(range(len(said)))
    else:
        vectors = embedder.encode([s.text for s in said])
        centrality = (vectors @ vectors.T).mean(axis=1)
        chosen = sorted(int(i) for i in np.argsort(-centrality)[:limit])
    return " … ".join(f"{said[i].who}: {said[i].text}" for i in chosen)


@dataclass(frozen=True)
class Statement:
    text: str
    message_id: int
    event: date | None  # the day a statement about something ahead speaks of


def statements(said: list[Said], user: str) -> list[Statement]:
    """What the user says about themselves, in the first person, as facts (`Ana said: "…"`)."""
    out: list[Statement] = []
    seen: set[str] = set()
    for s in said:
        if s.role != "user" or not FIRST_PERSON.match(s.text):
            continue
        key = s.text.lower()
        if key in seen:
            continue
        seen.add(key)
        event = None
        moment = timeutil.parse(s.time)
        if moment is not None and FUTURE.search(s.text):
            window = find_window(s.text, moment, ahead=True)
            if window is not None and window.start.date() > moment.date():
                event = window.start.date()
        out.append(Statement(f'{user or "The user"} said: "{s.text}"', s.message_id, event))
    return out


def digest(texts: list[str], embedder: Embedder, limit: int = 2) -> str:
    """A day's (or a week's) digest: the most central of its summaries' sentences."""
    said = [
        Said(0, "", "", t, "") for text in texts for t in re.split(r"(?<=[.!?])\s+| … ", text) if t.strip()
    ]
    if not said:
        return ""
    if len(said) > limit:
        vectors = embedder.encode([s.text for s in said])
        centrality = (vectors @ vectors.T).mean(axis=1)
        said = [said[int(i)] for i in sorted(np.argsort(-centrality)[:limit])]
    return " … ".join(s.text for s in said)
