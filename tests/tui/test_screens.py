"""Every screen under Pilot: memories, a memory's detail, profile, sessions, settings, welcome, help, the command
palette, remapped keys and themes. Operations go through the same functions as `companion memory …`. The
screens never need what a model says: a scripted model answers (the one test that reloads the model loads the
real one)."""

from __future__ import annotations

import sqlite3
import tomllib
from typing import Any

from textual.widgets import DataTable, Input, ListView

from companion.paths import Paths
from companion.tui.screens.help import HelpScreen
from companion.tui.screens.memories import PAGE, MemoriesScreen
from companion.tui.screens.memory_detail import MemoryDetail
from companion.tui.screens.profile import ProfileScreen
from companion.tui.screens.sessions import SessionsScreen, TranscriptScreen
from companion.tui.screens.settings import SettingsScreen
from companion.tui.widgets.dialogs import TextDialog
from tests.tui.conftest import settle
from tests.tui.seed import seed


def one(home: Paths, sql: str) -> Any:
    with sqlite3.connect(home.database) as conn:
        return conn.execute(sql).fetchone()


def table_texts(table: DataTable[Any]) -> list[str]:
    return [str(table.get_row_at(n)[2]) for n in range(table.row_count)]


async def test_memories_screen_pages_searches_and_acts(make_scripted_app: Any, paths: Paths) -> None:
    ids = seed(paths, facts=PAGE + 30)
    app = make_scripted_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f2")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, MemoriesScreen)
        table = screen.query_one(DataTable)
        assert table.row_count == PAGE and screen.total == PAGE + 31  # the facts and the summary
        await pilot.press("right_square_bracket")
        await settle(app, pilot)
        assert table.row_count == 31 and screen.page == 1
        screen.query_one("#search", Input).value = "cello"
        await settle(app, pilot)
        assert [t[:20] for t in table_texts(table)] == ["Talked about startin", "The user plays the c"]
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("p")
        await settle(app, pilot)
        assert one(paths, f"select pinned from memories where id = {ids['fact']}") == (1,)
        await pilot.press("e")
        await settle(app, pilot)
        assert isinstance(app.screen, TextDialog)
        app.screen.query_one("#text").text = "The user plays the cello in an orchestra."
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert one(paths, f"select text from memories where id = {ids['fact']}") == (
            "The user plays the cello in an orchestra.",
        )
        await pilot.press("enter")  # the detail: provenance and history
        await settle(app, pilot)
        assert isinstance(app.screen, MemoryDetail)
        detail = str(app.screen.query_one("#detail").source)
        assert f"message:{ids['message']}" in detail and "I started learning the cello" in detail
        assert "edit" in detail and "### History" in detail
        await pilot.press("escape")
        await settle(app, pilot)
        table.move_cursor(row=0)
        await pilot.press("f", "y")  # forget the summary for good
        await settle(app, pilot)
        assert one(paths, f"select count(*) from memories where id = {ids['summary']}") == (0,)
        assert [t[:20] for t in table_texts(table)] == ["The user plays the c"]


async def test_archived_view_restores(make_scripted_app: Any, paths: Paths) -> None:
    ids = seed(paths)
    with sqlite3.connect(paths.database) as conn:
        conn.execute(f"update memories set archived = 1 where id = {ids['fact']}")
    app = make_scripted_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f2")
        await settle(app, pilot)
        await pilot.press("a")
        await settle(app, pilot)
        table = app.screen.query_one(DataTable)
        assert [t[:20] for t in table_texts(table)] == ["The user plays the c"]
        await pilot.press("r")
        await settle(app, pilot)
        assert table.row_count == 0
    assert one(paths, f"select archived from memories where id = {ids['fact']}") == (0,)


async def test_profile_screen_shows_versions_and_vetoes_a_line(make_scripted_app: Any, paths: Paths) -> None:
    seed(paths)
    app = make_scripted_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f3")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ProfileScreen)
        lines = screen.query_one("#lines", ListView)
        assert [item.line for item in lines.children] == [  # type: ignore[attr-defined]
            "traits: caring, works as a nurse",
            "preferences: green tea",
            "preferences: plays the cello",
            "relationships: sister Ana in Lisbon",
        ]
        assert "+ traits: caring" in str(screen.query_one("#diff-text").render())
        lines.focus()
        lines.index = 1
        await pilot.press("v", "y")
        await settle(app, pilot)
        assert len(screen.query_one("#lines", ListView).children) == 3
        assert len(screen.query_one("#versions", ListView).children) == 2
    assert one(paths, "select line from profile_vetoes") == ("green tea",)


