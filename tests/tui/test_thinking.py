"""A reasoning model in the app (scripted: its replies reason first, as Qwen3 or DeepSeek-R1 do): the thinking
is folded above the reply while it streams and after, Ctrl+L shows it, only the answer is the reply, and a
reply stopped while the model is still thinking stores nothing and says so."""

from __future__ import annotations

import sqlite3
from typing import Any

from companion.paths import Paths
from companion.tui.widgets.chat_message import ChatMessage
from companion.tui.widgets.thought import Thought
from tests.tui.conftest import say, send, settle

SECRET = "zebracorn"
THINKING = (
    f"<think>Ana sounds tired; {SECRET} is what I privately think. " + "Let me be gentle. " * 6 + "</think>"
)


def stored(paths: Paths) -> list[tuple[str, str]]:
    with sqlite3.connect(paths.database) as conn:
        return conn.execute("select role, text from messages order by id").fetchall()


async def test_the_thinking_is_folded_above_the_reply(make_scripted_app: Any, paths: Paths) -> None:
    app = make_scripted_app(replies=[THINKING + " I'm here for you, Ana."], delay=0.02, max_tokens=200)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await say(app, pilot, "I had a long day.")
        replies = [w for w in app.chat.query(ChatMessage) if w.role == "assistant"]
        assert replies[-1].text.strip() == "I'm here for you, Ana."
        thought = app.chat.query_one(Thought)
        shown = str(thought.render())
        assert "thought for" in shown and SECRET not in shown  # folded
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert SECRET in str(thought.render())
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert SECRET not in str(thought.render())
    assert stored(paths)[-1] == ("assistant", "I'm here for you, Ana.")
    assert all(SECRET not in text for _, text in stored(paths))


async def test_the_status_line_says_thinking_while_it_thinks(make_scripted_app: Any) -> None:
    app = make_scripted_app(replies=[THINKING + " Hello."], delay=0.05, max_tokens=200)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await send(app, pilot, "Hi")
        seen = ""
        for _ in range(200):
            await pilot.pause(0.05)
            status = str(app.chat.query_one("#status").render())
            if "thinking…" in status and " s" in status and app.chat.query(Thought):
                seen = status
                break
        assert seen, "the status line never said the model was thinking"
        await settle(app, pilot)


async def test_stopped_while_thinking_nothing_is_stored(make_scripted_app: Any, paths: Paths) -> None:
    app = make_scripted_app(replies=[THINKING + " This is never reached."], delay=0.1, max_tokens=200)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await send(app, pilot, "Think about it.")
        for _ in range(200):
            await pilot.pause(0.05)
            if app.chat.query(Thought):
                break
        await pilot.press("escape")
        await settle(app, pilot)
        reply = [w for w in app.chat.query(ChatMessage) if w.role == "assistant"][-1]
        assert "stopped while thinking" in reply.text and "nothing was stored" in reply.text
    assert [role for role, _ in stored(paths)][-1] == "user"
    assert all(SECRET not in text for _, text in stored(paths))
