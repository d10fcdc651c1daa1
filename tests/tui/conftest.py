"""The TUI under Pilot: a real memory file under the test's COMPANION_HOME, the real demo model, a fixed clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from textual.pilot import Pilot

from companion.paths import Paths

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def make_app(demo_home: Paths) -> Callable[..., Any]:
    from companion import config
    from companion.engine import Engine
    from companion.tui.app import CompanionApp

    made: list[Any] = []

    def make(
        welcome: bool = False, max_tokens: int = 12, upkeep: bool = False, **settings: Any
    ) -> CompanionApp:
        values = config.load(demo_home)
        values.chat.max_tokens = max_tokens
        values.chat.seed = 1
        values.chat.temperature = 0.0
        values.model.n_ctx = 2048
        for key, value in settings.items():
            config.set_value(values, key.replace("__", "."), value)
        engine = Engine(values, demo_home, now=lambda: NOW)
        app = CompanionApp(engine=engine, welcome=welcome, upkeep=upkeep)
        made.append(app)
        return app

    yield make
    for app in made:
        app.engine.close()


async def settle(app: Any, pilot: Pilot[Any], rounds: int = 3) -> None:
    """Wait for workers (which may start more workers) and for the messages they posted."""
    for _ in range(rounds):
        await app.workers.wait_for_complete()
        await pilot.pause()
