"""One chat turn end to end: real SQLite file, real demo model (one loaded model for the session, `demo_model`;
a test that needs a model of its own settings, or closes one, loads its own)."""

from __future__ import annotations

import sqlite3
from typing import Any

from companion.engine import Engine
from companion.memory.tables import messages as message_table
from companion.paths import Paths
from tests.rows import add_memory


def rows(paths: Paths) -> list[tuple[str, str, int]]:
    with sqlite3.connect(paths.database) as conn:
        return conn.execute("select role, text, incomplete from messages order by id").fetchall()


def test_user_message_is_committed_before_generation(demo_home: Paths, demo_model: Any) -> None:
    engine = Engine(paths=demo_home, model=demo_model)
    turn = engine.send("Hello there, I am Ana.", max_tokens=8, seed=1)
    # Read through a separate connection before the first token: the message is already on disk.
    assert rows(demo_home) == [("user", "Hello there, I am Ana.", 0)]
    reply = "".join(turn)
    assert rows(demo_home)[-1] == ("assistant", reply.strip(), 0)
    engine.close()


def test_interrupted_reply_is_stored_and_marked(demo_home: Paths, demo_model: Any) -> None:
    engine = Engine(paths=demo_home, model=demo_model)
    turn = engine.send("Tell me a long story about the sea.", max_tokens=200, seed=2, temperature=1.0)
    pieces = []
    for piece in turn:
        pieces.append(piece)
        if len(pieces) == 2:
            turn.close()  # what Esc or Ctrl+C does
            break
    last = rows(demo_home)[-1]
    assert last[0] == "assistant" and last[2] == 1
    assert last[1] == "".join(pieces).strip()
    engine.close()


def test_second_turn_reuses_the_cache_and_reports_stats(demo_home: Paths, demo_model: Any) -> None:
    engine = Engine(paths=demo_home, model=demo_model)
    for text in ("Hi! My name is Ana.", "What is my name?"):
        turn = engine.send(text, max_tokens=10, seed=3)
        "".join(turn)
    stats = turn.stats.as_json()
    assert stats["turn"] == 2
    assert stats["cached_tokens"] > 0
    assert stats["prompt_tokens"] > stats["cached_tokens"]
    assert set(stats) == {
        "turn",
        "ttft_ms",
        "prompt_tokens",
        "cached_tokens",
        "reused",
        "completion_tokens",
        "gen_tok_s",
        "retrieval_ms",
        "reasoning_ms",
    }
    assert stats["reused"] == round(stats["cached_tokens"] / stats["prompt_tokens"], 3)
    engine.close()


def test_long_conversation_folds_instead_of_crashing(demo_home: Paths) -> None:
    from companion import config

    settings = config.load(demo_home)
    settings.model.n_ctx = 512
    engine = Engine(settings, demo_home)
    for i in range(14):
        turn = engine.send(
            f"This is message number {i}. " + "I like long walks by the river. " * 4, max_tokens=24, seed=i
        )
        "".join(turn)
    assert engine.builder.fold_start > 0
    assert turn.assembled.messages[0].content.startswith("The following is a chat between")  # a base model
    assert turn.stats.prompt_tokens + 24 <= 512
    engine.close()