async def test_sessions_screen_reads_a_past_session_and_starts_new_ones(
    make_scripted_app: Any, paths: Paths
) -> None:
    ids = seed(paths)
    app = make_scripted_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f4")
        await settle(app, pilot)
        table = app.screen.query_one(DataTable)
        summaries = [str(table.get_row_at(n)[3]) for n in range(table.row_count)]
        assert any("Talked about starting cello" in s for s in summaries)
        table.move_cursor(
            row=[str(table.get_row_at(n)[0]) for n in range(table.row_count)].index(str(ids["session"]))
        )
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TranscriptScreen)
        transcript = str(app.screen.query_one("#transcript").source)
        assert "I started learning the cello" in transcript and "Summary" in transcript
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.screen, SessionsScreen)
        current = app.engine.session_id
        await pilot.press("o")
        await settle(app, pilot)
        assert app.screen is app.chat and app.engine.off_record
        await pilot.press("f4", "n")
        await settle(app, pilot)
        assert not app.engine.off_record and app.engine.session_id
        assert one(paths, f"select count(*) from sessions where id = {app.engine.session_id}") == (1,)
        assert one(paths, f"select count(*) from sessions where id = {current}") == (
            int(current == app.engine.session_id),
        )


async def test_settings_screen_writes_the_config_file_and_refuses_bad_values(
    make_scripted_app: Any, paths: Paths
) -> None:
    app = make_scripted_app()
    async with app.run_test(size=(80, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("f5")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        jobs = screen.query_one("#jobs", DataTable)
        assert {str(jobs.get_row_at(n)[0]) for n in range(jobs.row_count)} >= {"forget", "consolidate"}
        screen.query_one("#field-model-n_ctx", Input).value = "lots"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert not paths.config_file.exists()  # nothing half-written
        screen.query_one("#field-model-n_ctx", Input).value = "2048"
        screen.query_one("#field-chat-temperature", Input).value = "0.3"
        screen.query_one("#field-memory-tau_days", Input).value = "9"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        saved = tomllib.loads(paths.config_file.read_text())
        assert saved["chat"]["temperature"] == 0.3 and saved["memory"]["tau_days"] == 9.0
        assert app.engine.settings.chat.temperature == 0.3 and app.engine.memory.tau_days == 9.0


async def test_switching_the_model_in_settings_reloads_it(make_app: Any, demo_home: Paths) -> None:
    app = make_app()
    async with app.run_test(size=(80, 40)) as pilot:
        await settle(app, pilot)
        first = app.engine.model
        await pilot.press("f5")
        await settle(app, pilot)
        app.screen.query_one("#field-model-n_ctx", Input).value = "1024"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert app.engine.model is not first and app.engine.model.n_ctx == 1024 and app.chat.ready
        await pilot.press("escape")
        composer = app.chat.query_one("#composer")
        composer.text = "Still there?"  # type: ignore[attr-defined]
        composer.focus()
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.engine.last_turn is not None and app.engine.last_turn.reply_id is not None


async def test_welcome_asks_the_name_and_persona_then_greets(make_scripted_app: Any, paths: Paths) -> None:
    app = make_scripted_app(welcome=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        from companion.tui.screens.welcome import WelcomeScreen

        assert isinstance(app.screen, WelcomeScreen)
        assert "demo model" in str(app.screen.query_one("#intro").render())
        await pilot.press(*"Rita")
        app.screen.query_one("#start").press()
        await settle(app, pilot)
        assert app.screen is app.chat
        greeting = [w.text for w in app.chat.query("ChatMessage") if w.role == "assistant"]
        assert greeting and "Rita" in greeting[0]
    saved = tomllib.loads(paths.config_file.read_text())
    assert saved["user"]["name"] == "Rita" and saved["ui"]["welcomed"] is True


async def test_help_lists_keys_as_remapped_and_the_remap_works(make_scripted_app: Any, paths: Paths) -> None:
    app = make_scripted_app()
    app.settings.keys = {"regenerate": "ctrl+g", "nonsense": "x"}
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        await settle(app, pilot)
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one(DataTable)
        keys = {str(table.get_row_at(n)[3]): str(table.get_row_at(n)[0]) for n in range(table.row_count)}
        assert keys["regenerate"] == "Ctrl+G" and keys["memories"] == "F2"
        assert keys["memories.prev"] == "[" and keys["sessions.off_record"] == "o"  # ids are never cut
        assert max(len(k) for k in keys) <= 19
        await pilot.press("escape")
        composer = app.chat.query_one("#composer")
        composer.text = "Hi"  # type: ignore[attr-defined]
        composer.focus()
        await pilot.press("enter")
        await settle(app, pilot)
        first = app.engine.last_turn.reply_id
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        assert app.engine.last_turn.reply_id != first
        assert one(paths, f"select replaced from messages where id = {first}") == (1,)


async def test_theme_toggles_and_is_saved(make_scripted_app: Any, paths: Paths) -> None:
    app = make_scripted_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert app.theme == "textual-dark"
        await pilot.press("ctrl+t")
        await settle(app, pilot)
        assert app.theme == "textual-light"
    assert tomllib.loads(paths.config_file.read_text())["ui"]["theme"] == "light"


async def test_command_palette_reaches_every_screen(make_scripted_app: Any, paths: Paths) -> None:
    app = make_scripted_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Memories")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, MemoriesScreen)


async def test_welcome_can_encrypt_the_memory_file_with_a_passphrase(
    make_scripted_app: Any, paths: Paths, monkeypatch: Any
) -> None:
    from textual.widgets import Checkbox

    from companion.memory.db.cipher import state

    app = make_scripted_app(welcome=True)
    async with app.run_test(size=(80, 40)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        screen.query_one("#name", Input).value = "Rita"
        screen.query_one("#encrypt", Checkbox).value = True
        await pilot.pause()
        assert screen.query_one("#secret").has_class("shown")  # no OS keyring on this machine
        screen.query_one("#passphrase", Input).value = "a long passphrase"
        screen.query_one("#again", Input).value = "a long passphrase"
        screen.query_one("#start").press()
        await settle(app, pilot)
        assert state(paths.database).encrypted
        composer = app.chat.query_one("#composer")
        composer.text = "I keep bees on the roof: quillibee."  # type: ignore[attr-defined]
        composer.focus()
        await pilot.press("enter")
        await settle(app, pilot)
    app.engine.close()
    assert b"quillibee" not in paths.database.read_bytes()
    assert not paths.index_file.exists()
    monkeypatch.setenv("COMPANION_PASSPHRASE", "a long passphrase")
    from tests.test_cli import run

    assert "quillibee" in run("memory", "export").stdout


async def test_the_app_reads_nothing_from_the_file_while_the_welcome_screen_encrypts_it(
    make_scripted_app: Any, monkeypatch: Any
) -> None:
    """The rewrite closes every connection, the main thread's too: the two-second forget watch and the presence
    mark read the file on it, and a read on a connection being closed crashed the process (a segfault seen in a
    full test run). While it runs they wait; once it is done they read again."""
    app = make_scripted_app(welcome=True)
    async with app.run_test(size=(80, 40)) as pilot:
        await settle(app, pilot)
        calls: list[str] = []
        for name in ("forgets_changed", "take_checkin", "mark_presence"):
            monkeypatch.setattr(app.engine, name, lambda name=name: calls.append(name))
        app._encrypting = True
        app._watch_forgets()
        app._mark_presence()  # a thread worker
        await app.workers.wait_for_complete()
        assert calls == []
        app._encrypting = False
        app._watch_forgets()
        app._mark_presence()
        await app.workers.wait_for_complete()
        assert calls == ["forgets_changed", "take_checkin", "mark_presence"]


async def test_welcome_fits_80x24_with_encryption_on_and_enter_does_what_it_says(
    make_scripted_app: Any, paths: Paths
) -> None:
    """Every field the welcome asks is on screen at 80×24 with the passphrase fields shown; Enter on a checkbox
    starts (it does not toggle it back), and a short passphrase puts the cursor in the field that is wrong."""
    import tomllib

    from textual.widgets import Checkbox

    app = make_scripted_app(welcome=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        encrypt = screen.query_one("#encrypt", Checkbox)
        encrypt.focus()
        await pilot.press("space")
        await pilot.pause()
        assert encrypt.value and screen.query_one("#secret").has_class("shown")  # no OS keyring here
        for widget_id in ("name", "persona", "encrypt", "passphrase", "again", "checkins", "start"):
            region = screen.query_one(f"#{widget_id}").region
            assert region.height and region.bottom <= 24, (widget_id, region)
        screen.query_one("#passphrase", Input).value = "short"
        screen.query_one("#checkins", Checkbox).focus()
        await pilot.press("space")  # check-ins on
        await pilot.press("enter")  # starts: the passphrase is too short, and the cursor goes there
        await pilot.pause()
        assert encrypt.value and screen.query_one("#checkins", Checkbox).value
        assert app.focused is screen.query_one("#passphrase", Input)
        encrypt.focus()
        await pilot.press("space")  # encryption off after all
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.screen is app.chat
    saved = tomllib.loads(paths.config_file.read_text())
    assert saved["checkins"]["enabled"] is True


async def test_after_enter_in_the_memories_search_letters_act_on_the_rows(
    make_scripted_app: Any, paths: Paths
) -> None:
    ids = seed(paths, facts=5)
    app = make_scripted_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f2")
        await settle(app, pilot)
        screen = app.screen
        await pilot.press("slash", *"cello", "enter")
        await settle(app, pilot)
        table = screen.query_one(DataTable)
        assert app.focused is table and screen.query_one("#search", Input).value == "cello"
        row = next(n for n, text in enumerate(table_texts(table)) if text.startswith("The user plays the c"))
        table.move_cursor(row=row)
        await pilot.pause()
        assert str(screen.query_one("#preview").render()).endswith("The user plays the cello.")  # whole
        await pilot.press("p")  # the row key, not a letter typed into the search
        await settle(app, pilot)
        assert screen.query_one("#search", Input).value == "cello"
    assert one(paths, f"select pinned from memories where id = {ids['fact']}") == (1,)
