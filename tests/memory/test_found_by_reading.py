"""The defects that reading the memory layer found (issue 19), each through the parts a user's action goes
through: the engine with a scripted model, real SQLite files, the real embedder and FAISS."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from companion import config, timeutil
from companion.engine import Engine
from companion.memory.db.store import Store
from companion.memory.operations import LongTermMemory
from companion.memory.portability.exports import export_json
from companion.memory.portability.imports import import_json
from companion.memory.recall.timewords import find_window
from companion.memory.tables import memories as memory_table
from companion.memory.tables import messages as message_table
from companion.memory.tables import sessions as session_table
from companion.memory.upkeep.consolidate import Consolidator, Report
from companion.paths import Paths
from tests.reliability.test_faults import fill_the_disk
from tests.rows import add_memory
from tests.scripted import ScriptedModel


def engine_for(paths: Paths, model: ScriptedModel, **settings: Any) -> Engine:
    values = config.load(paths)
    values.user.name = "Ana"
    for key, value in settings.items():
        config.set_value(values, key.replace("__", "."), str(value))
    return Engine(values, paths, model=model)


def test_a_reply_the_file_refuses_does_not_lock_the_chat(paths: Paths) -> None:
    """`save_reply` raising StorageError left the engine busy: every later message was refused ("A reply is
    still being written") and quitting could hang. The chat goes on unsaved, as the fallback says."""
    long_reply = " ".join(["Once" + "o" * 400] * 30)  # 12 kB in 30 words: it needs pages the file cannot get
    engine = engine_for(paths, ScriptedModel(replies=[long_reply, "Still here."]))
    turn = engine.send("Tell me the story.")
    fill_the_disk(engine.store)  # the user's message is in; the reply will not fit
    assert "".join(turn).strip() == long_reply.strip()
    assert not engine.busy and engine.degraded and "full" in engine.degraded
    assert turn.reply_id is not None and turn.reply_id < 0  # kept in the conversation, in memory
    second = engine.send("Are you there?")
    assert "".join(second) == "Still here."
    assert [m.text for m in engine.messages()][-2:] == ["Are you there?", "Still here."]
    done = threading.Event()
    threading.Thread(target=lambda: (engine.close(), done.set()), daemon=True).start()
    assert done.wait(30), "closing the engine hung"


def test_consolidation_does_not_learn_what_the_user_threw_away(paths: Paths) -> None:
    """A regenerated reply and, in a branched session, the turns after the edited message (the text edited
    away included) were consolidated as if they had been said."""
    model = ScriptedModel(replies=["I adore penguins, they are my favourite.", "Lovely.", "Nice."])
    engine = engine_for(paths, model)
    engine.ask("My favourite animal is the capybara.")
    engine.ask("What is yours?")  # "I adore penguins" is the reply the user throws away
    "".join(engine.regenerate())
    parent = engine.session_id
    first = next(m for m in engine.messages() if m.role == "user")
    "".join(engine.branch(first.id, "My favourite animal is the otter."))
    branch = engine.session_id
    engine.close()
    memory = LongTermMemory(Store(paths.database))
    said = {s: [t.text for t in message_table.said(memory.store, s, "Sam")] for s in (parent, branch)}
    assert said[parent] == []  # everything of the parent's came after the edited message
    assert said[branch] == ["My favourite animal is the otter.", "Nice."]
    report = Report()
    consolidator = Consolidator(memory, model, user="Ana", char="Sam", mode="extractive")
    for session_id in (parent, branch):
        consolidator.consolidate_session(session_id, datetime.now(UTC) + timedelta(days=1), report)
    texts = " ".join(m.text for m in memory_table.filtered(memory.store, None, False, None))
    assert "otter" in texts and "capybara" not in texts and "penguin" not in texts
    memory.close()


def test_a_regenerated_reply_is_read_with_the_question_not_the_rejected_reply(paths: Paths) -> None:
    engine = engine_for(paths, ScriptedModel(replies=["Rejected answer about boats.", "Kept answer."]))
    engine.memory.ready()
    engine.ask("Where should I travel?")
    "".join(engine.regenerate())
    reply = engine.messages()[-1]
    context = engine.store.conn.execute("select context from messages where id = ?", (reply.id,)).fetchone()[
        0
    ]
    assert context == "Where should I travel?\nKept answer."
    from companion.memory.tables import vectors as vector_table

    before = vector_table.before_in_session(
        engine.store, engine.memory.embed_model, reply.session_id, reply.id
    )
    assert [turn.text for turn in before][-1:] == ["Where should I travel?"]
    engine.close()


def test_recall_strengthens_only_what_the_prompt_held(paths: Paths) -> None:
    engine = engine_for(paths, ScriptedModel(replies=["Sure."]), memory__block_tokens=40)
    ids = [
        add_memory(engine.store, "fact", f"Ana's cat Bolacha likes {toy} a lot.")
        for toy in ("yarn", "boxes", "mice", "string")
    ]
    engine.memory.ready()
    text, turn = engine.ask("What does my cat Bolacha like to play with?")
    held = {r.hit.id for r in turn.recall if r.in_prompt and r.hit.kind == "fact"}
    left = {r.hit.id for r in turn.recall if r.status == "left out" and r.hit.kind == "fact"}
    assert held and left, [(r.hit.id, r.status) for r in turn.recall]
    for memory_id in ids:
        memory = memory_table.get(engine.store, memory_id)
        assert memory is not None
        assert memory.recall_count == (1 if memory_id in held else 0)
    engine.close()


class Waiting(ScriptedModel):
    """A model whose facts answer waits until both consolidations have asked (so both decide before either
    writes), the way the app's scheduler and `maintain` from cron can run at the same moment."""

    def __init__(self, barrier: threading.Barrier, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.barrier = barrier

    def complete_json(self, messages: Any, schema: dict[str, Any], options: Any) -> Any:
        if schema["required"][0] == "facts":
            self.barrier.wait(timeout=30)
        return super().complete_json(messages, schema, options)


def test_two_consolidations_at_once_write_a_session_once(memory: LongTermMemory, paths: Paths) -> None:
    answers = {
        "summary": [{"summary": "Ana said she adopted a cat called Miso."}],
        "facts": [
            {
                "facts": [
                    {
                        "text": "Ana adopted a cat called Miso.",
                        "turns": [1],
                        "importance": 3,
                        "date": "",
                        "future": False,
                    }
                ]
            }
        ],
    }
    session = session_table.new(memory.store, started_at="2023-05-01T10:00:00")
    message_table.add(memory.store, session, "user", "I adopted a cat called Miso.", speaker="Ana")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        other = LongTermMemory(Store(paths.database))
        try:
            Consolidator(
                other, Waiting(barrier, answers=dict(answers)), user="Ana", mode="model"
            ).consolidate_session(session, datetime(2023, 5, 2, tzinfo=UTC), Report())
        except BaseException as error:
            errors.append(error)
        finally:
            other.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    rows = memory.store.conn.execute(
        "select kind, count(*) from memories where session_id = ? group by kind", (session,)
    ).fetchall()
    assert dict(rows) == {"fact": 1, "summary": 1}


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def test_day_words_are_the_users_days_not_utc_days(new_york: None) -> None:
    """At 9 pm in New York it is already tomorrow in UTC: "this morning", "yesterday" and "today" were UTC
    days."""
    now = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # 25 November, 9 pm in New York
    window = find_window("what did I eat this morning?", now)
    assert window is not None
    assert window.start == datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # local midnight of the 25th
    assert window.contains(datetime(2026, 11, 25, 14, 0, tzinfo=UTC))  # 9 am in New York
    yesterday = find_window("yesterday", now)
    assert yesterday is not None and yesterday.contains(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))
    said = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # 9 am the same local day
    assert timeutil.relative(said, now).startswith("today, 25 November 2026")
    assert timeutil.day(timeutil.iso(now)) == "2026-11-25"
    assert timeutil.short(timeutil.iso(now)) == "2026-11-25 21:00"


def test_a_complete_export_restores_the_personas_elsewhere(paths: Paths, tmp_path: Path) -> None:
    """The json export left the personas table out: restored elsewhere, an imported Character Card was gone
    while its lore came back, and a configured `persona.name` then failed."""
    from companion.persona import library
    from companion.persona.card import Card

    store = Store(paths.database)
    memory = LongTermMemory(store)
    library.ensure_default(store)
    library.add(store, Card(name="Nova", description="{{char}} is a retired astronaut.", first_mes="Hello."))
    data = export_json(memory)
    memory.close()
    elsewhere = tmp_path / "elsewhere" / "memory.db"
    other = LongTermMemory(Store(elsewhere))
    import_json(other, data)
    assert "Nova" in library.names(other.store)
    assert "retired astronaut" in library.get(other.store, "Nova").description
    import_json(other, data)  # again: nothing twice
    assert library.names(other.store).count("Nova") == 1
    other.close()


def test_switching_persona_mid_conversation_files_it_under_the_new_one(paths: Paths) -> None:
    from companion.persona import library
    from companion.persona.card import Card

    engine = engine_for(paths, ScriptedModel(replies=["Hi, I'm Sam.", "Hi, I'm Nova."]))
    library.add(engine.store, Card(name="Nova", description="{{char}} is a retired astronaut."))
    engine.ask("Hello!")
    engine.settings.persona.name = "Nova"
    engine.settings_changed(["persona.name"])
    engine.ask("Who are you now?")
    assert session_table.persona(engine.store, engine.session_id) == "Nova"
    assert engine.messages()[-1].speaker == "Nova"
    engine.close()


def test_the_tz_of_the_tests_is_utc() -> None:
    """Every other test reads days in UTC (conftest pins TZ), so their expected dates hold on any machine."""
    assert os.environ.get("TZ") == "UTC"
    assert timeutil.local(datetime(2026, 1, 1, tzinfo=UTC)).utcoffset() == timedelta(0)