def test_chat_recalls_earlier_sessions_and_keeps_the_cache_warm(
    demo_home: Paths, demo_model: Any, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from companion.memory.portability.imports import import_file
    from tests.memory.conftest import write_log

    engine = Engine(paths=demo_home, model=demo_model)
    engine.memory.ready()
    import_file(engine.memory, write_log(tmp_path / "log.jsonl"), "jsonl")
    engine.new_session()
    first = engine.send("How is my cat Bolacha doing?", max_tokens=8, seed=1)
    "".join(first)
    assert any("Bolacha" in h.text for h in first.hits)
    prompt = first.assembled.messages[-1].text
    assert (
        prompt.startswith("[What you remember")
        and '"Ana: Hi! I just adopted a grey cat called Bolacha."' in prompt
    )
    assert prompt.endswith("How is my cat Bolacha doing?")
    second = engine.send("And the cat's favourite place?", max_tokens=8, seed=1)
    "".join(second)
    # Turn 2 reuses all of turn 1's prompt: its memory block stayed in the history.
    assert second.stats.cached_tokens >= first.stats.prompt_tokens
    # What turn 1 already recalled is not recalled again while it is in view (turn 2 still recalls).
    assert second.hits
    assert not {(h.kind, h.id) for h in first.hits} & {(h.kind, h.id) for h in second.hits}
    engine.close()


def test_profile_and_due_threads_sit_in_the_stable_prefix(demo_home: Paths, demo_model: Any) -> None:
    from datetime import UTC, datetime

    from companion.memory.tables.profile import save as save_profile

    engine = Engine(paths=demo_home, model=demo_model, now=lambda: datetime(2023, 6, 1, tzinfo=UTC))
    save_profile(
        engine.store,
        {"traits": ["curious"], "relationships": ["sister Marta"]},
        [],
        "test",
        datetime(2023, 5, 1, tzinfo=UTC),
    )
    interview = add_memory(
        engine.store, "fact", "Ana has a job interview at the library on 30 May 2023", event_time="2023-05-30"
    )
    later = add_memory(engine.store, "fact", "Ana flies to Madeira on 20 June 2023", event_time="2023-06-20")
    with engine.store.transaction() as conn:
        conn.execute("update memories set thread = 'open' where id in (?, ?)", (interview, later))
    first = engine.send("Hello again!", max_tokens=6, seed=1)
    "".join(first)
    system = first.assembled.messages[0].content
    assert 'traits: "curious"' in system and 'relationships: "sister Marta"' in system
    assert "job interview" in system and "you may ask how they went" in system
    assert "Madeira" not in system  # not due yet
    second = engine.send("Anything new?", max_tokens=6, seed=1)
    "".join(second)
    assert second.assembled.messages[0].content == system
    engine.close()


def test_regenerate_answers_again_and_keeps_the_old_reply_out_of_the_conversation(
    demo_home: Paths, demo_model: Any
) -> None:
    engine = Engine(paths=demo_home, model=demo_model)
    first, _ = engine.ask("Say a colour.", max_tokens=6, seed=1)
    turn = engine.regenerate(max_tokens=6, seed=2, temperature=1.0)
    second = "".join(turn)
    assert [m.role for m in engine.messages()] == ["user", "assistant"]
    assert engine.messages()[-1].text == turn.reply_text  # what streamed, without a speaker's name begun
    assert second.strip().startswith(turn.reply_text)
    # The user's message was not stored twice; the old reply is in the file, replaced and out of recall.
    with sqlite3.connect(demo_home.database) as conn:
        kept = conn.execute("select role, text, replaced, archived from messages order by id").fetchall()
    assert kept == [
        ("user", "Say a colour.", 0, 0),
        ("assistant", first.strip(), 1, 1),
        ("assistant", turn.reply_text, 0, 0),
    ]
    engine.close()


def test_regenerate_needs_a_message_to_answer(demo_home: Paths, demo_model: Any) -> None:
    import pytest

    from companion.errors import CompanionError

    engine = Engine(paths=demo_home, model=demo_model)
    engine.greet()
    with pytest.raises(CompanionError, match="send a message first"):
        engine.regenerate()
    engine.close()


def test_branching_keeps_the_old_branch_and_shares_the_start(demo_home: Paths, demo_model: Any) -> None:
    engine = Engine(paths=demo_home, model=demo_model)
    engine.ask("My name is Ana.", max_tokens=4, seed=1)
    engine.ask("I like tea.", max_tokens=4, seed=1)
    old = engine.session_id
    tea = [m.id for m in engine.messages() if m.text == "I like tea."][0]
    "".join(engine.branch(tea, "I like coffee.", max_tokens=4, seed=1))
    conversation = [m.text for m in engine.messages() if m.role == "user"]
    assert conversation == ["My name is Ana.", "I like coffee."]
    assert engine.session_id != old
    assert [m.text for m in message_table.conversation(engine.store, old) if m.role == "user"] == [
        "My name is Ana.",
        "I like tea.",
    ]
    # The prompt the model saw holds the shared start and the edit, not the old branch.
    prompt = " ".join(m.text for m in engine.last_turn.assembled.messages)  # type: ignore[union-attr]
    assert "My name is Ana." in prompt and "I like coffee." in prompt and "I like tea." not in prompt
    engine.close()


def test_off_the_record_writes_nothing(demo_home: Paths, demo_model: Any) -> None:
    engine = Engine(paths=demo_home, model=demo_model, off_record=True)
    engine.greet()
    engine.ask("The code is plumquartz.", max_tokens=4, seed=1)
    "".join(engine.regenerate(max_tokens=4, seed=1))
    assert [m.role for m in engine.messages()] == ["assistant", "user", "assistant"]
    engine.close()
    with sqlite3.connect(demo_home.database) as conn:
        assert conn.execute("select count(*) from messages").fetchone() == (0,)
        assert conn.execute("select count(*) from sessions").fetchone() == (0,)
    for file in demo_home.database.parent.iterdir():
        if file.is_file():
            assert b"plumquartz" not in file.read_bytes()


def test_an_unanswered_greeting_leaves_nothing_behind(demo_home: Paths, demo_model: Any) -> None:
    engine = Engine(paths=demo_home, model=demo_model)
    assert engine.greet()
    engine.close()
    with sqlite3.connect(demo_home.database) as conn:
        assert conn.execute("select count(*) from messages").fetchone() == (0,)
        assert conn.execute("select count(*) from sessions").fetchone() == (0,)


def test_closing_stops_a_background_job_on_the_model_at_once(demo_home: Paths) -> None:
    import threading
    import time

    from companion.errors import ModelError
    from companion.llm.base import ChatMessage, GenerationOptions

    engine = Engine(paths=demo_home)
    model = engine.model
    failures: list[BaseException] = []
    answers: list[object] = []

    def job() -> None:
        # At least 1500 numbers: the grammar keeps the model writing far longer than the test waits.
        schema = {"type": "array", "items": {"type": "integer"}, "minItems": 1500}
        try:
            answers.append(
                model.complete_json(  # type: ignore[attr-defined]
                    [ChatMessage("user", "Write a very long story as JSON.")],
                    schema,
                    GenerationOptions(max_tokens=8000, temperature=1.0, seed=1),
                )
            )
        except ModelError as error:
            failures.append(error)

    worker = threading.Thread(target=job)
    worker.start()
    time.sleep(1.0)
    started = time.perf_counter()
    engine.close()
    worker.join(10)
    assert not worker.is_alive() and time.perf_counter() - started < 5
    assert not answers and failures and "closed" in str(failures[0])


def test_a_reply_is_saved_as_it_is_written(paths: Paths) -> None:
    """Every second the reply so far is saved, marked incomplete: a crash keeps what was already said."""
    import time

    from companion import config
    from tests.scripted import ScriptedModel

    story = ScriptedModel(replies=[" ".join(f"word{n}" for n in range(200))], delay=0.02)
    engine = Engine(config.load(paths), paths, model=story)
    turn = engine.send("Tell me a very long story about the sea.", max_tokens=400)
    started = time.monotonic()
    seen = None
    for _ in turn:
        if time.monotonic() - started > 1.6 and seen is None:
            seen = rows(paths)[-1]  # read through another connection while the reply streams
            break
    assert seen is not None and seen[0] == "assistant" and seen[2] == 1 and seen[1]
    assert rows(paths)[-1][1].startswith(seen[1])  # the final save is the same row, completed
    assert [r[0] for r in rows(paths)] == ["user", "assistant"]
    engine.close()
