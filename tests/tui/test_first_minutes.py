"""What a newcomer meets in the first minutes, with a scripted model: Enter on the welcome screen starts, the
status line says what is happening, and a message typed at once is not lost."""

from __future__ import annotations

from typing import Any

from companion import config
from companion.paths import Paths
from companion.tui.widgets.chat_message import ChatMessage
from companion.tui.widgets.composer import Composer
from tests.tui.conftest import say, send, settle


def said(app: Any, role: str) -> list[str]:
    return [w.text for w in app.chat.query(ChatMessage) if w.role == role and not w.has_class("earlier")]


async def test_a_name_and_enter_start_and_the_next_words_go_to_the_composer(
    make_scripted_app: Any, paths: Paths
) -> None:
    app = make_scripted_app(welcome=True, replies=["Hello Ana, nice to meet you."])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert "Encrypt my memory file: OFF" in str(app.screen.query_one("#encrypt").label)
        await pilot.press(*"Ana", "enter")
        await settle(app, pilot)
        assert app.screen is app.chat and isinstance(app.focused, Composer)
        await pilot.press(*"Hi, I like the sea.", "enter")
        await settle(app, pilot)
        assert said(app, "user") == ["Hi, I like the sea."]
        assert said(app, "assistant")[-1] == "Hello Ana, nice to meet you."
    assert config.load(paths).user.name == "Ana"
    assert config.load(paths).ui.welcomed


async def test_the_encryption_choice_says_whether_it_is_on(make_scripted_app: Any) -> None:
    app = make_scripted_app(welcome=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.screen.query_one("#encrypt").focus()
        await pilot.press("space")
        assert "Encrypt my memory file: ON" in str(app.screen.query_one("#encrypt").label)


async def test_the_status_line_says_writing_while_the_reply_streams(make_scripted_app: Any) -> None:
    app = make_scripted_app(replies=["one two three four five six seven eight nine ten"])
    app.engine.model.delay = 0.15  # type: ignore[attr-defined]
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await send(app, pilot, "Count for me.")
        while not (app.chat._reply is not None and app.chat._reply.text):
            await pilot.pause(0.05)
        await pilot.pause(0.1)
        status = str(app.chat.query_one("#status").render())
        assert "writing" in status and "thinking" not in status
        await settle(app, pilot)
        assert "writing" not in str(app.chat.query_one("#status").render())  # done: back to the usual line


async def test_typing_works_at_once_and_a_message_waits_for_the_model(make_scripted_app: Any) -> None:
    import threading

    app = make_scripted_app(replies=["There you are!"])
    engine = app.engine
    loaded = threading.Event()
    ready_model = engine.model

    def slow_load() -> Any:  # the model takes its time to load, as a big GGUF does
        loaded.wait(10)
        return ready_model

    engine.load_model = slow_load
    engine.reload_model = slow_load
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        composer = app.chat.query_one(Composer)
        assert not composer.disabled and isinstance(app.focused, Composer)  # typing works before the model
        await pilot.press(*"Hello!", "enter")
        await pilot.pause()
        assert said(app, "user") == ["Hello!"]
        assert "loading the model" in str(app.chat.query_one("#status").render())
        loaded.set()
        await settle(app, pilot, rounds=6)
        assert said(app, "assistant")[-1] == "There you are!"
        greeting = said(app, "assistant")[0]
        mine = [
            w
            for w in app.chat.query(ChatMessage)
            if not w.has_class("earlier") and w.role in ("user", "assistant")
        ]
        assert [w.role for w in mine] == ["assistant", "user", "assistant"] and mine[0].text == greeting


async def test_a_speaker_name_the_model_began_is_not_left_on_screen(make_scripted_app: Any) -> None:
    """A reply that runs out of tokens as the model starts the next line as the user ("\\nUs") is kept
    without it, and the screen shows what is kept, not what streamed."""
    app = make_scripted_app(replies=["I see yellow.\nUs"])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await say(app, pilot, "Say a colour.")
        assert said(app, "assistant")[-1] == "I see yellow."
        assert app.engine.messages()[-1].text == "I see yellow."
