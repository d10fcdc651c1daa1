"""Snapshots of every screen at 80×24 with pytest-textual-snapshot: a fixed clock (the engine's `now`), a fixed
seed, no cursor blink, no background upkeep. Update with `pytest tests/tui/test_snapshots.py --snapshot-update`
after an intended change, and look at the SVGs."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from textual.pilot import Pilot

from companion.paths import Paths
from tests.tui.conftest import settle
from tests.tui.seed import seed

SIZE = (80, 24)


def prepare(*keys: str) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        app: Any = pilot.app
        await settle(app, pilot)
        for key in keys:
            await pilot.press(key)
            await settle(app, pilot)
        app.screen.set_focus(None)  # no cursor in the picture
        await pilot.pause()

    return run_before


def test_chat_screen(make_app: Any, demo_home: Paths, snap_compare: Any) -> None:
    seed(demo_home)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=prepare())


def test_welcome_screen(make_app: Any, demo_home: Paths, snap_compare: Any) -> None:
    assert snap_compare(make_app(welcome=True), terminal_size=SIZE, run_before=prepare())


def test_memories_screen(make_app: Any, demo_home: Paths, snap_compare: Any) -> None:
    seed(demo_home)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=prepare("f2"))


def test_memory_detail(make_app: Any, demo_home: Paths, snap_compare: Any) -> None:
    seed(demo_home)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=prepare("f2", "down", "enter"))


def test_profile_screen(make_app: Any, demo_home: Paths, snap_compare: Any) -> None:
    seed(demo_home)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=prepare("f3"))


def test_sessions_screen(make_app: Any, demo_home: Paths, snap_compare: Any) -> None:
    seed(demo_home)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=prepare("f4"))


def test_settings_screen(make_app: Any, demo_home: Paths, snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=prepare("f5"))


def test_help_screen(make_app: Any, demo_home: Paths, snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=prepare("f1"))


def test_light_theme(make_app: Any, demo_home: Paths, snap_compare: Any) -> None:
    seed(demo_home)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=prepare("ctrl+t", "f2"))


def test_app_module_imports_without_loading_a_model() -> None:
    code = (
        "import sys\n"
        "import companion.tui.app\n"
        "heavy = [m for m in ('torch', 'llama_cpp', 'sentence_transformers', 'faiss') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
