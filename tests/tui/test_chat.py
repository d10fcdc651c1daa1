"""The chat flow: send, stream, stop, regenerate, edit-and-branch, off the record, the recall panel and earlier
sessions — with a scripted model where what the model says does not matter, the real demo model where it does
(a reply streamed at the model's speed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from companion.memory.tables import messages as message_table
from companion.memory.tables import sessions as session_table
from companion.paths import Paths
from companion.tui.widgets.chat_message import ChatMessage
from companion.tui.widgets.composer import Composer
from companion.tui.widgets.recall_panel import HitItem, RecallPanel
from tests.rows import add_memory
from tests.tui.conftest import say, send, settle


def rows(home: Paths, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home.database) as conn:
        return conn.execute(sql).fetchall()


def mine(app: Any, role: str) -> list[ChatMessage]:
    return [w for w in app.chat.query(ChatMessage) if w.role == role and not w.has_class("earlier")]


async def start_reply(app: Any, pilot: Any, text: str) -> None:
    """Send `text` and return once the reply has begun to stream (and is still streaming)."""
    await send(app, pilot, text)
    for _ in range(600):
        if app.chat._reply is not None and app.chat._reply.text:
            return
        await pilot.pause(0.05)
    raise AssertionError("the reply did not start streaming within 30 s (or ended at once)")


LONG_STORY = " ".join(f"word{n}" for n in range(400))


async def test_send_streams_a_reply_and_shows_model_speed_and_context(
    make_app: Any, demo_home: Paths
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert not app.chat.query_one(Composer).disabled
        assert any(w.has_class("notice") for w in app.chat.query(ChatMessage)), "the demo model is explained"
        await say(app, pilot, "Hello there!\nHow are you?")
        replies = mine(app, "assistant")
        assert len(replies) == 2 and replies[-1].text.strip()  # Sam's greeting, then the streamed reply
        status = str(app.chat.query_one("#status").render())
        assert "demo" in status and "tok/s" in status and "ctx" in status and "history" in status
    assert [r for (r,) in rows(demo_home, "select role from messages order by id")] == [
        "assistant",
        "user",
        "assistant",
    ]
    assert rows(demo_home, "select text from messages where role = 'user'") == [
        ("Hello there!\nHow are you?",)
    ]


async def test_ctrl_j_inserts_a_newline_and_enter_sends(make_scripted_app: Any, paths: Paths) -> None:
    app = make_scripted_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        composer = app.chat.query_one(Composer)
        composer.focus()
        await pilot.press("a", "ctrl+j", "b")
        assert composer.text == "a\nb"
        await pilot.press("enter")
        await settle(app, pilot)
        assert composer.text == ""
    assert rows(paths, "select text from messages where role = 'user'") == [("a\nb",)]


async def test_escape_stops_the_reply_and_keeps_it_marked(make_scripted_app: Any, paths: Paths) -> None:
    app = make_scripted_app(replies=[LONG_STORY], delay=0.02, max_tokens=400)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await start_reply(app, pilot, "Tell me a long story about the sea.")
        await pilot.press("escape")
        await settle(app, pilot)
        reply = mine(app, "assistant")[-1]
        assert reply.has_class("incomplete") and "(stopped)" in reply.text + str(reply.source)
    (incomplete, tokens), *_ = rows(paths, "select incomplete, token_count from messages where id = 3")
    assert incomplete == 1 and 0 < tokens < 400


async def test_regenerate_replaces_the_reply_and_keeps_the_old_one(
    make_scripted_app: Any, paths: Paths
) -> None:
    app = make_scripted_app(
        replies=["First try.", "Second try."],
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await say(app, pilot, "Give me a word.")
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        assert len(mine(app, "assistant")) == 2  # greeting + the new reply, the old one is off screen
        assert [m.role for m in app.engine.messages()] == ["assistant", "user", "assistant"]
    kept = rows(paths, "select id, replaced, archived from messages where role = 'assistant' order by id")
    assert [(r[1], r[2]) for r in kept] == [(0, 0), (1, 1), (0, 0)]


async def test_editing_a_message_branches_and_keeps_the_old_branch(
    make_scripted_app: Any, paths: Paths
) -> None:
    app = make_scripted_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await say(app, pilot, "I like tea.")
        composer = app.chat.query_one(Composer)
        composer.focus()
        await pilot.press("up")  # the last message comes back for editing
        assert composer.editing is not None and composer.text == "I like tea."
        composer.text = "I like coffee."
        await pilot.press("enter")
        await settle(app, pilot)
        texts = [w.text for w in mine(app, "user")]
        assert texts == ["I like coffee."]
        old, new = app.engine.session_id - 1, app.engine.session_id
        assert [m.text for m in app.engine.messages() if m.role == "user"] == ["I like coffee."]
        assert len(app.engine.messages()) == 3  # the shared greeting, the edit, its reply
    assert rows(paths, f"select text from messages where session_id = {old} and role = 'user'") == [
        ("I like tea.",)
    ]
    assert rows(paths, f"select parent_id, branch_at from sessions where id = {new}") == [(old, 2)]


async def test_an_earlier_message_can_be_edited_from_the_log(make_scripted_app: Any, paths: Paths) -> None:
    app = make_scripted_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await say(app, pilot, "First.")
        await say(app, pilot, "Second.")
        first = mine(app, "user")[0]
        first.focus()
        await pilot.press("e")
        composer = app.chat.query_one(Composer)
        assert composer.editing == first.message_id
        composer.text = "First, edited."
        await pilot.press("enter")
        await settle(app, pilot)
        assert [w.text for w in mine(app, "user")] == ["First, edited."]
        assert [m.text for m in app.engine.messages() if m.role == "user"] == ["First, edited."]


async def test_off_the_record_leaves_no_trace_in_the_memory_file(
    make_scripted_app: Any, paths: Paths
) -> None:
    app = make_scripted_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        before = (
            rows(paths, "select count(*) from messages")[0][0],
            rows(paths, "select count(*) from sessions")[0][0],
        )
        await pilot.press("ctrl+o")
        await settle(app, pilot)
        assert app.engine.off_record and "OFF THE RECORD" in str(app.chat.query_one("#status").render())
        await say(app, pilot, "My secret word is zanzibarquux.")
        assert len(mine(app, "assistant")) >= 1 and mine(app, "user")[-1].text.startswith("My secret")
        await pilot.press("ctrl+r")  # regenerate works off the record too
        await settle(app, pilot)
        await pilot.press("ctrl+n")  # back on the record: the off-the-record talk is gone
        await settle(app, pilot)
        assert not app.engine.off_record
        after = (
            rows(paths, "select count(*) from messages")[0][0],
            rows(paths, "select count(*) from sessions")[0][0],
        )
    app.engine.close()
    assert after == before  # the unanswered greetings and the empty session leave nothing either
    for file in Path(paths.database).parent.iterdir():
        if file.is_file():
            assert b"zanzibarquux" not in file.read_bytes(), file


async def test_recall_panel_shows_what_was_recalled_and_pins_from_it(
    make_scripted_app: Any, paths: Paths
) -> None:
    from companion.memory.db.store import Store

    store = Store(paths.database)
    earlier = session_table.new(store)
    message_table.add(store, earlier, "user", "My sister Ana lives in Lisbon and teaches piano.")
    fact = add_memory(store, "fact", "The user's sister Ana lives in Lisbon.", importance=0.8)
    session_table.close(store, earlier)
    store.close()
    app = make_scripted_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        assert any(
            "Ana lives in Lisbon" in w.text for w in app.chat.query(ChatMessage) if w.has_class("earlier")
        )
        await say(app, pilot, "Where does my sister Ana live?")
        await pilot.press("ctrl+b")
        panel = app.chat.query_one(RecallPanel)
        assert panel.has_class("shown")
        items = list(panel.query(HitItem))
        assert {(i.hit.kind, i.hit.id) for i in items} >= {("fact", fact)}
        listing = panel.query_one("ListView")
        listing.index = next(n for n, i in enumerate(items) if i.hit.kind == "fact")
        listing.focus()
        await pilot.press("p")
        await settle(app, pilot)
        await pilot.press("enter")  # opens the memory with its provenance
        await settle(app, pilot)
        assert "Where it came from" in str(app.screen.query_one("#detail").source)
    assert rows(paths, f"select pinned from memories where id = {fact}") == [(1,)]


async def test_quitting_during_a_reply_is_clean_and_keeps_what_was_said(
    make_scripted_app: Any, paths: Paths
) -> None:
    app = make_scripted_app(replies=[LONG_STORY], delay=0.02, max_tokens=400)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await start_reply(app, pilot, "Tell me a long story about the mountains.")
        await pilot.press("ctrl+q")
    app.engine.close()
    roles = rows(paths, "select role, incomplete from messages order by id")
    assert roles == [("assistant", 0), ("user", 0), ("assistant", 1)]
    assert rows(paths, "pragma integrity_check") == [("ok",)]


async def test_a_question_about_someone_never_heard_of_recalls_nothing(
    make_scripted_app: Any, paths: Paths
) -> None:
    """The memory block is empty and the recall panel says so, rather than offering the nearest unrelated
    lines as "what you remember"."""
    from companion.memory.db.store import Store

    store = Store(paths.database)
    earlier = session_table.new(store)
    message_table.add(store, earlier, "user", "My sister Ana lives in Lisbon and teaches piano.")
    message_table.add(store, earlier, "user", "I went surfing in Ericeira on Saturday.")
    session_table.close(store, earlier)
    store.close()
    app = make_scripted_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await say(app, pilot, "What did Oyelaran say about the quokkazanzibar?")
        turn = app.engine.last_turn
        assert turn is not None and turn.hits == [] and turn.recall == []
        assert not turn.assembled.messages[-1].context  # no memory block at all
        await pilot.press("ctrl+b")
        panel = app.chat.query_one(RecallPanel)
        assert not list(panel.query(HitItem))
        assert "Nothing relevant remembered" in str(panel.query_one("ListView Label").render())
        await say(app, pilot, "Where does my sister Ana live?")
        assert any(h.text.startswith("My sister Ana") for h in app.engine.last_turn.hits)


async def test_a_forget_from_a_second_shell_leaves_the_screen(make_scripted_app: Any, paths: Paths) -> None:
    """The app is open; `memory forget --matching` runs from another shell (its own process): within seconds
    the forgotten turn is off the screen, and the next reply's prompt does not carry it."""
    import subprocess
    import sys

    app = make_scripted_app(replies=["Lovely, tell me more.", "Of course."])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await say(app, pilot, "My neighbour Quintela plays the tuba at night.")
        await say(app, pilot, "The weather is nice.")
        assert any("Quintela" in w.text for w in mine(app, "user"))
        shell = subprocess.run(
            [sys.executable, "-m", "companion", "memory", "forget", "--matching", "quintela", "--yes"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shell.returncode == 0 and "1 message" in shell.stdout, shell.stderr
        for _ in range(100):
            await pilot.pause(0.1)
            if not any("Quintela" in w.text for w in app.chat.query(ChatMessage)):
                break
        shown = [w.text for w in app.chat.query(ChatMessage)]
        assert not [t for t in shown if "Quintela" in t] and any("weather" in t for t in shown)
        await say(app, pilot, "Anything else?")
        prompt = app.engine.model.prompts[-1]
        assert not [m for m in prompt if "quintela" in (m.content + m.context).lower()]


async def test_f6_shows_the_prompt_the_model_got(make_scripted_app: Any, paths: Paths) -> None:
    from textual.widgets import TextArea

    from companion.tui.widgets.dialogs import PromptDialog

    app = make_scripted_app(replies=["Lovely."])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f6")
        await pilot.pause()
        assert not isinstance(app.screen, PromptDialog)  # nothing sent yet: a note instead
        await say(app, pilot, "I planted tomatoes today.")
        app.chat.query_one(Composer).blur()
        await pilot.press("f6")
        await pilot.pause()
        assert isinstance(app.screen, PromptDialog)
        shown = app.screen.query_one(TextArea).text
        assert shown == app.engine.model.prompt_text(app.engine.model.prompts[-1])
        assert "I planted tomatoes today." in shown and "You are Sam" in shown
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PromptDialog)


async def test_a_reply_cut_short_reads_as_stopped_when_scrolled_back(
    make_scripted_app: Any, paths: Paths
) -> None:
    """The app was killed mid-reply: the draft was kept, marked incomplete, and it shows "(stopped)" in the
    earlier conversation as it did live."""
    from companion.memory.db.store import Store

    store = Store(paths.database)
    earlier = session_table.new(store)
    message_table.add(store, earlier, "user", "Tell me about the mountains.")
    message_table.add(store, earlier, "assistant", "The mountains were tall and", incomplete=True)
    session_table.close(store, earlier)
    store.close()
    app = make_scripted_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        cut = next(w for w in app.chat.query(ChatMessage) if "mountains were tall" in w.text)
        assert cut.has_class("earlier") and cut.has_class("incomplete") and "(stopped)" in cut.text


async def test_a_check_in_made_while_the_app_sits_unused_becomes_the_conversation(paths: Paths) -> None:
    """The app is open in the background: once the user has not typed for a while, upkeep makes a due check-in
    and the chat moves to it (the app's own check-in, as `maintain` would make one with the app closed)."""
    import asyncio
    from datetime import timedelta

    from companion import config
    from companion.engine import Engine
    from companion.tui.app import CompanionApp
    from tests.rows import add_memory
    from tests.scripted import ScriptedModel
    from tests.tui.conftest import NOW

    store_memory = __import__("companion.memory", fromlist=["open_memory"]).open_memory(
        paths, config.Settings().memory
    )
    add_memory(
        store_memory.store,
        "fact",
        'Ana said: "My piano exam is tomorrow."',
        event_time=(NOW - timedelta(days=1)).isoformat(),
        thread="open",
    )
    store_memory.close()
    values = config.load(paths)
    values.user.name = "Ana"
    values.checkins.enabled = True
    clock = [NOW]
    model = ScriptedModel(replies=["How did the piano exam go, Ana?"])  # a chat model writes it
    engine = Engine(values, paths, now=lambda: clock[0], model=model)
    app = CompanionApp(engine=engine, welcome=False, upkeep=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await asyncio.to_thread(engine.upkeep_now)
        assert engine.checkin is None  # just opened: in use
        clock[0] = NOW + timedelta(minutes=20)  # and left alone since
        await asyncio.to_thread(engine.upkeep_now)
        await pilot.pause(2.5)  # the app's watch (every 2 s) moves to it
        await settle(app, pilot)
        assert engine.checkin is not None
        shown = [w.text for w in app.chat.query(ChatMessage) if not w.has_class("earlier")]
        assert shown[-1] == "How did the piano exam go, Ana?" and "A check-in." in shown[-2], shown
    engine.close()
