"""Faults: a full disk, a read-only or locked memory file, a damaged file or index, a model that will not load.
Each gives one clear sentence, loses nothing, and the app keeps running where it can."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from companion.engine import Engine
from companion.errors import StorageError
from companion.memory.db.store import Store
from companion.memory.operations import LongTermMemory
from companion.memory.portability.imports import import_file
from companion.memory.tables import memories as memory_table
from companion.memory.tables import messages as message_table
from companion.memory.tables import sessions as session_table
from companion.paths import Paths
from tests.rows import add_memory
from tests.test_cli import assert_clean_error, run
from tests.tui.conftest import settle


def fill_the_disk(store: Store) -> None:
    """SQLite's own full-disk error (SQLITE_FULL), by capping this connection's file at its current size."""
    pages = store.conn.execute("pragma page_count").fetchone()[0]
    store.conn.execute(f"pragma max_page_count = {pages}")


def log_file(tmp_path: Path, lines: int = 400) -> Path:
    path = tmp_path / "log.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(
                {
                    "session": f"s{i // 20}",
                    "time": "2026-01-01T10:00:00",
                    "role": "user",
                    "text": f"line {i} " * 30,
                }
            )
            for i in range(lines)
        )
    )
    return path


def test_a_full_disk_during_an_import_imports_nothing(paths: Paths, tmp_path: Path) -> None:
    store = Store(paths.database)
    memory = LongTermMemory(store, None)
    message_table.add(store, session_table.new(store), "user", "Kept from before.")
    fill_the_disk(store)
    with pytest.raises(StorageError, match="disk is full"):
        import_file(memory, log_file(tmp_path), "jsonl")
    assert store.count("messages") == 1
    assert store.conn.execute("pragma integrity_check").fetchone() == ("ok",)
    store.close()


def test_a_full_disk_mid_conversation_keeps_the_chat_going_unsaved(demo_home: Paths) -> None:
    engine = Engine(paths=demo_home)
    engine.ask("Hello, I am Ana.", max_tokens=4, seed=1)
    fill_the_disk(engine.store)
    reply, _ = engine.ask("Let me tell you a long story. " * 400, max_tokens=4, seed=1)
    assert engine.degraded and "disk is full" in engine.degraded
    assert [m.role for m in engine.messages()] == ["user", "assistant", "user", "assistant"]  # in memory
    first = engine.messages()[0]  # saved before the disk filled up; editing it still branches from there
    "".join(engine.branch(first.id, "Hello, I am Rita.", max_tokens=4, seed=1))
    assert [(m.role, m.text if m.role == "user" else "") for m in engine.messages()] == [
        ("user", "Hello, I am Rita."),
        ("assistant", ""),
    ]
    engine.close()
    with sqlite3.connect(demo_home.database) as conn:
        assert [r for (r,) in conn.execute("select text from messages where role = 'user'")] == [
            "Hello, I am Ana."
        ]


def test_a_read_only_memory_file_says_so_and_changes_nothing(paths: Paths) -> None:
    store = Store(paths.database)
    memory = LongTermMemory(store, None)
    note = add_memory(store, "note", "The user likes tea.")
    store.conn.execute("pragma query_only = 1")  # the file refuses writes, like a read-only disk
    with pytest.raises(StorageError, match="read-only"):
        memory.pin(note)
    assert not memory_table.get(store, note).pinned  # type: ignore[union-attr]
    store.close()


def test_a_locked_memory_file_is_reported_as_busy(paths: Paths) -> None:
    store = Store(paths.database, busy_timeout=0.3)
    session = session_table.new(store)
    other = sqlite3.connect(paths.database)
    other.execute("begin exclusive")
    with pytest.raises(StorageError, match="busy"):
        message_table.add(store, session, "user", "Hello?")
    other.rollback()
    other.close()
    message_table.add(store, session, "user", "Hello again.")  # once the other program lets go, all is well
    assert store.count("messages") == 1
    store.close()


def test_a_damaged_memory_file_is_one_clear_sentence(paths: Paths) -> None:
    assert run("memory", "add", "The user likes tea.").returncode == 0
    raw = bytearray(paths.database.read_bytes())
    raw[100:] = b"\x5a" * (len(raw) - 100)
    paths.database.write_bytes(bytes(raw))
    for file in paths.data_dir.glob("memory.db-*"):
        file.unlink()
    for args in (("memory", "list"), ("memory", "stats"), ("ask", "hello")):
        assert_clean_error(run(*args), "memory file")


def test_a_damaged_index_is_rebuilt(paths: Paths) -> None:
    assert run("memory", "add", "My sister Ana lives in Lisbon.").returncode == 0
    assert run("memory", "search", "sister").returncode == 0
    paths.index_file.write_bytes(b"not a faiss index at all" * 10)
    result = run("memory", "search", "where does my sister live", "--json")
    assert result.returncode == 0 and "Lisbon" in result.stdout, result.stderr
    assert paths.index_file.read_bytes()[:24] != b"not a faiss index at all"


async def test_a_model_that_fails_to_load_leaves_memory_usable(
    make_app: Any, demo_home: Paths, tmp_path: Path
) -> None:
    from textual.widgets import DataTable

    from tests.tui.seed import seed

    seed(demo_home)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    app = make_app()
    app.settings.models["broken"] = str(broken)
    app.settings.model.name = "broken"
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        notices = [w.text for w in app.chat.query("ChatMessage") if w.has_class("notice")]
        assert any("could not be loaded" in text for text in notices)
        assert app.chat.query_one("#composer").disabled
        await pilot.press("f2")  # memory without chat
        await settle(app, pilot)
        assert app.screen.query_one(DataTable).row_count == 7
