"""Snapshots of every screen at 80×24 with pytest-textual-snapshot: a fixed clock (the engine's `now`), a scripted
model (its replies are the test's), no cursor blink, no background upkeep, and real content (long profile
lines, long memories, a long recalled message). Update with `pytest tests/tui/test_snapshots.py
--snapshot-update` after an intended change, and look at the SVGs."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from textual.pilot import Pilot

from companion.paths import Paths
from tests.rows import add_memory
from tests.tui.conftest import NOW, settle
from tests.tui.seed import seed

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def same_vectors_on_every_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recall panel shows scores: embeddings in float32 on every machine, so a CPU with native bfloat16
    (where the embedder uses it) draws the same picture as one without."""
    monkeypatch.setattr("companion.memory.recall.embed._cpu_has_native_bf16", lambda: False)


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


def test_chat_screen(make_scripted_app: Any, paths: Paths, snap_compare: Any) -> None:
    seed(paths)
    assert snap_compare(make_scripted_app(), terminal_size=SIZE, run_before=prepare())


def test_welcome_screen(make_scripted_app: Any, paths: Paths, snap_compare: Any) -> None:
    assert snap_compare(make_scripted_app(welcome=True), terminal_size=SIZE, run_before=prepare())


def test_memories_screen(make_scripted_app: Any, paths: Paths, snap_compare: Any) -> None:
    seed(paths)
    assert snap_compare(make_scripted_app(), terminal_size=SIZE, run_before=prepare("f2"))


def test_memory_detail(make_scripted_app: Any, paths: Paths, snap_compare: Any) -> None:
    seed(paths)
    assert snap_compare(make_scripted_app(), terminal_size=SIZE, run_before=prepare("f2", "down", "enter"))


def test_profile_screen(make_scripted_app: Any, paths: Paths, snap_compare: Any) -> None:
    seed(paths)
    assert snap_compare(make_scripted_app(), terminal_size=SIZE, run_before=prepare("f3"))


def test_sessions_screen(make_scripted_app: Any, paths: Paths, snap_compare: Any) -> None:
    seed(paths)
    assert snap_compare(make_scripted_app(), terminal_size=SIZE, run_before=prepare("f4"))


def test_settings_screen(make_scripted_app: Any, paths: Paths, snap_compare: Any) -> None:
    assert snap_compare(make_scripted_app(), terminal_size=SIZE, run_before=prepare("f5"))


def test_help_screen(make_scripted_app: Any, paths: Paths, snap_compare: Any) -> None:
    assert snap_compare(make_scripted_app(), terminal_size=SIZE, run_before=prepare("f1"))


def test_light_theme(make_scripted_app: Any, paths: Paths, snap_compare: Any) -> None:
    seed(paths)
    assert snap_compare(make_scripted_app(), terminal_size=SIZE, run_before=prepare("ctrl+t", "f2"))


LONG_FACT = (
    "The user's grandmother taught her to make pastéis de nata every Christmas in the old kitchen in Lisbon, "
    "and she still keeps the recipe card in a drawer."
)


def long_content(home: Paths) -> None:
    """A profile with lines longer than the screen and a memory longer than its column."""
    from companion.memory.db.store import Store
    from companion.memory.tables import profile

    seed(home)
    store = Store(home.database)
    long_id = add_memory(store, "fact", LONG_FACT, importance=0.9)
    with store.transaction() as conn:  # the fixed clock's day, so the picture is the same every day
        conn.execute(
            "update memories set created_at = ?, updated_at = ?, valid_from = ? where id = ?",
            ("2026-11-20T09:00:00.000+00:00",) * 3 + (long_id,),
        )
    profile.save(
        store,
        {
            "traits": [
                "caring, works night shifts as a nurse and still finds time to call her sister every Sunday"
            ],
            "preferences": [
                "green tea in the morning, strong coffee only before a night shift at the hospital"
            ],
            "relationships": [
                "sister Ana in Lisbon, who is getting married next spring by the river in Porto"
            ],
            "concerns": [],
            "style": [],
        },
        [],
        "longer lines",
        NOW,
    )
    store.close()


def test_profile_screen_with_long_lines(make_scripted_app: Any, paths: Paths, snap_compare: Any) -> None:
    long_content(paths)
    assert snap_compare(make_scripted_app(), terminal_size=SIZE, run_before=prepare("f3"))


def test_memories_screen_with_a_long_memory(make_scripted_app: Any, paths: Paths, snap_compare: Any) -> None:
    long_content(paths)
    assert snap_compare(make_scripted_app(), terminal_size=SIZE, run_before=prepare("f2"))


def test_recall_panel_with_a_long_recalled_message(
    make_scripted_app: Any, paths: Paths, snap_compare: Any
) -> None:
    long_content(paths)
    app = make_scripted_app(replies=["That sounds lovely. Do you still bake them?"])

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(app, pilot)
        await pilot.press(*"Tell me about my grandmother's pastries")
        await pilot.press("enter")
        await settle(app, pilot)
        await pilot.press("ctrl+b")
        await settle(app, pilot)
        app.screen.set_focus(None)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_app_module_imports_without_loading_a_model() -> None:
    code = (
        "import sys\n"
        "import companion.tui.app\n"
        "heavy = [m for m in ('torch', 'llama_cpp', 'sentence_transformers', 'faiss') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
