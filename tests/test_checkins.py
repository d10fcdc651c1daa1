"""Check-ins: the rules (opt-in, the day passed, quiet hours, one a day, per week, not while the app is in use),
the words (the model's when it writes, else a sentence from the thread), the session the app opens on, and
what the user can say there. A scripted model and real memory files; the desktop side is in
tests/desktop/."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timedelta

import pytest

from companion import checkins, config
from companion.engine import Engine
from companion.memory import open_memory
from companion.paths import Paths
from tests.rows import add_memory
from tests.scripted import ScriptedModel

INTERVIEW = 'Ana said: "I have a job interview next Tuesday at a bakery."'
TUESDAY = datetime.fromisoformat("2026-12-08T00:00:00+00:00")


def settings(**values: object) -> config.Settings:
    s = config.Settings()
    s.user.name = "Ana"
    s.checkins.enabled = True
    for key, value in values.items():
        config.set_value(s, key.replace("__", "."), str(value))
    return s


def with_thread(paths: Paths, text: str = INTERVIEW, when: datetime = TUESDAY) -> int:
    memory = open_memory(paths, config.Settings().memory)
    try:
        return add_memory(memory.store, "fact", text, event_time=when.isoformat(), thread="open")
    finally:
        memory.close()


def run_at(paths: Paths, moment: str, s: config.Settings | None = None, **kw: object) -> checkins.Outcome:
    memory = open_memory(paths, config.Settings().memory)
    try:
        return checkins.run(memory, s or settings(), datetime.fromisoformat(moment), in_use=False, **kw)  # type: ignore[arg-type]
    finally:
        memory.close()


def rows(paths: Paths, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(paths.database) as conn:
        return conn.execute(sql).fetchall()


def test_one_check_in_after_the_day_and_never_before_at_night_twice_a_day_or_when_off(paths: Paths) -> None:
    thread = with_thread(paths)
    assert run_at(paths, "2026-12-08T15:00:00+00:00").said == "none (nothing has come due)"  # the day itself
    assert run_at(paths, "2026-12-09T23:30:00+00:00").said == "none (quiet hours)"
    assert (
        run_at(paths, "2026-12-09T07:59:00+00:00").said == "none (quiet hours)"
    )  # the span runs past midnight
    off = settings()
    off.checkins.enabled = False
    assert run_at(paths, "2026-12-09T12:00:00+00:00", off).said == "none (check-ins are off)"
    made = run_at(paths, "2026-12-09T12:00:00+00:00")
    assert made.made is not None and made.text == (
        "Hi Ana! You told me you have a job interview at a bakery on Tuesday 8 December. How did it go?"
    )
    with_thread(paths, 'Ana said: "My sister arrives on Monday."', TUESDAY)
    assert run_at(paths, "2026-12-09T18:00:00+00:00").said == "none (one check-in today already)"
    # The session the check-in opened, its one message (the companion's), and the thread asked about once.
    assert rows(
        paths, f"select role, speaker, text from messages where session_id = {made.made.session_id}"
    ) == [("assistant", "Sam", made.text)]
    assert rows(paths, f"select thread from memories where id = {thread}") == [("asked",)]
    from tests.test_cli import run as command

    listed = command("memory", "threads").stdout
    assert f"{thread}\t2026-12-08\t{INTERVIEW}\t(asked in a check-in)" in listed, listed
    later = run_at(paths, "2026-12-10T12:00:00+00:00")  # the next day: the other thread, not this one again
    assert later.made is not None and "sister arrives" in later.text


def test_per_week_counts_seven_days_and_the_time_zone_decides_the_day(paths: Paths) -> None:
    for day in range(1, 5):
        with_thread(paths, f'Ana said: "Plan number {day} is on Friday."', TUESDAY + timedelta(days=day - 1))
    once = settings(checkins__per_week=2)
    assert run_at(paths, "2026-12-10T12:00:00+00:00", once).made is not None
    assert run_at(paths, "2026-12-11T12:00:00+00:00", once).made is not None
    assert run_at(paths, "2026-12-12T12:00:00+00:00", once).said == "none (2 check-ins this week already)"
    # 06:30 UTC is 22:30 in Los Angeles (the evening before): quiet there, though not in UTC.
    there = settings(checkins__per_week=7, checkins__timezone="America/Los_Angeles")
    assert run_at(paths, "2026-12-13T06:30:00+00:00", there).said == "none (quiet hours)"


def test_a_setting_that_stopped_working_is_one_sentence_and_the_rest_goes_on(paths: Paths) -> None:
    with_thread(paths)
    bad = config.from_dict({"checkins": {"enabled": True, "timezone": "Mars/Olympus_Mons"}})
    said = run_at(paths, "2026-12-09T12:00:00+00:00", bad).said
    assert said.startswith("skipped: There is no time zone called 'Mars/Olympus_Mons'")
    bad = config.from_dict({"checkins": {"enabled": True, "quiet_hours": "late"}})
    assert "HH:MM-HH:MM" in run_at(paths, "2026-12-09T12:00:00+00:00", bad).said
    for key, value in (("checkins.timezone", "Nowhere/City"), ("checkins.quiet_hours", "25:00-99")):
        with pytest.raises(config.ConfigError):
            config.set_value(config.Settings(), key, value)


def test_the_app_in_use_gets_no_check_in_and_two_deciders_make_one(paths: Paths) -> None:
    with_thread(paths)
    memory = open_memory(paths, config.Settings().memory)
    now = datetime.fromisoformat("2026-12-09T12:00:00+00:00")
    checkins.mark_presence(memory, now - timedelta(minutes=5), typed=True)
    assert checkins.app_in_use(memory, now)
    assert checkins.run(memory, settings(), now).said == "none (the app is in use)"
    assert not checkins.app_in_use(memory, now + timedelta(minutes=20))  # open but not used for a while
    # Seen from another process (`maintain` from the timer), an open app makes its own check-ins.
    from companion.memory.tables import meta

    other = {
        "pid": -1,
        "seen": (now - timedelta(minutes=1)).isoformat(),
        "input": (now - timedelta(hours=2)).isoformat(),
    }
    meta.put(memory.store, checkins.PRESENCE, json.dumps(other))
    assert checkins.app_in_use(memory, now) and not checkins.app_in_use(memory, now + timedelta(minutes=5))
    meta.put(memory.store, checkins.PRESENCE, "{}")
    memory.close()
    outcomes: list[checkins.Outcome] = []

    def decide() -> None:
        outcomes.append(run_at(paths, "2026-12-09T12:30:00+00:00"))

    both = [threading.Thread(target=decide) for _ in range(2)]
    for t in both:
        t.start()
    for t in both:
        t.join()
    assert sum(o.made is not None for o in outcomes) == 1, [o.said for o in outcomes]
    assert rows(paths, "select count(*) from checkins") == [(1,)]


def test_a_chat_model_writes_the_check_in_in_its_own_words(paths: Paths) -> None:
    with_thread(paths)
    model = ScriptedModel(replies=["<think>She was nervous.</think>How did the bakery interview go, Ana?"])
    made = run_at(paths, "2026-12-09T12:00:00+00:00", model=lambda: model)
    assert made.text == "How did the bakery interview go, Ana?"  # the answer, never the reasoning
    asked = model.prompts[0][-1].content
    assert "job interview next Tuesday" in asked and "2026-12-08" in asked
    base = ScriptedModel(replies=["Ana: hello"], prompt_style="transcript")  # a base model: the sentence
    with_thread(paths, 'Ana said: "My exam is tomorrow."', TUESDAY)
    later = run_at(paths, "2026-12-10T12:00:00+00:00", model=lambda: base)
    assert (
        later.text.startswith("Hi Ana! You told me your exam is on Tuesday 8 December") and not base.prompts
    )


def make_engine(paths: Paths, model: ScriptedModel) -> Engine:
    values = config.load(paths)
    values.user.name = "Ana"
    return Engine(values, paths, model=model)


def test_the_conversation_opens_on_the_check_in_and_understands_dont_ask_and_stop(paths: Paths) -> None:
    thread = with_thread(paths)
    made = run_at(paths, "2026-12-09T12:00:00+00:00")
    assert made.made is not None
    model = ScriptedModel(replies=["I'm glad!"])
    engine = make_engine(paths, model)
    assert engine.checkin is not None and engine.session_id == made.made.session_id
    assert engine.greet() is None  # the check-in is the companion's first message
    reply, turn = engine.ask("Please don't ask me about that again.")
    assert reply == "All right, I won't ask about that again." and not model.prompts
    assert not turn.incomplete  # a whole answer, not one stopped short
    assert rows(paths, f"select incomplete from messages where id = {turn.reply_id}") == [(0,)]
    assert rows(paths, f"select thread from memories where id = {thread}") == [("closed",)]
    reply, _ = engine.ask("It went fine, thanks.")  # conversation goes to the model as ever
    assert reply == "I'm glad!"
    reply, _ = engine.ask("Stop checking in on me, please.")
    assert reply.startswith("All right, no more check-ins.")
    assert config.load(paths).checkins.enabled is False
    engine.close()
    again = make_engine(paths, ScriptedModel())  # answered: a new conversation is a new session
    assert again.checkin is None and again.session_id != made.made.session_id
    again.close()
    assert checkins.understood("How was your day?") is None
    assert checkins.understood("I don't know how to stop.") is None


def test_ask_does_not_answer_a_waiting_check_in(paths: Paths) -> None:
    with_thread(paths)
    made = run_at(paths, "2026-12-09T12:00:00+00:00")
    assert made.made is not None
    values = config.load(paths)
    engine = Engine(values, paths, model=ScriptedModel(), checkins=False)
    assert engine.checkin is None and engine.session_id != made.made.session_id
    engine.close()


def test_the_notification_says_only_that_there_is_one_unless_preview_is_on() -> None:
    assert checkins.notification("Sam", "How did it go?", preview=False) == ("Sam would like to check in", "")
    assert checkins.notification("Sam", "How did it go?", preview=True)[1] == "How did it go?"


def test_a_forgotten_check_in_is_not_opened_again(paths: Paths) -> None:
    with_thread(paths)
    made = run_at(paths, "2026-12-09T12:00:00+00:00")
    assert made.made is not None and made.made.message_id is not None
    memory = open_memory(paths, config.Settings().memory)
    memory.ready()
    memory.forget(messages=[made.made.message_id])
    memory.close()
    engine = make_engine(paths, ScriptedModel())
    assert engine.checkin is None
    engine.close()


def test_a_time_word_typed_the_short_way_is_replaced_by_the_day() -> None:
    """ "tmrw", "over the weekend", "in a couple weeks": the check-in names the day, not the word said then."""
    day = datetime(2026, 12, 8)
    for said in (
        "I have a job interview at a bakery tmrw",
        "I have a job interview at a bakery over the weekend",
    ):
        assert checkins.sentence(f'Ana said: "{said}"', "Ana", day) == (
            "Hi Ana! You told me you have a job interview at a bakery on Tuesday 8 December. How did it go?"
        )
    assert checkins.sentence('Ana said: "My exam is in a couple weeks"', "Ana", day).startswith(
        "Hi Ana! You told me your exam is on Tuesday 8 December."
    )
