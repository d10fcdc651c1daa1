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
from companion.memory.recall import timewords
from companion.memory.recall.embed import Embedder
from companion.memory.recall.timewords import find_window
from companion.memory.records import sentences_of

SUMMARY_SENTENCES = 3
FIRST_PERSON = re.compile(
    r"^(i'm|i am|i've|i have|i had|i was|i live|i lived|i work|i worked|i like|i love|i hate|i prefer|i enjoy|"
    r"i can't|i cannot|i don't|i never|i always|i started|i adopted|i got|i moved|i'll|i will|i'm going|"
    r"i need|i want|i'd like|i miss|i feel|i study|i studied|i teach|i play|i speak|i grew up|i was born|"
    r"i dislike|i quit|i joined|i bought|i became|i just|i recently|i finally|i use|i eat|i drink|"
    r"i usually|i'm allergic|we're|we are|we have|we got|we moved|my \w+)\b",
    re.IGNORECASE,
)
# What people put before what they say about themselves: "One important thing: …", "Honestly, …", "btw …".
LEAD_IN = re.compile(
    r"^((?:[^:.!?]{1,40}):\s+|(?:oh|ok|okay|so|and|but|also|well|actually|honestly|anyway|btw|by the way|fyi|"
    r"ps|lol|haha|hey|hi|hmm|yeah|yes|no|just so you know|to be honest|tbh|oh and)\b[,!.]?\s+)",
    re.IGNORECASE,
)
ACTION = re.compile(r"\*[^*\n]{2,}\*")  # role-play narration: *draws her sword*
OUT_OF_CHARACTER = re.compile(r"^\s*[(\[]?\s*ooc\s*:\s*", re.IGNORECASE)
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
    acted: bool = False  # the message holds role-play narration (*…*)


def sentences(message_id: int, who: str, role: str, text: str, time: str) -> list[Said]:
    acted = bool(ACTION.search(text))
    return [Said(message_id, who, role, part, time, acted) for part in sentences_of(text)]


def summary(said: list[Said], embedder: Embedder, limit: int = SUMMARY_SENTENCES) -> tuple[str, list[int]]:
    """The session's most central sentences, in the order they were said, and the messages they are from
    (the summary's provenance: what it quotes, not the whole session)."""
    if not said:
        return "", []
    if len(said) <= limit:
        chosen = list(range(len(said)))
    else:
        vectors = embedder.encode([s.text for s in said])
        centrality = (vectors @ vectors.T).mean(axis=1)
        chosen = sorted(int(i) for i in np.argsort(-centrality)[:limit])
    sources = list(dict.fromkeys(said[i].message_id for i in chosen))
    return " … ".join(f"{said[i].who}: {said[i].text}" for i in chosen), sources


@dataclass(frozen=True)
class Statement:
    text: str
    message_id: int
    event: date | None  # the day a statement about something ahead speaks of


def lead_in(text: str) -> str:
    """The sentence without what people put before what they say ("One important thing: I'm allergic …")."""
    for _ in range(3):
        stripped = LEAD_IN.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return text


def is_scene(messages: list[str]) -> bool:
    """Whether the user's messages of a session are a role-play scene: several hold narration (*…*). What
    a character says in a scene is not a fact about the user."""
    acted = sum(1 for text in messages if ACTION.search(text))
    return acted >= 2 or (acted >= 1 and len(messages) <= 2)


def statements(said: list[Said], user: str, scene: bool = False) -> list[Statement]:
    """What the user says about themselves, in the first person, as facts (`Ana said: "…"`). In a role-play
    `scene` only what is said out of character ("(OOC: I'm allergic to peanuts)") counts, and a sentence
    from a message with narration (*…*) never does."""
    out: list[Statement] = []
    seen: set[str] = set()
    for s in said:
        if s.role != "user":
            continue
        spoken = OUT_OF_CHARACTER.sub("", s.text)
        if (scene or s.acted) and spoken == s.text:
            continue
        if not FIRST_PERSON.match(lead_in(spoken)):
            continue
        key = s.text.lower()
        if key in seen:
            continue
        seen.add(key)
        event = None
        moment = timeutil.parse(s.time)
        if moment is not None and (FUTURE.search(s.text) or timewords.FUTURE.search(s.text.lower())):
            window = find_window(s.text, moment, ahead=True)
            if window is not None and window.start.date() > moment.date():
                event = window.start.date()
        out.append(Statement(f'{user or "The user"} said: "{spoken.rstrip(")] ")}"', s.message_id, event))
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


