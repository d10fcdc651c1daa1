"""Files the user asks for and files the user gives back: `export -o` into folders that are not companion's,
and a JSON Lines export that imports again (into another home, and into its own file) whatever its text holds."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from companion.paths import Paths
from tests.reliability.test_edges import count, jsonl, memory
from tests.scripted import ScriptedModel
from tests.test_cli import assert_clean_error, run
from tests.test_conversation import make_engine


def test_export_into_a_shared_folder_leaves_the_folder_as_it_is(paths: Paths, tmp_path: Path) -> None:
    assert memory("add", "I keep bees").returncode == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp: everyone writes, the sticky bit keeps their files theirs
    for args in (
        ("memory", "export", "-o", str(shared / "m.json")),
        ("persona", "export", "Sam", "-o", str(shared / "c.json")),
    ):
        result = run(*args)
        assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    for name in ("m.json", "c.json"):
        assert stat.S_IMODE((shared / name).stat().st_mode) == 0o600
    assert "I keep bees" in (shared / "m.json").read_text()


@pytest.mark.parametrize("command", [("memory", "export"), ("persona", "export", "Sam")])
def test_export_to_a_missing_folder_or_a_folder_is_one_sentence(
    paths: Paths, tmp_path: Path, command: tuple[str, ...]
) -> None:
    missing = tmp_path / "no" / "such" / "folder" / "out.json"
    assert_clean_error(run(*command, "-o", str(missing)), "does not exist", "create it first")
    assert not (tmp_path / "no").exists()
    assert_clean_error(run(*command, "-o", str(tmp_path)), "is a folder")


def test_a_jsonl_export_with_unicode_line_separators_imports_again(paths: Paths, tmp_path: Path) -> None:
    text = "first line\u2028second line\u2029third\u0085fourth"
    log = tmp_path / "log.jsonl"
    log.write_text(
        json.dumps({"session": "a", "time": "2024-05-01T10:00:00", "role": "user", "text": text, "id": "1"},
                   ensure_ascii=False) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    result = memory("import", str(log))
    assert result.returncode == 0, result.stderr
    exported = tmp_path / "export.jsonl"
    assert memory("export", "--format", "jsonl", "-o", str(exported)).returncode == 0
    assert "\u2028" in exported.read_text(encoding="utf-8")  # kept as it was said, not escaped
    os.environ["COMPANION_HOME"] = str(tmp_path / "other")
    try:
        result = memory("import", str(exported))
        assert result.returncode == 0, result.stderr
        assert text in memory("export", "--format", "jsonl").stdout
    finally:
        os.environ["COMPANION_HOME"] = str(paths.config_dir.parent)


def test_a_jsonl_export_imported_into_its_own_file_adds_nothing(paths: Paths, tmp_path: Path) -> None:
    engine = make_engine(paths, ScriptedModel(replies=["Nice to meet you.", "Bees are wonderful."]))
    engine.ask("Hi, I'm Ana.")
    engine.ask("I keep bees.")
    engine.close()
    jsonl(
        tmp_path / "old.jsonl",
        [{"session": "trip", "time": "2024-01-01T10:00:00", "role": "user", "text": "Packing."}],
    )
    assert memory("import", str(tmp_path / "old.jsonl")).returncode == 0
    sessions, messages = (
        count(paths, "select count(*) from sessions"),
        count(paths, "select count(*) from messages"),
    )
    exported = tmp_path / "export.jsonl"
    assert memory("export", "--format", "jsonl", "-o", str(exported)).returncode == 0
    result = memory("import", str(exported))
    assert result.returncode == 0, result.stderr
    assert "Imported 0 messages in 0 new sessions" in result.stdout
    assert (count(paths, "select count(*) from sessions"), count(paths, "select count(*) from messages")) == (
        sessions,
        messages,
    )


def test_text_longer_than_one_message_is_refused_before_it_is_stored(paths: Paths, tmp_path: Path) -> None:
    """A pasted file: one clear sentence, and nothing of it in the file (no copy per retry)."""
    from companion.errors import CompanionError
    from companion.memory.records import MAX_TEXT_CHARS

    huge = "word " * (MAX_TEXT_CHARS // 5 + 10)
    engine = make_engine(paths, ScriptedModel(replies=["Ok."]))
    for _ in range(2):
        with pytest.raises(CompanionError, match="the most one message can be"):
            engine.send(huge)
    # Longer than the model's context but not than a message: refused before it is stored, too.
    with pytest.raises(CompanionError, match="too long for the model's context"):
        engine.send("word " * 5000)
    engine.close()
    assert count(paths, "select count(*) from messages") == 0

    log = tmp_path / "big.jsonl"
    log.write_text(
        json.dumps({"session": "a", "time": "2024-05-01T10:00:00", "role": "user", "text": "hi"}) + "\n"
        + json.dumps({"session": "a", "time": "2024-05-01T10:01:00", "role": "user", "text": huge}) + "\n"
    )  # fmt: skip
    assert_clean_error(memory("import", str(log)), "Line 2", "nothing was imported")
    assert_clean_error(memory("add", huge[: MAX_TEXT_CHARS + 5]), "The note is")
    assert count(paths, "select count(*) from messages") == 0
    assert count(paths, "select count(*) from memories where kind = 'note'") == 0
