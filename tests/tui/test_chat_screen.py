"""The minimal chat screen, driven by Pilot with the real demo model."""

from __future__ import annotations

import sqlite3

from textual.widgets import Input

from companion.paths import Paths
from companion.tui.app import ChatMessage, CompanionApp


async def test_send_and_stream_a_reply(demo_home: Paths) -> None:
    from companion import config
    from companion.engine import Engine

    settings = config.load(demo_home)
    settings.chat.max_tokens = 12
    settings.chat.seed = 1
    app = CompanionApp(engine=Engine(settings, demo_home))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        composer = app.query_one("#composer", Input)
        assert not composer.disabled
        notices = [w for w in app.query(ChatMessage) if w.has_class("notice")]
        assert notices, "the demo model is explained on screen"
        await pilot.click("#composer")
        await pilot.press(*"Hello!")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        replies = [w for w in app.query(ChatMessage) if w.has_class("assistant")]
        assert len(replies) == 2  # Sam's greeting, then the reply
        assert not app.busy
    app.engine.close()
    with sqlite3.connect(demo_home.database) as conn:
        roles = [r for (r,) in conn.execute("select role from messages order by id")]
    assert roles == ["assistant", "user", "assistant"]
