"""Every input, one sentence: JSON and TOML nested a thousand deep, lone surrogates, lorebook fields of the
wrong type, bytes that are not UTF-8 on the command line and on stdin, a read-only home, a full disk, a damaged
index sidecar — through the public commands, each a clear error or a mended input, never a traceback."""

from __future__ import annotations

import contextlib
import errno
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from companion.paths import Paths
from tests.reliability.test_edges import count, jsonl, memory
from tests.test_cli import assert_clean_error, run, run_process

DEEP = "[" * 1000 + "]" * 1000


def card(tmp_path: Path, data: dict[str, object], raw: str | None = None) -> Path:
    path = tmp_path / "card.json"
    path.write_text(raw or json.dumps({"spec": "chara_card_v2", "spec_version": "2.0", "data": data}))
    return path


def test_json_and_toml_nested_a_thousand_deep_are_one_sentence(paths: Paths, tmp_path: Path) -> None:
    deep_card = card(
        tmp_path,
        {},
        raw='{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"Deep","extensions":{"a":'
        + DEEP
        + "}}}",
    )
    assert_clean_error(run("persona", "import", str(deep_card)), "nested more than", "nothing was imported")
    log = tmp_path / "deep.jsonl"
    log.write_text(
        '{"session":"a","time":"2024-01-01T10:00:00","role":"user","text":"hi","x":' + DEEP + "}\n"
    )
    assert_clean_error(memory("import", str(log)), "Line 1 is nested more than")
    export = tmp_path / "deep.json"
    export.write_text('{"format":"companion-memory","x":' + DEEP + "}")
    assert_clean_error(memory("import", str(export)), "nested more than")
    paths.config_file.write_text("[chat]\nx = " + DEEP + "\n")
    assert_clean_error(run("config", "show"), "nested too deeply")
    assert not paths.database.exists() or count(paths, "select count(*) from messages") == 0


def test_a_card_with_a_lone_surrogate_is_mended(paths: Paths, tmp_path: Path) -> None:
    path = card(tmp_path, {}, raw='{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"Ana\\ud800",'
                '"description":"Says \\udfff hi."}}')  # fmt: skip
    result = run("persona", "import", str(path))
    assert result.returncode == 0, result.stderr
    assert "Ana\ufffd" in run("persona", "list").stdout
    assert "Says \ufffd hi." in run("persona", "show", "Ana\ufffd").stdout


def test_lorebook_fields_of_the_wrong_type_are_warned_and_the_chat_goes_on(
    paths: Paths, tmp_path: Path
) -> None:
    from companion import config
    from companion.engine import Engine
    from tests.scripted import ScriptedModel

    book = {
        "token_budget": "lots",
        "entries": [
            {"keys": ["sea"], "content": "The sea is cold.", "priority": "high", "enabled": True},
            {"keys": ["harbour"], "content": "The harbour is old.", "insertion_order": [1], "enabled": True},
        ],
    }
    result = run("persona", "import", str(card(tmp_path, {"name": "Luz", "character_book": book})))
    assert result.returncode == 0, result.stderr
    assert "token_budget 'lots' is not a number" in result.stderr and "priority 'high'" in result.stderr
    assert "entry 2's insertion_order [1] is not a number" in result.stderr
    assert run("persona", "use", "Luz").returncode == 0
    model = ScriptedModel(replies=["Brr."])
    engine = Engine(config.load(paths), paths, model=model)
    engine.ask("Is the sea warm by the harbour?")  # triggers both entries: once it died here, every turn
    block = model.prompts[0][-1].context
    assert "The sea is cold." in block and "The harbour is old." in block
    engine.close()


def test_bytes_that_are_not_utf8_on_the_command_line_are_one_sentence(paths: Paths, tmp_path: Path) -> None:
    latin1 = "caf\udce9 au lait"  # how Python hands over the bytes b"caf\xe9 au lait" from a Latin-1 terminal
    for args in (("memory", "add", latin1), ("memory", "search", latin1), ("persona", "new", latin1)):
        assert_clean_error(run(*args), "not UTF-8 text", "caf\\xe9 au lait")
    assert not paths.database.exists() or count(paths, "select count(*) from memories") == 0
    named = tmp_path / "caf\udce9.jsonl"  # a file name in another encoding is still a file
    jsonl(named, [{"session": "a", "time": "2024-01-01T10:00:00", "role": "user", "text": "hi"}])
    assert memory("import", str(named)).returncode == 0


