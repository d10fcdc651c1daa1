"""Consolidation decisions, with a scripted model whose answers each test writes (real SQLite, real MiniLM,
real FAISS): a new fact, the same fact again, more detail, a contradiction, nothing new; threads; the
profile and its vetoes; digests. One test with the real demo model proves the wiring (marked slow)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from companion.errors import CompanionError, StorageError
from companion.llm.remote import RemoteModel
from companion.memory.db.store import Store
from companion.memory.operations import LongTermMemory
from companion.memory.records import VARIANT_MEMORY, vector_key
from companion.memory.tables import audit as audit_table
from companion.memory.tables import memories as memory_table
from companion.memory.tables import messages as message_table
from companion.memory.tables import meta as meta_table
from companion.memory.tables import profile
from companion.memory.tables import sessions as session_table
from companion.memory.tables import vectors as vector_table
from companion.memory.upkeep import scheduler
from companion.memory.upkeep.consolidate import SAME, SIMILAR, Consolidator, Report
from companion.memory.upkeep.scheduler import UpkeepOptions
from companion.paths import Paths
from tests.conftest import free_port
from tests.rows import add_memory
from tests.scripted import ScriptedModel

NOW = datetime(2023, 7, 1, 12, 0, tzinfo=UTC)
IDLE = timedelta(minutes=30)


def session_messages(memory: LongTermMemory, session_id: int) -> list[int]:
    return [m.id for m in message_table.conversation(memory.store, session_id)]


def facts(*items: dict[str, Any]) -> dict[str, Any]:
    """A facts answer: each item gets the fields the schema requires."""
    return {"facts": [{"turns": [1], "importance": 3, "date": "", "future": False} | item for item in items]}


def summary(text: str | None = None) -> Any:
    """A summary answer: the given text, or (by default) one made of the session's own first turns, which its
    sources say (a summary that is not grounded in them is dropped)."""
    if text is not None:
        return {"summary": text}

    def from_transcript(prompt: str) -> dict[str, Any]:
        turns = re.findall(r"^\[\d+\] [^:]+: (.+)$", prompt, re.MULTILINE)
        return {"summary": " ".join(turns[:2])}

    return from_transcript


def consolidate(memory: LongTermMemory, model: ScriptedModel, session_id: int) -> Report:
    report = Report()
    Consolidator(memory, model, user="Ana", char="Sam").consolidate_session(session_id, NOW, report)
    return report


def active_facts(memory: LongTermMemory) -> list[tuple[int, str]]:
    return memory.store.conn.execute(
        "select id, text from memories where kind = 'fact' and valid_to is null order by id"
    ).fetchall()


def cosine(memory: LongTermMemory, a: str, b: str) -> float:
    va, vb = memory.embedder.encode([a, b])
    return float(va @ vb)


def test_a_session_becomes_a_summary_and_facts_with_their_turns(memory: LongTermMemory) -> None:
    model = ScriptedModel(
        answers={
            "summary": [summary()],
            "facts": [
                facts({"text": "Ana adopted a grey cat called Bolacha.", "turns": [1], "importance": 4})
            ],
        }
    )
    consolidator = Consolidator(memory, model, user="Ana", char="Sam")
    assert consolidator.pending_sessions(NOW, IDLE) == [1, 2, 3]
    report = Report()
    consolidator.consolidate_session(1, NOW, report)
    assert (report.sessions, report.summaries, report.facts_added) == (1, 1, 1)
    owned = session_messages(memory, 1)
    summary_id = memory.store.scalar("select id from memories where kind = 'summary' and session_id = 1")
    assert [m.id for m in memory_table.sources(memory.store, summary_id)] == owned
    ((fact_id, text),) = active_facts(memory)
    assert text == "Ana adopted a grey cat called Bolacha."
    assert [m.id for m in memory_table.sources(memory.store, fact_id)] == [owned[0]]  # the turn it came from
    assert memory_table.get(memory.store, fact_id).importance == pytest.approx(0.8)
    # The transcript the model read numbers the turns and names the speakers.
    transcript = model.asked("facts")[0]
    assert "[1] Ana: Hi! I just adopted a grey cat called Bolacha." in transcript
    assert "[2] Sam: Bolacha is a lovely name!" in transcript
    # Done once: the session is not pending again, and the fact is recallable with its source.
    assert consolidator.pending_sessions(NOW, IDLE) == [2, 3]
    hits = memory.search("what is the name of Ana's cat", kinds={"fact"}, limit=3)
    assert hits[0].id == fact_id and hits[0].source_ids == ["D1:1"]


def test_a_session_that_goes_on_is_summarized_anew(memory: LongTermMemory) -> None:
    first = "Ana adopted a grey cat called Bolacha who hides under the sofa."
    both = "Ana adopted Bolacha, a grey cat who hides under the sofa and now sleeps on her bed."
    model = ScriptedModel(answers={"summary": [summary(first), summary(both)], "facts": [facts()]})
    consolidate(memory, model, 1)
    message_table.add(
        memory.store, 1, "user", "Bolacha finally sleeps on my bed now.", created_at="2023-05-01T11:00:00"
    )
    consolidate(memory, model, 1)
    rows = memory.store.conn.execute(
        "select id, text, valid_to from memories where kind = 'summary' and session_id = 1 order by id"
    ).fetchall()
    assert [r[1] for r in rows] == [first, both]
    assert rows[0][2] is not None and rows[1][2] is None
    # The superseded summary left recall with its vector, so the saved index still matches the file.
    assert memory.index.reconstruct(vector_key(rows[0][0], VARIANT_MEMORY)) is None
    assert memory.index.size == vector_table.fingerprint(memory.store, memory.embed_model)[0]


def session(memory: LongTermMemory, day: str, *said: str) -> int:
    """A conversation of `said` (the user's turns), ended on `day`."""
    session_id = session_table.new(memory.store, started_at=f"{day}T09:00:00")
    for number, text in enumerate(said):
        message_table.add(
            memory.store, session_id, "user", text, speaker="Ana", created_at=f"{day}T09:00:{number:02d}"
        )
    session_table.close(memory.store, session_id)
    return session_id


def test_the_same_fact_again_only_gains_a_source(memory: LongTermMemory) -> None:
    fact = "Ana adopted a grey cat called Bolacha."
    model = ScriptedModel(answers={"summary": [summary()], "facts": [facts({"text": fact, "turns": [1]})]})
    consolidate(memory, model, 1)
    again = session(memory, "2023-06-02", "I adopted a grey cat called Bolacha, you know.")
    report = consolidate(memory, model, again)  # it is said again
    assert (report.facts_added, report.facts_unchanged) == (0, 1)
    assert not model.asked("action")  # the same fact needs no decision
    ((fact_id, _),) = active_facts(memory)
    sources = [m.id for m in memory_table.sources(memory.store, fact_id)]
    assert sources == [session_messages(memory, 1)[0], session_messages(memory, again)[0]]


def test_more_detail_updates_the_fact_and_keeps_the_old_text_in_its_history(memory: LongTermMemory) -> None:
    old, more = (
        "Ana's sister Marta got engaged to Tiago.",
        "Ana's sister Marta got engaged to Tiago and they marry next spring.",
    )
    merged = "Ana's sister Marta got engaged to Tiago; they marry next spring in Porto, by the river."
    model = ScriptedModel(
        answers={
            "summary": [summary()],
            "facts": [facts({"text": old}), facts({"text": more})],
            "action": [{"action": "UPDATE", "fact": 1, "text": merged}],
        }
    )
    consolidate(memory, model, 2)
    later = session(memory, "2023-06-02", "Marta got engaged to Tiago and they marry next spring, remember?")
    report = consolidate(memory, model, later)
    assert report.facts_updated == 1 and report.facts_added == 0
    assert f"1. {old}" in model.asked("action")[0] and more in model.asked("action")[0]
    ((fact_id, text),) = active_facts(memory)
    assert text == merged
    history = audit_table.history(memory.store, "memory", fact_id)
    assert [h.action for h in history] == ["add", "update"] and history[1].old_text == old
    assert session_messages(memory, later)[0] in [m.id for m in memory_table.sources(memory.store, fact_id)]


def test_a_contradiction_supersedes_and_the_old_fact_stays_in_history(memory: LongTermMemory) -> None:
    old, new = "Ana lives in Lisbon.", "Ana lives in Porto."
    assert SIMILAR <= cosine(memory, old, new) < SAME
    model = ScriptedModel(
        answers={
            "summary": [summary()],
            "facts": [facts({"text": old}), facts({"text": new})],
            "action": [{"action": "SUPERSEDE", "fact": 1, "text": new}],
        }
    )
    consolidate(memory, model, session(memory, "2023-06-01", "I live in Lisbon, near the river."))
    ((old_id, _),) = active_facts(memory)
    report = consolidate(memory, model, session(memory, "2023-06-20", "I moved: I live in Porto now."))
    assert report.facts_superseded == 1
    ((new_id, text),) = active_facts(memory)
    assert text == new and new_id != old_id
    before = memory_table.get(memory.store, old_id)
    assert before is not None and before.valid_to is not None and before.superseded_by == new_id
    assert [h.action for h in audit_table.history(memory.store, "memory", old_id)] == ["add", "supersede"]
    # Out of recall: its vector is gone, and a search finds the new fact only.
    assert memory.index.reconstruct(vector_key(old_id, VARIANT_MEMORY)) is None
    assert [h.id for h in memory.search("where does Ana live", kinds={"fact"})] == [new_id]


def test_a_fact_that_says_nothing_new_changes_nothing(memory: LongTermMemory) -> None:
    first, second = "Ana works as a nurse at the Santa Maria hospital.", "Ana is a nurse in Santa Maria."
    model = ScriptedModel(
        answers={
            "summary": [summary()],
            "facts": [facts({"text": first}), facts({"text": second})],
            "action": [{"action": "NOOP", "fact": 1, "text": ""}],
        }
    )
    consolidate(
        memory, model, session(memory, "2023-06-01", "I work as a nurse at the Santa Maria hospital.")
    )
    report = consolidate(
        memory, model, session(memory, "2023-06-02", "Being a nurse in Santa Maria is tiring.")
    )
    assert report.facts_unchanged == 1 and len(model.asked("action")) == 1
    assert [t for _, t in active_facts(memory)] == [first]


def test_a_future_event_is_an_open_thread_until_a_week_after_its_date(memory: LongTermMemory) -> None:
    interview = session(memory, "2023-05-01", "I have a job interview at the library on 30 May.")
    model = ScriptedModel(
        answers={
            "summary": [summary()],
            "facts": [
                facts(
                    {
                        "text": "Ana has a job interview at the library on 2023-05-30.",
                        "date": "2023-05-30",
                        "future": True,
                    }
                )
            ],
        }
    )
    report = Report()
    consolidator = Consolidator(memory, model, user="Ana")
    consolidator.consolidate_session(interview, NOW, report)  # said on 1 May: the interview is ahead
    (thread,) = memory_table.threads(memory.store, "open")
    assert thread.event_time is not None and thread.event_time.startswith("2023-05-30")
    assert memory_table.threads(memory.store, "open", due_before="2023-05-29T00:00:00") == []
    assert [t.id for t in memory_table.threads(memory.store, "open", due_before="2023-05-31")] == [thread.id]
    consolidator.close_past_threads(datetime(2023, 6, 5, tzinfo=UTC), report)
    assert memory_table.threads(memory.store, "open") != []  # six days after: the companion may still ask
    consolidator.close_past_threads(datetime(2023, 6, 7, tzinfo=UTC), report)
    assert memory_table.threads(memory.store, "open") == [] and [
        t.id for t in memory_table.threads(memory.store, "closed")
    ] == [thread.id]
    assert report.threads_closed == 1


def test_a_past_event_is_not_a_thread(memory: LongTermMemory) -> None:
    moved = session(memory, "2023-05-01", "I moved house on the second of April.")
    model = ScriptedModel(
        answers={
            "summary": [summary()],
            "facts": [
                facts({"text": "Ana moved house on 2023-04-02.", "date": "2023-04-02", "future": True})
            ],
        }
    )
    consolidate(memory, model, moved)
    assert memory_table.threads(memory.store, "open") == [] and len(active_facts(memory)) == 1


def test_profile_versions_and_a_vetoed_line_is_never_inferred_again(memory: LongTermMemory) -> None:
    store = memory.store
    answer = {
        "traits": ["curious"],
        "preferences": ["tea in the morning"],
        "relationships": ["sister Marta"],
        "concerns": [],
        "style": [],
    }
    model = ScriptedModel(answers={"traits": [answer]})
    add_memory(store, "fact", "Ana drinks tea every morning", importance=0.8)
    add_memory(store, "fact", "Ana is curious about everything", importance=0.7)
    add_memory(store, "fact", "Ana's sister Marta lives in Porto", importance=0.7)
    report = Report()
    consolidator = Consolidator(memory, model, user="Ana")
    consolidator.update_profile(NOW, report)
    first = profile.current(store)
    assert report.profile_version == first.version and "preferences: tea in the morning" in first.lines
    assert profile.save(store, first.sections, [], "no change", NOW) is None
    version = profile.veto(store, "preferences: tea in the morning", NOW)
    assert profile.history(store)[-1].diff == {"added": [], "removed": ["preferences: tea in the morning"]}
    assert profile.current(store).version == version and "tea" not in " ".join(profile.current(store).lines)
    with pytest.raises(CompanionError, match="not a line of the profile"):
        profile.veto(store, "likes jazz", NOW)
    # The model, told about new facts, offers the vetoed line again: it is dropped, and the prompt said so.
    add_memory(store, "fact", "Ana ordered a green tea at the cafe", importance=0.6)
    consolidator.update_profile(NOW + timedelta(days=1), Report())
    assert "tea in the morning" in model.asked("traits")[-1]  # listed as vetoed
    assert not any("tea in the morning" in line for line in profile.current(store).lines)
    assert "traits: curious" in profile.current(store).lines


def test_a_veto_and_its_profile_version_are_one_transaction(memory: LongTermMemory) -> None:
    store = memory.store
    profile.save(store, {"traits": ["curious"], "preferences": ["tea"]}, [], "test", NOW)
    with store.transaction() as conn:  # the new version cannot be written
        conn.execute(
            "create trigger no_versions before insert on profile_versions begin select raise(abort, 'no'); end"
        )
    with pytest.raises(StorageError):
        profile.veto(store, "preferences: tea", NOW)
    assert store.count("profile_vetoes") == 0  # nothing half-written: no veto without its version
    assert "preferences: tea" in profile.current(store).lines


def test_daily_and_weekly_digests_are_told_apart_by_their_period(memory: LongTermMemory) -> None:
    for session_id, day in ((1, "2023-05-01"), (2, "2023-05-02"), (3, "2023-06-20")):
        add_memory(
            memory.store,
            "summary",
            f"Ana stayed home to rest and read on {day}.",
            sources=session_messages(memory, session_id),
            event_time=f"{day}T10:00:00",
            session_id=session_id,
        )
    # A daily digest whose text happens to start like a weekly one is still a daily digest.
    model = ScriptedModel(answers={"digest": [{"digest": "Week of rest: Ana stayed home."}]})
    report = Report()
    consolidator = Consolidator(memory, model, user="Ana")
    consolidator.make_digests(NOW, report)
    consolidator.make_digests(NOW, report)  # nothing twice
    rows = memory.store.conn.execute(
        "select period, substr(event_time, 1, 10) from memories where kind = 'digest' order by id"
    ).fetchall()
    assert rows == [
        ("day", "2023-05-01"),
        ("day", "2023-05-02"),
        ("day", "2023-06-20"),
        ("week", "2023-05-01"),
        ("week", "2023-06-19"),
    ]
    assert report.digests == 5
    weekly = [text for key, text in model.questions if key == "digest" and "the week of" in text]
    assert len(weekly) == 2 and "Week of rest" in weekly[0]  # the week's digest read its days' digests


def test_consolidation_names_the_companion_by_the_sessions_persona(paths: Paths) -> None:
    """The transcript and the prompt call the companion by the persona the session was held with; the reply
    is stored under that name too."""
    from companion import config
    from companion.engine import Engine
    from companion.persona import library
    from companion.persona.card import Card

    settings = config.load(paths)
    settings.user.name = "Ana"
    settings.persona.name = "Luz"
    model = ScriptedModel(
        replies=["Olá Ana! I keep the lighthouse."], answers={"summary": [summary()], "facts": [facts()]}
    )
    store = Store(paths.database)
    library.ensure_default(store)
    library.add(store, Card(name="Luz", description="{{char}} is a calm lighthouse keeper."))
    store.close()
    engine = Engine(settings, paths, model=model)
    engine.ask("Hello, who are you? I love lighthouses and the cold sea.")
    assert engine.messages()[-1].speaker == "Luz"
    engine.new_session()
    outcome = scheduler.run_jobs(
        engine.memory, NOW + timedelta(days=3650), only="consolidate", options=engine.upkeep_options()
    )
    assert outcome["consolidate"].startswith("1 session: 1 summary")
    prompt = model.asked("summary")[0]
    assert "Luz: Olá Ana! I keep the lighthouse." in prompt and "Ana: Hello, who are you?" in prompt
    assert "Sam" not in prompt
    engine.close()


def test_a_failing_model_leaves_the_memory_as_it_was_and_the_job_resumes(memory: LongTermMemory) -> None:
    gone = RemoteModel(f"http://127.0.0.1:{free_port()}/v1", timeout=2)  # a real client, nobody listening
    before = memory.store.count("memories")
    outcome = scheduler.run_jobs(
        memory, NOW, only="consolidate", options=UpkeepOptions(model=lambda: gone, user="Ana")
    )
    assert outcome["consolidate"].startswith("failed (ModelUnavailable")
    assert memory.store.count("memories") == before
    assert not meta_table.get(memory.store, "consolidated.session.1")
    state = scheduler.load_state(memory, "consolidate")
    assert state.failures == 1 and state.retry_at is not None
    # Later, with a working model, it resumes and does each session once.
    model = ScriptedModel(answers={"summary": [summary()], "facts": [facts()]})
    options = UpkeepOptions(model=lambda: model, user="Ana")
    later = state.retry_at + timedelta(minutes=1)
    assert scheduler.run_jobs(memory, later, only="consolidate", options=options)["consolidate"].startswith(
        "3 sessions: 3 summaries"
    )
    again = scheduler.run_jobs(memory, later + timedelta(hours=1), only="consolidate", options=options)
    assert again["consolidate"].startswith("0 sessions")
    assert memory.store.scalar("select count(*) from memories where kind = 'summary'") == 3


@pytest.mark.slow
def test_the_demo_model_consolidates_a_session(memory: LongTermMemory, demo_model: Any) -> None:
    """The wiring with the real model: grammar-constrained answers parse, and what is written carries its
    provenance. (What the 270M base model writes is not judged.)"""
    report = Report()
    Consolidator(memory, demo_model, user="Ana", mode="model").consolidate_session(1, NOW, report)
    assert report.sessions == 1 and report.by_model == 1
    owned = set(session_messages(memory, 1))
    written = [
        r[0] for r in memory.store.conn.execute("select id from memories where kind in ('summary', 'fact')")
    ]
    # What the base model writes depends on what it ran before (the test order): a summary it wrote is kept
    # only when grounded, so either something was written or what it wrote was counted as dropped.
    assert written or report.dropped
    for memory_id in written:
        sources = {m.id for m in memory_table.sources(memory.store, memory_id)}
        assert sources and sources <= owned


def test_what_the_sources_do_not_say_is_dropped_and_counted(memory: LongTermMemory) -> None:
    model = ScriptedModel(
        answers={
            "summary": [summary("10/30/26, 7:54 AM")],  # only a date
            "facts": [
                facts(
                    {"text": "Ana adopted a grey cat called Bolacha.", "turns": [1]},
                    {
                        "text": "Ana's brother Pedro flies planes for a living.",
                        "turns": [1],
                    },  # nobody said it
                )
            ],
            "traits": [
                {
                    "traits": ["Ana"],  # only her name
                    "preferences": ["Other", "grey cats like Bolacha"],
                    "relationships": [],
                    "concerns": [],
                    "style": [],
                }
            ],
        }
    )
    report = Report()
    consolidator = Consolidator(memory, model, user="Ana", char="Sam")
    consolidator.consolidate_session(1, NOW, report)
    consolidator.update_profile(NOW, report)
    assert report.summaries == 0 and not memory.store.scalar(
        "select count(*) from memories where kind = 'summary'"
    )
    assert [t for _, t in active_facts(memory)] == ["Ana adopted a grey cat called Bolacha."]
    assert profile.current(memory.store).lines == ["preferences: grey cats like Bolacha"]
    assert report.dropped == 4 and "4 ungrounded dropped" in report.line()


def test_a_base_model_is_consolidated_without_being_asked(memory: LongTermMemory) -> None:
    """The demo model is a base model: summaries and facts come from the session itself, in seconds."""
    said = session(
        memory,
        "2023-05-08",  # a Monday
        "I'm allergic to peanuts, so I never eat satay.",
        "The weather was grey and windy all morning.",
        "My sister Marta is visiting me in Lisbon this week.",
        "I'm flying to Madeira next Friday for a conference.",
    )
    model = ScriptedModel(prompt_style="transcript")
    options = UpkeepOptions(model=lambda: model, user="Ana", idle_minutes=1)
    the_next_day = datetime(2023, 5, 9, tzinfo=UTC)
    outcome = scheduler.run_jobs(memory, the_next_day, only="consolidate", options=options)["consolidate"]
    assert "via extractive (no model)" in outcome and model.questions == []
    summary_text = session_table.summary(memory.store, said)
    assert (
        summary_text is not None and summary_text.count("Ana: ") >= 2
    )  # sentences as said, with who said them
    facts_said = {text: memory_id for memory_id, text in active_facts(memory)}
    assert 'Ana said: "I\'m allergic to peanuts, so I never eat satay."' in facts_said
    assert 'Ana said: "My sister Marta is visiting me in Lisbon this week."' in facts_said
    assert not any("weather" in text for text in facts_said)
    allergy = facts_said['Ana said: "I\'m allergic to peanuts, so I never eat satay."']
    assert [m.text for m in memory_table.sources(memory.store, allergy)] == [
        "I'm allergic to peanuts, so I never eat satay."
    ]
    (trip,) = memory_table.threads(memory.store, "open")
    assert "Madeira" in trip.text and (trip.event_time or "").startswith("2023-05-12")
    assert (
        "extractive" in scheduler.status(memory, the_next_day)[1].last_result
    )  # what `maintain --status` shows


def test_a_model_that_cannot_write_usable_json_falls_back_per_session(memory: LongTermMemory) -> None:
    broken = ScriptedModel(answers={})  # every structured question fails
    report = Report()
    Consolidator(memory, broken, user="Ana").consolidate_session(1, NOW, report)
    assert report.extractive == 1 and report.by_model == 0 and report.summaries == 1
    assert "extractive" in report.path
    with pytest.raises(CompanionError):
        Consolidator(memory, broken, user="Ana", mode="model").consolidate_session(2, NOW, Report())
