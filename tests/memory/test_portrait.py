"""What the user says about herself, kept without a model: facts (health, preferences, moves, family, plans),
dates as a person means them, role-play lines left out, and a profile with its provenance — through upkeep
with a base model (scripted here; the demo model in the slow test and in the CLI test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from companion.memory.operations import LongTermMemory
from companion.memory.recall.timewords import find_window
from companion.memory.tables import memories as memory_table
from companion.memory.tables import profile
from companion.memory.upkeep import scheduler
from companion.memory.upkeep.scheduler import UpkeepOptions
from tests.memory.test_consolidate import active_facts, session
from tests.scripted import ScriptedModel

DECEMBER = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def upkeep(memory: LongTermMemory, now: datetime, user: str = "Marta") -> str:
    model = ScriptedModel(prompt_style="transcript")  # a base model: nothing is asked of it
    options = UpkeepOptions(model=lambda: model, user=user, idle_minutes=1)
    outcome = scheduler.run_jobs(memory, now, only="consolidate", options=options)["consolidate"]
    assert model.questions == []
    return outcome


def test_what_she_says_about_herself_becomes_facts(memory: LongTermMemory) -> None:
    session(
        memory,
        "2026-12-01",
        "One important thing: I'm allergic to peanuts.",
        "I prefer green tea.",
        "I moved to Porto last month.",
        "Honestly, I have asthma.",
        "btw my daughter Lia starts school in January.",
        "The tram was late again.",
    )
    upkeep(memory, DECEMBER)
    said = [text for _, text in active_facts(memory)]
    for words in ["allergic to peanuts", "green tea", "moved to Porto", "I have asthma", "my daughter Lia"]:
        assert any(words in text for text in said), words
    assert not any("tram" in text for text in said)


def test_a_plan_is_dated_the_way_she_means_it(memory: LongTermMemory) -> None:
    """Said on Tuesday 1 December 2026: June 14 is next year's, "Friday the 4th of December" is that Friday."""
    session(
        memory,
        "2026-12-01",
        "I'm getting married on June 14!",
        "My dentist appointment is on Friday the 4th of December.",
        "I got my first tattoo on May 5.",
    )
    upkeep(memory, DECEMBER)
    threads = {t.text: (t.event_time or "")[:10] for t in memory_table.threads(memory.store, "open")}
    assert sorted(threads.values()) == ["2026-12-04", "2027-06-14"], threads
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    window = find_window("i got my first tattoo on may 5.", now, ahead=True)
    assert (
        window is not None and window.start.date().isoformat() == "2026-05-05"
    )  # a past event: the last one
    asked = find_window("what is on the 4th of december?", now)
    assert asked is not None and asked.start.date().isoformat() == "2026-12-04"


def test_lines_spoken_in_a_role_play_scene_are_not_facts_about_her(memory: LongTermMemory) -> None:
    session(
        memory,
        "2026-12-01",
        "*draws her sword* I feel weak, but I will fight.",
        "*kneels by the fire.* I am the last queen of the north.",
        "I feel weak.",  # no narration of its own, but said in the scene
        "I was born in the mountains, far from here.",
        "(OOC: I'm vegetarian, by the way)",
    )
    upkeep(memory, DECEMBER)
    said = [text for _, text in active_facts(memory)]
    assert 'Marta said: "I\'m vegetarian, by the way"' in said
    assert not any(word in text for text in said for word in ("weak", "queen", "mountains")), said


def test_a_profile_is_written_without_a_model_with_each_lines_source(memory: LongTermMemory) -> None:
    session(
        memory,
        "2026-11-20",
        "Hi! I'm a nurse at the children's hospital.",
        "I adopted a cat called Robin last week.",
    )
    session(memory, "2026-11-27", "One important thing: I'm allergic to peanuts.", "I love hiking in Gerês.")
    outcome = upkeep(memory, DECEMBER)
    assert "profile version" in outcome
    current = profile.current(memory.store)
    lines = current.lines
    assert "traits: is a nurse at the children's hospital" in lines
    assert "relationships: adopted a cat called Robin last week" in lines
    assert "concerns: is allergic to peanuts" in lines
    assert "preferences: loves hiking in Gerês" in lines
    for line in lines:  # each line says which fact it comes from, and that fact which message
        (fact,) = current.sources[line]
        assert memory_table.sources(memory.store, fact)
    # Vetoed, never written again; a note added by hand joins it; a forgotten fact takes its line away.
    profile.veto(memory.store, "preferences: loves hiking in Gerês")
    note = memory.add_note("I prefer green tea to coffee.")
    upkeep(memory, DECEMBER)
    lines = profile.current(memory.store).lines
    assert (
        "preferences: loves hiking in Gerês" not in lines
        and "preferences: prefers green tea to coffee" in lines
    )
    assert profile.current(memory.store).sources["preferences: prefers green tea to coffee"] == [note]
    nurse = profile.current(memory.store).sources["traits: is a nurse at the children's hospital"][0]
    memory.forget(memories=[nurse])
    upkeep(memory, DECEMBER)
    assert not any("nurse" in line for line in profile.current(memory.store).lines)
    assert upkeep(memory, DECEMBER).count("profile version") == 0  # nothing changed: no new version


@pytest.mark.slow
def test_two_sessions_with_the_demo_model_give_a_sourced_profile(tmp_path: Path, home: Path) -> None:
    """Through the public commands, with the built-in demo model (a base model: `auto` is extractive)."""
    log = tmp_path / "two.jsonl"
    lines = [
        ("a", "2026-11-20T10:00:00", "user", "I'm a nurse, mostly night shifts."),
        ("a", "2026-11-20T10:00:30", "assistant", "That sounds demanding! Do you like it?"),
        ("a", "2026-11-20T10:01:00", "user", "I adopted a cat called Robin last week."),
        ("b", "2026-11-27T18:00:00", "user", "One important thing: I'm allergic to peanuts."),
        ("b", "2026-11-27T18:00:40", "assistant", "Noted, I'll remember that."),
        ("b", "2026-11-27T18:01:00", "user", "I prefer green tea."),
    ]
    log.write_text(
        "".join(
            json.dumps(
                {"session": s, "time": t, "role": r, "speaker": "Marta" if r == "user" else "Sam", "text": x}
            )
            + "\n"
            for s, t, r, x in lines
        )
    )

    def companion(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "companion", *args],
            capture_output=True,
            text=True,
            timeout=600,
            env=os.environ.copy(),
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    companion("config", "set", "user.name", "Marta")
    companion("memory", "import", str(log), "--format", "jsonl")
    companion("maintain", "--only", "consolidate", "--now", "2026-12-01T09:00:00")
    shown = companion("profile")
    sourced = [line for line in shown.splitlines() if "(from memory" in line]
    assert len(sourced) >= 3, shown
    for words in ["is a nurse", "adopted a cat called Robin", "allergic to peanuts", "prefers green tea"]:
        assert words in shown, shown
