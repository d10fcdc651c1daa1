"""Encryption at rest, through the commands a user types: the file holds none of the text, a wrong or missing
passphrase fails with one clear sentence, encrypt → decrypt loses nothing, the index never lands on disk in the
clear, and exports are sealed with --encrypt."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from companion.paths import Paths
from tests.test_cli import assert_clean_error, run, run_process

SECRETS = ["zephyrine", "quollberry", "marmalux"]
PASSPHRASE = "correct horse battery"


def remember(paths: Paths, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    lines = [
        {
            "session": "a",
            "time": "2026-05-01T10:00:00",
            "role": "user",
            "speaker": "Ana",
            "text": f"My cat is called {SECRETS[0]}.",
        },
        {
            "session": "a",
            "time": "2026-05-01T10:00:05",
            "role": "assistant",
            "speaker": "Sam",
            "text": "What a lovely name!",
        },
        {
            "session": "b",
            "time": "2026-05-03T09:00:00",
            "role": "user",
            "speaker": "Ana",
            "text": f"I grow {SECRETS[1]} in the garden.",
        },
    ]
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert run("memory", "import", str(log)).returncode == 0
    assert run("memory", "add", f"The user's password hint is {SECRETS[2]}.").returncode == 0


def data_bytes(paths: Paths) -> bytes:
    return b"".join(p.read_bytes() for p in paths.data_dir.rglob("*") if p.is_file() and p.suffix != ".gguf")


def export(paths: Paths, runner: Any = run) -> dict[str, object]:
    result = runner("memory", "export")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    data.pop("exported_at")
    return data  # type: ignore[no-any-return]


@pytest.fixture
def with_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPANION_PASSPHRASE", PASSPHRASE)


def test_passphrase_encryption_hides_the_text_and_round_trips(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remember(paths, tmp_path)
    assert run("memory", "search", "cat name").returncode == 0  # writes the FAISS index file
    before = export(paths)
    assert all(s.encode() in data_bytes(paths) for s in SECRETS)
    monkeypatch.setenv("COMPANION_PASSPHRASE", PASSPHRASE)
    result = run("memory", "encrypt")
    assert result.returncode == 0 and "passphrase" in result.stdout, result.stderr
    assert not any(s.encode() in data_bytes(paths) for s in SECRETS)
    assert not paths.index_file.exists()
    # Working with it: recall finds the cat, and the index is still never written to disk.
    found = run("memory", "search", "what is my cat called", "--json")
    assert found.returncode == 0 and SECRETS[0] in found.stdout, found.stderr
    assert not paths.index_file.exists() and not any(s.encode() in data_bytes(paths) for s in SECRETS)
    assert "encrypted with SQLCipher" in run("doctor").stdout
    assert export(paths) == before
    # A wrong passphrase, or none, fails with one clear sentence.
    monkeypatch.setenv("COMPANION_PASSPHRASE", "not the passphrase")
    assert_clean_error(run("memory", "list"), "does not open with this key or passphrase")
    monkeypatch.delenv("COMPANION_PASSPHRASE")
    assert_clean_error(run("memory", "list"), "needs a passphrase")
    monkeypatch.setenv("COMPANION_PASSPHRASE", PASSPHRASE)
    assert_clean_error(run("memory", "encrypt"), "already encrypted")
    result = run("memory", "decrypt", "--yes")
    assert result.returncode == 0, result.stderr
    assert export(paths) == before
    monkeypatch.delenv("COMPANION_PASSPHRASE")
    assert run("memory", "list").returncode == 0
    assert_clean_error(run("memory", "decrypt", "--yes"), "not encrypted")


def test_a_short_passphrase_is_refused_and_nothing_changes(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remember(paths, tmp_path)
    monkeypatch.setenv("COMPANION_PASSPHRASE", "short")
    assert_clean_error(run("memory", "encrypt"), "too short")
    assert SECRETS[0].encode() in paths.database.read_bytes()
    assert [p.name for p in paths.data_dir.iterdir() if "crypt" in p.name] == []


def test_keyring_key_unlocks_without_a_passphrase(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The keyring backend is chosen when a process starts: these commands run as processes of their own.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.keyring_backend.FileKeyring")
    monkeypatch.setenv("COMPANION_TEST_KEYRING", str(tmp_path / "keyring.json"))
    monkeypatch.setenv(
        "PYTHONPATH", str(Path(__file__).resolve().parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    remember(paths, tmp_path)
    before = export(paths, run_process)
    result = run_process("memory", "encrypt")
    assert result.returncode == 0 and "OS keyring" in result.stdout, result.stderr
    stored = json.loads((tmp_path / "keyring.json").read_text())
    (key,) = stored.values()
    assert len(key) == 64 and key.encode() not in data_bytes(paths)  # the key is in the keyring, not on disk
    assert not any(s.encode() in data_bytes(paths) for s in SECRETS)
    assert export(paths, run_process) == before
    (tmp_path / "keyring.json").write_text("{}")  # the keyring lost the key: a clear message
    assert_clean_error(run_process("memory", "list"), "not in the OS keyring")
    (tmp_path / "keyring.json").write_text(json.dumps(stored))
    assert run_process("memory", "decrypt", "--yes").returncode == 0
    assert json.loads((tmp_path / "keyring.json").read_text()) == {}


def test_exports_are_sealed_with_encrypt_and_warn_without(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remember(paths, tmp_path)
    plain = run("memory", "export", "-o", str(tmp_path / "plain.json"))
    assert plain.returncode == 0 and "plain text" in plain.stderr
    monkeypatch.setenv("COMPANION_PASSPHRASE", PASSPHRASE)
    sealed = tmp_path / "sealed.json"
    result = run("memory", "export", "-o", str(sealed), "--encrypt")
    assert result.returncode == 0 and "encrypted" in result.stderr
    assert not any(s.encode() in sealed.read_bytes() for s in SECRETS)
    # Into a new memory file: the wrong passphrase imports nothing, the right one everything.
    monkeypatch.setenv("COMPANION_HOME", str(tmp_path / "other"))
    monkeypatch.setenv("COMPANION_PASSPHRASE", "wrong passphrase")
    assert_clean_error(run("memory", "import", str(sealed)), "does not open this export")
    assert (
        "0 messages" in run("memory", "stats").stdout
        or json.loads(run("memory", "stats", "--json").stdout)["messages"] == 0
    )
    monkeypatch.setenv("COMPANION_PASSPHRASE", PASSPHRASE)
    result = run("memory", "import", str(sealed))
    assert result.returncode == 0, result.stderr
    assert SECRETS[1] in run("memory", "export").stdout


def test_a_symlinked_memory_file_is_not_encrypted_around(
    paths: Paths, tmp_path: Path, with_passphrase: None
) -> None:
    """Encrypting through a link would replace the link and leave the whole plaintext where it points."""
    remember(paths, tmp_path)
    real = tmp_path / "elsewhere" / "memory.db"
    real.parent.mkdir()
    paths.database.rename(real)
    paths.database.symlink_to(real)
    assert_clean_error(run("memory", "encrypt"), "symbolic link", "COMPANION_HOME")
    assert paths.database.is_symlink() and SECRETS[0].encode() in real.read_bytes()
    assert "not encrypted" in run("doctor").stdout


def test_encrypt_leaves_no_vector_file_in_the_clear(
    paths: Paths, tmp_path: Path, with_passphrase: None
) -> None:
    """The index's delta and a save's leftover .part hold embeddings too: encrypt removes every one."""
    remember(paths, tmp_path)
    assert run("memory", "search", "cat name").returncode == 0  # writes the index file
    delta = paths.index_file.with_name(paths.index_file.name + ".delta")
    part = paths.index_file.with_name(f".{paths.index_file.name}.x1y2.part")
    delta.write_bytes(b"vectors in the clear")
    part.write_bytes(b"vectors in the clear")
    assert run("memory", "encrypt").returncode == 0
    assert [p.name for p in paths.data_dir.iterdir() if "faiss" in p.name] == []


def test_a_save_cut_short_is_reported_and_cleared(paths: Paths, tmp_path: Path) -> None:
    """kill -9 during an index save leaves a .part with the vectors: doctor says so, the next start removes it."""
    remember(paths, tmp_path)
    assert run("memory", "search", "cat name").returncode == 0
    part = paths.index_file.with_name(f".{paths.index_file.name}.k9k9.part")
    part.write_bytes(b"\x01" * 4096)
    os.utime(part, (1_000_000_000, 1_000_000_000))  # long ago: no save is writing it now
    fresh = paths.index_file.with_name(f".{paths.index_file.name}.now1.part")
    fresh.write_bytes(b"\x01")  # another process's save in progress: left alone
    doctor = run("doctor").stdout
    assert "cut short" in doctor and part.name in doctor and fresh.name not in doctor
    assert run("memory", "search", "cat name").returncode == 0
    assert not part.exists() and fresh.exists()
    assert "no leftovers of an interrupted save" in run("doctor").stdout


def test_a_command_that_waits_out_an_encrypt_opens_the_file_as_it_is_after(
    paths: Paths, tmp_path: Path, with_passphrase: None
) -> None:
    """Another process encrypts while a command starts: the command waits for the rewrite and then opens the
    encrypted file with the passphrase that is set (its key is chosen after the wait, not before)."""
    import subprocess
    import sys
    import time

    remember(paths, tmp_path)
    code = (
        "import sys, time\n"
        "from companion.memory.db import cipher\n"
        "copy = cipher.copy_with_key\n"
        "def slow(*a, **k):\n"
        "    print('rewriting', flush=True); time.sleep(4); return copy(*a, **k)\n"
        "cipher.copy_with_key = slow\n"
        "from companion.cli import main\n"
        "sys.argv = ['companion', 'memory', 'encrypt', '--passphrase']\n"
        "main()\n"
    )
    encrypting = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    assert encrypting.stdout is not None and encrypting.stdout.readline().strip() == "rewriting"
    time.sleep(0.5)
    waited = run_process("memory", "list")
    out, errors = encrypting.communicate(timeout=120)
    assert encrypting.returncode == 0, errors
    assert waited.returncode == 0, waited.stderr
    assert SECRETS[2] in waited.stdout


def test_a_passphrase_too_short_is_refused_before_it_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from companion.errors import CompanionError
    from companion.memory.encryption import passphrase

    monkeypatch.delenv("COMPANION_PASSPHRASE", raising=False)
    asked: list[str] = []

    def typed(prompt: str) -> str:
        asked.append(prompt)
        return "abc"

    with pytest.raises(CompanionError, match="too short"):
        passphrase(typed, "Choose a passphrase: ", confirm=True)
    assert asked == ["Choose a passphrase: "]


def test_a_mistyped_passphrase_at_start_is_asked_again(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typed at the terminal (the app's start, `chat`), a passphrase that does not open the file is asked
    again, three times in all; from COMPANION_PASSPHRASE it fails at once (see above)."""
    from companion import config
    from companion.errors import CompanionError
    from companion.memory import open_memory

    remember(paths, tmp_path)
    monkeypatch.setenv("COMPANION_PASSPHRASE", PASSPHRASE)
    assert run("memory", "encrypt").returncode == 0
    monkeypatch.delenv("COMPANION_PASSPHRASE")
    prompts: list[str] = []
    answers = iter(["not it", PASSPHRASE])

    def typed(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    memory = open_memory(paths, config.Settings().memory, typed)
    assert memory.store.count("messages") > 0
    memory.close()
    assert prompts == [
        "Passphrase for the memory file: ",
        "That passphrase does not open the memory file; type it again: ",
    ]
    prompts.clear()
    with pytest.raises(CompanionError, match="does not open with this key or passphrase"):
        open_memory(paths, config.Settings().memory, lambda prompt: prompts.append(prompt) or "wrong")  # type: ignore[func-returns-value]
    assert len(prompts) == 3
