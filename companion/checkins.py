"""Check-ins: the companion reaches out, once, when something the user mentioned has come due.

Opt-in (`checkins.enabled`). Upkeep — `companion maintain` from the timer `companion schedule install` writes,
or the app while it runs unused in the background — calls `run`: when an open thread's day has passed
("job interview on Tuesday", and it is Wednesday), outside quiet hours, at most one a day and
`checkins.per_week` in seven days, and never while the app is in use (and `maintain` leaves it to an open app), the companion writes a short
question (the model when it writes well, else a sentence built from the thread) and stores it as the first
message of a new session. The app (and `chat --plain`) opens on an unanswered check-in, so the user answers in
place; the thread is marked asked, so it is asked once. The desktop is told through its own notification
service (`desktop.notify`), by default without the question (lock screens show notifications).

In the check-in's session the user can say "don't ask me about that" (the thread is closed) or "stop checking
in" (check-ins are turned off): `understood` tells those apart from conversation.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING

from companion import timeutil
from companion.config import Settings
from companion.errors import CompanionError, ModelError
from companion.memory.operations import LongTermMemory
from companion.memory.recall.timewords import TOMORROW
from companion.memory.records import Memory
from companion.memory.tables import checkins as checkin_table
from companion.memory.tables import memories as memory_table
from companion.memory.tables import meta

if TYPE_CHECKING:
    from companion.desktop.notify import Sent
    from companion.llm.base import ChatModel
    from companion.memory.tables.checkins import Checkin
    from companion.persona.card import Card

THREAD_DAYS = 7  # a thread whose day passed longer ago than this is not asked about (upkeep closes it)
WAITING_DAYS = 3  # an unanswered check-in is where the app opens, for this many days
PRESENCE = "app.presence"  # meta key: the app's pid, when it was last alive and when the user last typed
ALIVE = timedelta(minutes=3)  # the app writes its presence every minute while it runs
IN_USE = timedelta(minutes=15)  # the user typed in the app this recently: it is in use


# -- the rules -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rules:
    enabled: bool
    per_week: int
    quiet: tuple[time, time]
    zone: tzinfo
    preview: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        """The check-in settings, read; a sentence (CompanionError) when one is not usable."""
        c = settings.checkins
        return cls(c.enabled, c.per_week, timeutil.hours(c.quiet_hours), timeutil.zone(c.timezone), c.preview)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)


def why_not(
    memory: LongTermMemory, rules: Rules, now: datetime, in_use: bool, conn: sqlite3.Connection | None = None
) -> str | None:
    """Why no check-in may be made now (None: one may)."""
    if not rules.enabled:
        return "check-ins are off"
    if timeutil.within(rules.local(now).time(), rules.quiet):
        return "quiet hours"
    if in_use:
        return "the app is in use"
    week = checkin_table.made_since(memory.store, timeutil.iso(now - timedelta(days=7)), conn)
    today = rules.local(now).date()
    if any(rules.local(_at(c.made_at)).date() == today for c in week):
        return "one check-in today already"
    if len(week) >= rules.per_week:
        return f"{len(week)} check-ins this week already"
    return None


def _at(value: str) -> datetime:
    return timeutil.parse(value) or timeutil.now()


def due_threads(memory: LongTermMemory, rules: Rules, now: datetime) -> list[Memory]:
    """Open threads whose day has passed (in the user's time zone), and not so long ago that asking is odd."""
    today = rules.local(now).date()
    out = []
    for thread in memory_table.threads(memory.store, "open", due_before=timeutil.iso(now)):
        moment = timeutil.parse(thread.event_time)
        if moment is None:
            continue
        day = rules.local(moment).date()
        if day < today and (today - day).days <= THREAD_DAYS:
            out.append(thread)
    return out


# -- the app's presence ----------------------------------------------------------------------------------------
def mark_presence(memory: LongTermMemory, now: datetime, typed: bool = False) -> None:
    """The app is open (every minute) and, with `typed`, the user just wrote in it."""
    before = _presence(memory)
    last_input = (
        timeutil.iso(now) if typed else before.get("input") if before.get("pid") == os.getpid() else None
    )
    meta.put(
        memory.store,
        PRESENCE,
        json.dumps({"pid": os.getpid(), "seen": timeutil.iso(now), "input": last_input or timeutil.iso(now)}),
    )


def _presence(memory: LongTermMemory) -> dict[str, object]:
    try:
        value = json.loads(meta.get(memory.store, PRESENCE) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def app_in_use(memory: LongTermMemory, now: datetime) -> bool:
    """Whether no check-in may be made for the app's sake. Deciding in the app itself: the user typed there
    lately. Deciding elsewhere (`maintain`): an app is open at all (alive within minutes) — it makes its own
    check-in once it sits unused, and moves its conversation to it, so the user never gets a second window."""
    p = _presence(memory)
    seen, typed = timeutil.parse(str(p.get("seen"))), timeutil.parse(str(p.get("input")))
    if seen is None or typed is None:
        return False
    if p.get("pid") == os.getpid():
        return now - typed <= IN_USE
    return now - seen <= ALIVE


# -- the words -------------------------------------------------------------------------------------------------
_SECOND_PERSON = [
    (r"\bI'm\b", "you're"),
    (r"\bI am\b", "you are"),
    (r"\bI was\b", "you were"),
    (r"\bI've\b", "you've"),
    (r"\bI'll\b", "you'll"),
    (r"\bI\b", "you"),
    (r"\bmy\b", "your"),
    (r"\bMy\b", "Your"),
    (r"\bmine\b", "yours"),
    (r"\bmyself\b", "yourself"),
    (r"\bme\b", "you"),
    (r"\bwe\b", "you"),
    (r"\bWe\b", "You"),
    (r"\bour\b", "your"),
    (r"\bOur\b", "Your"),
    (r"\bus\b", "you"),
]


_WEEKDAY = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MONTH = r"(january|february|march|april|may|june|july|august|september|october|november|december)"
_WHEN = re.compile(
    r",?\s*\b("
    rf"(on\s+)?(next|this|coming)\s+({_WEEKDAY}|week|weekend|month|year)"
    rf"|the day after tomorrow|{TOMORROW}|tonight|tonite|later today|today|soon"
    r"|(over|during|at) the weekend"
    rf"|in\s+(a couple of|a couple|a few|a|an|one|two|three|four|five|six|\d+)\s+(days?|weeks?|months?)"
    rf"|(on\s+)?{_WEEKDAY}(\s+the\s+\d{{1,2}}(st|nd|rd|th)?(\s+of\s+{_MONTH})?)?"
    rf"|(on\s+)?(the\s+)?\d{{1,2}}(st|nd|rd|th)?(\s+of)?\s+{_MONTH}"
    rf"|(on\s+)?{_MONTH}\s+\d{{1,2}}(st|nd|rd|th)?"
    r"|(on\s+)?\d{4}-\d{2}-\d{2}"
    r")\b",
    re.I,
)


def _i_verb(m: re.Match[str]) -> str:
    """ "Ana has" / "The user is" in the first person: "I have", "I am"."""
    return "I " + {"has": "have", "is": "am"}.get(m[1], m[1])


def sentence(thread_text: str, user: str, when: datetime | None = None) -> str:
    """A check-in without a model: the thread in the user's own words, turned towards them. A time word said
    then ("next Tuesday") is replaced by the day itself, which has passed now."""
    from companion.memory.upkeep.extractive import quoted

    words = quoted(thread_text)
    if words is None:  # a model-written fact about the user ("Ana has a job interview on Tuesday.")
        words = thread_text
        for name in [re.escape(user)] if user else []:
            words = re.sub(rf"\b{name}'s\b", "my", words)
            words = re.sub(rf"\b{name} (has|is|was|will)\b", _i_verb, words)
            words = re.sub(rf"\b{name}\b", "I", words)
        words = re.sub(r"\bThe user's\b", "my", words, flags=re.I)
        words = re.sub(r"\bThe user (has|is|was|will)\b", _i_verb, words, flags=re.I)
        words = re.sub(r"\bThe user\b", "I", words, flags=re.I)
    for pattern, replacement in _SECOND_PERSON:
        words = re.sub(pattern, replacement, words)
    words = words.strip().rstrip(".!?;,").strip()
    if when is not None:
        bare = re.sub(r"\s{2,}", " ", _WHEN.sub("", words)).strip().rstrip(",")
        if bare != words and len(bare.split()) >= 3:
            words = f"{bare} on {when:%A} {when.day} {when:%B}"
    if words[:1].isupper() and not words.startswith(("I ", "I'")):
        first = words.split(" ", 1)[0]
        if not first.isupper():  # not an acronym
            words = words[:1].lower() + words[1:]
    hello = f"Hi {user}!" if user else "Hi!"
    return f"{hello} You told me {words}. How did it go?"


ASK = (
    "Something {user} mentioned has come up: {thread} ({day}). Write {user} one short, warm message (one or two "
    "sentences) asking how it went, as yourself. Only the message."
)


def by_model(model: ChatModel, persona_text: str, thread: Memory, user: str) -> str:
    """The check-in as the chat model would say it (its answer only, never its reasoning); "" when it said
    nothing usable."""
    import threading

    from companion.llm.base import ChatMessage, GenerationOptions
    from companion.llm.prompt import clean_reply

    ask = ASK.format(user=user or "the user", thread=thread.text, day=timeutil.day(thread.event_time))
    stream = model.stream(
        [ChatMessage("system", persona_text), ChatMessage("user", ask)],
        GenerationOptions(max_tokens=120, temperature=0.7),
        threading.Event(),
    )
    text = clean_reply("".join(stream), [user] if user else [])
    return text.strip().strip('"').strip() if stream.stats.finish_reason == "stop" else ""


# -- deciding and making one -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What one check-in run did: `made` when a check-in was stored; `said` is upkeep's line."""

    said: str
    made: Checkin | None = None
    text: str = ""


def run(
    memory: LongTermMemory,
    settings: Settings,
    now: datetime,
    *,
    model: Callable[[], ChatModel] | None = None,
    in_use: bool | None = None,
) -> Outcome:
    """Make a check-in when one is due (see the module's rules). Never raises for a setting that cannot be
    used or a model that fails: the outcome says so, and upkeep goes on."""
    try:
        rules = Rules.from_settings(settings)
    except CompanionError as error:
        return Outcome(f"skipped: {error}")
    busy = app_in_use(memory, now) if in_use is None else in_use
    reason = why_not(memory, rules, now, busy)
    if reason:
        return Outcome(f"none ({reason})")
    due = due_threads(memory, rules, now)
    if not due:
        return Outcome("none (nothing has come due)")
    thread = due[0]
    user = settings.user.name
    persona = _persona(memory, settings)
    text = ""
    if model is not None and settings.memory.consolidation != "extractive":
        try:
            chat = model()
            if chat.prompt_style != "transcript":
                from companion.persona.library import system_text

                text = by_model(chat, system_text(persona, user), thread, user)
        except (ModelError, CompanionError):
            text = ""
    moment = timeutil.parse(thread.event_time)
    text = text or sentence(thread.text, user, rules.local(moment) if moment else None)
    stamp = timeutil.iso(now)
    with memory.write() as w:
        if why_not(memory, rules, now, busy, w.conn):  # another process made one meanwhile
            return Outcome("none (one was made meanwhile)")
        still = memory_table.get(memory.store, thread.id)
        if still is None or still.thread != "open":
            return Outcome("none (the thread was closed meanwhile)")
        made = checkin_table.make(w, memory.store, thread.id, persona.name, text, stamp)
    return Outcome(f"made one about memory {thread.id}", made, text)


def _persona(memory: LongTermMemory, settings: Settings) -> Card:
    from companion.persona import library

    library.ensure_default(memory.store, settings.persona.name)
    return library.get(memory.store, settings.persona.name)


def waiting(memory: LongTermMemory, now: datetime) -> Checkin | None:
    """An unanswered check-in from the last few days: where a new conversation opens."""
    return checkin_table.waiting(memory.store, timeutil.iso(now - timedelta(days=WAITING_DAYS)))


# -- what the user says in a check-in's session ------------------------------------------------------------------
DONT_ASK = re.compile(
    r"\b(don'?t|do not|never|stop)\s+(ask|asking|bring(ing)? up|mention(ing)?)\b.*\b(that|this|it|again|about)\b",
    re.I,
)
STOP = re.compile(
    r"\b(stop|no more|turn off|disable|don'?t|do not)\b.{0,20}\b(check(ing)?[- ]?ins?|checking in|reach(ing)? out)\b",
    re.I,
)


def understood(text: str) -> str | None:
    """ "off" when the user asks for no more check-ins, "dont_ask" when they ask not to be asked about this
    one, None for conversation."""
    if STOP.search(text):
        return "off"
    if DONT_ASK.search(text):
        return "dont_ask"
    return None


def notification(persona: str, text: str, preview: bool) -> tuple[str, str]:
    """The notification's title and body: by default only that there is a check-in (lock screens show
    notifications); the question itself with `checkins.preview`."""
    return f"{persona} would like to check in", (text if preview else "")


def tell_the_desktop(
    persona: str,
    text: str,
    preview: bool,
    on_open: Callable[[], object] | None = None,
    wait_seconds: float = 0.0,
) -> Sent:
    """Show a check-in's notification (the persona's avatar as its icon); with `on_open`, offer "Open"."""
    from companion.desktop import notify
    from companion.paths import assets_dir

    title, body = notification(persona, text, preview)
    icon = assets_dir() / "personas" / "avatar.png"
    return notify.send(title, body, icon=icon, on_open=on_open, wait_seconds=wait_seconds)