def test_bytes_that_are_not_utf8_on_stdin_are_mended(demo_home: Paths) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "companion", "chat", "--plain"],
        input=b"ol\xe1, how are you?\n",
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr
    assert count(demo_home, "select count(*) from messages where text = 'ol\ufffd, how are you?'") == 1


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `path` (root with mount rights, as on CI here; skipped elsewhere)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("needs a tmpfs mount (root with mount rights)")
    try:
        yield path
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(path)], capture_output=True)
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_read_only_home_is_one_sentence_for_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with small_disk(tmp_path / "disk", "8M") as disk:
        monkeypatch.setenv("COMPANION_HOME", str(disk / "home"))
        assert run("memory", "add", "I keep bees").returncode == 0
        assert subprocess.run(["mount", "-o", "remount,ro", str(disk)]).returncode == 0
        for args in (("memory", "list"), ("memory", "add", "more"), ("config", "set", "chat.temperature", "0.5"),
                     ("memory", "search", "bees"), ("memory", "export")):  # fmt: skip
            assert_clean_error(run_process(*args), "read-only file system")
        doctor = run_process("doctor")
        assert "Traceback" not in doctor.stderr and "read-only file system" in doctor.stdout
        assert "[ok  ] python" in doctor.stdout


def test_a_full_disk_is_one_sentence_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with small_disk(tmp_path / "disk", "4M") as disk:
        monkeypatch.setenv("COMPANION_HOME", str(disk / "home"))
        # The first start unpacks the demo model (hundreds of MB): it does not fit, and nothing half-written stays.
        assert_clean_error(run_process("ask", "hello"), "The disk is full")
        assert not [p for p in (disk / "home" / "data" / "models").iterdir()]
        assert run("memory", "add", "I keep bees").returncode == 0
        filler = disk / "filler"
        with open(filler, "wb") as handle, contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
        for args in (("memory", "add", "more bees"), ("config", "set", "chat.temperature", "0.5")):
            assert_clean_error(run(*args), "The disk is full")
        filler.unlink()
        assert "I keep bees" in run("memory", "list").stdout


def test_an_index_the_disk_refuses_to_save_does_not_fail_a_committed_import(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from companion.memory.recall.index import VectorIndex

    def refuse(self: VectorIndex) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(paths.index_file))

    monkeypatch.setattr(VectorIndex, "_save", refuse)
    log = jsonl(
        tmp_path / "log.jsonl",
        [{"session": "a", "time": "2024-01-01T10:00:00", "role": "user", "text": "I keep bees."}],
    )
    result = memory("import", str(log))
    assert result.returncode == 0, result.stderr
    assert "I keep bees." in memory("search", "bees").stdout


def test_a_sidecar_that_is_not_an_object_is_rebuilt(paths: Paths, tmp_path: Path) -> None:
    log = jsonl(
        tmp_path / "log.jsonl",
        [{"session": "a", "time": "2024-01-01T10:00:00", "role": "user", "text": "I keep bees."}],
    )
    assert memory("import", str(log)).returncode == 0
    assert memory("search", "bees").returncode == 0
    paths.index_file.with_name(paths.index_file.name + ".json").write_text("[1, 2, 3]")
    for args in (("stats",), ("search", "bees")):
        result = memory(*args)
        assert result.returncode == 0, result.stderr
    assert "I keep bees." in memory("search", "bees").stdout


async def test_the_app_goes_on_unsaved_when_the_disk_fills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real full disk under the app (a tmpfs filled while it runs): the chat goes on, unsaved, and says so; the
    app does not exit, and what was saved before is still there."""
    from companion.paths import get_paths
    from companion.tui.widgets.chat_message import ChatMessage
    from tests.scripted import ScriptedModel
    from tests.tui.conftest import app_factory, say, settle

    with small_disk(tmp_path / "disk", "6M") as disk:
        monkeypatch.setenv("COMPANION_HOME", str(disk / "home"))
        make, _ = app_factory(get_paths().ensure())
        app = make(model=ScriptedModel(replies=["Lovely.", "Still here."]))
        engine = app.engine
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            await say(app, pilot, "I keep bees.")
            filler = disk / "filler"
            with open(filler, "wb") as handle, contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * 65536)
            await say(app, pilot, "They make honey.")
            assert app.is_running
            replies = [w.text for w in app.chat.query(ChatMessage) if w.role == "assistant"]
            assert replies[-1].strip() == "Still here."
            assert engine.degraded and "disk is full" in engine.degraded.lower()
            filler.unlink()
        engine.close()
        assert "I keep bees." in run("memory", "export", "--format", "jsonl").stdout