# -- a profile without a model ---------------------------------------------------------------------------------
# What the user said about themselves, sorted into the profile's sections by what it is about. The first match
# wins, in this order: health before likes ("I can't eat gluten"), people before places.
PORTRAIT = (
    (
        "concerns",
        r"\b(allerg\w*|asthma|diabet\w*|migraines?|anxiety|anxious|depress\w*|worried|worry|stress\w*|"
        r"intoleran\w*|can't eat|cannot eat|coeliac|celiac|epilep\w*|insomnia|pregnan\w*|therapy|"
        r"surgery|diagnos\w*|chronic|medication|condition)\b",
    ),
    (
        "relationships",
        r"\b(my (wife|husband|partner|boyfriend|girlfriend|fianc\w*|sister|brother|mother|mom|mum|father|dad|"
        r"parents|son|daughter|kids?|children|baby|friend|best friend|cat|dog|pet|puppy|kitten|grandma|"
        r"grandmother|grandpa|grandfather|family|cousin|aunt|uncle|niece|nephew|roommate|flatmate)|"
        r"married|engaged|adopted|divorced|dating|single)\b",
    ),
    (
        "preferences",
        r"^(i (really )?(like|love|hate|prefer|enjoy|adore|dislike|can't stand|don't like|do not like)|"
        r"i'm (into|a fan|a big fan|vegan|vegetarian)|i am (into|a fan|vegan|vegetarian))\b|\bfavou?rite\b",
    ),
    (
        "concerns",
        r"\b(going to|gonna|planning|plan to|hope to|want to|i'd like to|will|next (week|month|year)|"
        r"appointment|getting married|interview|exam|deadline|trying to)\b",
    ),
    (
        "traits",
        r"^(i'm an? |i am an? |i work|i worked|i study|i studied|i'm studying|i teach|i live|i lived|"
        r"i moved|i'm moving|i'm from|i am from|i grew up|i was born|i speak|i play|i run|i retired|"
        r"i've been (a|an|working|living)|my job|i quit|i started|i joined)",
    ),
)
THIRD_PERSON = (
    (r"^i'm\b", "is"),
    (r"^i am\b", "is"),
    (r"^i've\b", "has"),
    (r"^i have\b", "has"),
    (r"^i'll\b", "will"),
    (r"^i'd\b", "would"),
    (r"^i can't\b", "can't"),
    (r"^i cannot\b", "cannot"),
    (r"^i don't\b", "doesn't"),
    (r"^i do not\b", "does not"),
    (r"^i was\b", "was"),
)
PRESENT = (
    "like love hate prefer enjoy adore dislike work live study teach play speak run need want miss feel own "
    "cook read watch write paint sing dance swim drive volunteer know think".split()
)


def portrait_line(statement: str, user: str) -> str:
    """A first-person statement as a profile line about the user ("I'm allergic to peanuts" -> "is allergic to
    peanuts"; "my sister Ana lives in Lisbon" -> "their sister Ana lives in Lisbon")."""
    text = statement.strip().rstrip(".!").strip()
    lowered = text.lower()
    for pattern, replacement in THIRD_PERSON:
        if re.match(pattern, lowered):
            text = replacement + text[len(re.match(pattern, lowered).group(0)) :]  # type: ignore[union-attr]
            break
    else:
        if m := re.match(r"^i (\w+)\b", lowered):
            verb = m.group(1)
            if verb in PRESENT:
                verb = verb + ("es" if verb.endswith(("s", "sh", "ch", "x")) else "s")
            text = verb + text[m.end() :]
    text = re.sub(r"\bmy\b", "their", text, flags=re.IGNORECASE)
    text = re.sub(r"\bI'm\b|\bI am\b", f"{user} is", text)
    text = re.sub(r"\bI\b", user, text)
    return re.sub(r"\s+", " ", text).strip()


def quoted(fact: str) -> str | None:
    """The user's own words in an extractive fact (`Ana said: "…"`); None for another kind of fact."""
    m = re.match(r'^[^"]{1,60} said: "(.*)"$', fact.strip())
    return m.group(1) if m else None


@dataclass(frozen=True)
class PortraitLine:
    section: str
    text: str
    memory_id: int  # the fact it comes from (whose sources are the messages)


def portrait(said: list[tuple[int, str]], user: str) -> list[PortraitLine]:
    """Profile lines from what the user said about themselves (each a memory id and the user's words: an
    extractive fact's quote, a note), each with the memory it comes from; statements about nothing the
    profile keeps ("I feel tired") give none."""
    out: list[PortraitLine] = []
    for memory_id, words in said:
        statement = lead_in(OUT_OF_CHARACTER.sub("", words))
        if not FIRST_PERSON.match(statement):
            continue
        lowered = statement.lower()
        for section, pattern in PORTRAIT:
            if re.search(pattern, lowered):
                out.append(PortraitLine(section, portrait_line(statement, user), memory_id))
                break
    return out
