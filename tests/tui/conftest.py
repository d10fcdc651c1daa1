"""The TUI under Pilot: a real memory file under the test's COMPANION_HOME, a fixed clock, and either the real
demo model (`make_app`, slow) or a scripted model whose replies the test writes (`make_scripted_app`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from textual.pilot import Pilot

from companion.paths import Paths
from companion.tui.widgets.composer import Composer
from tests.scripted import ScriptedModel

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def app_factory(home: Paths, model: Any = None) -> tuple[Callable[..., Any], list[Any]]:
    from companion import config
    from companion.engine import Engine
    from companion.tui.app import CompanionApp

    made: list[Any] = []

    def make(
        welcome: bool = False, max_tokens: int = 12, upkeep: bool = False, model: Any = model, **settings: Any
    ) -> CompanionApp:
        values = config.load(home)
        values.chat.max_tokens = max_tokens
        values.chat.seed = 1
        values.chat.temperature = 0.0
        values.model.n_ctx = 2048
        for key, value in settings.items():
            config.set_value(values, key.replace("__", "."), value)
        engine = Engine(values, home, now=lambda: NOW, model=model)
        app = CompanionApp(engine=engine, welcome=welcome, upkeep=upkeep)
        made.append(app)
        return app

    return make, made


@pytest.fixture
def make_app(demo_home: Paths) -> Iterator[Callable[..., Any]]:
    make, made = app_factory(demo_home)
    yield make
    for app in made:
        app.engine.close()


@pytest.fixture
def make_scripted_app(paths: Paths) -> Iterator[Callable[..., Any]]:
    """The app over a scripted model: `make_scripted_app(replies=[...])`."""
    base, made = app_factory(paths)

    def make(replies: list[str] | None = None, delay: float = 0.0, **kwargs: Any) -> Any:
        """`delay`: seconds before each word of a reply (a reply that takes its time to stream)."""
        return base(
            model=ScriptedModel(replies=replies or ["Nice to hear from you."], name="scripted", delay=delay),
            **kwargs,
        )

    yield make
    for app in made:
        app.engine.close()


async def settle(app: Any, pilot: Pilot[Any], rounds: int = 3) -> None:
    """Wait for workers (which may start more workers) and for the messages they posted."""
    for _ in range(rounds):
        await app.workers.wait_for_complete()
        await pilot.pause()


async def send(app: Any, pilot: Pilot[Any], text: str) -> None:
    """Type `text` into the chat's composer and press Enter."""
    composer = app.chat.query_one(Composer)
    composer.focus()
    composer.text = text
    await pilot.press("enter")


async def say(app: Any, pilot: Pilot[Any], text: str) -> None:
    """Send `text` and wait until the reply and the work after it are done."""
    await send(app, pilot, text)
    await settle(app, pilot)
