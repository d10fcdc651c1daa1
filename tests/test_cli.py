"""The command line as a user types it: real files, one clear sentence on bad input. Commands run in this
process through the same `main()` the `companion` script calls (its error handling included), which saves an
interpreter's start per call; the entry point itself (`python -m companion`, what `--help` imports) runs in
subprocesses."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from companion.paths import Paths


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`companion ARGS` in this process: exit code, stdout and stderr as a subprocess would give them."""
    from companion.cli import main

    out, errors = io.StringIO(), io.StringIO()
    argv, before = sys.argv, sys.stdin
    sys.argv, sys.stdin = ["companion", *args], io.StringIO(stdin or "")
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(errors):
            try:
                main()
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    finally:
        sys.argv, sys.stdin = argv, before
    return subprocess.CompletedProcess(["companion", *args], code, out.getvalue(), errors.getvalue())


def run_process(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`companion ARGS` as its own process (the real entry point)."""
    return subprocess.run(
        [sys.executable, "-m", "companion", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr


def test_version_and_help() -> None:
    assert run_process("--version").stdout.startswith("companion ")
    result = run_process("--help")
    assert result.returncode == 0
    for command in ("chat", "ask", "config", "model", "doctor"):
        assert command in result.stdout


def test_help_imports_no_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from companion.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'llama_cpp', 'textual', 'sentence_transformers', 'faiss') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_engine_and_capabilities_do_not_import_textual() -> None:
    code = "import sys, companion.engine, companion.memory.db.store, companion.llm.models; print('textual' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )


def test_config_commands(home: Path) -> None:
    assert run("config", "set", "chat.temperature", "0.2").returncode == 0
    assert run("config", "get", "chat.temperature").stdout.strip() == "0.2"
    assert "chat.temperature = 0.2" in run("config", "show").stdout
    assert run("config", "path").stdout.strip().startswith(str(home))
    assert_clean_error(run("config", "set", "chat.temperature", "boiling"), "chat.temperature")
    assert_clean_error(run("config", "get", "chat.colour"), "Unknown setting")
    assert run("config", "get", "chat.temperature").stdout.strip() == "0.2"  # nothing changed


def test_model_bad_inputs(tmp_path: Path, home: Path) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a model")
    assert_clean_error(run("model", "add", str(text_file)), "not a GGUF")
    assert_clean_error(run("model", "add", str(tmp_path / "nothing.gguf")), "does not exist")
    assert_clean_error(run("model", "use", "llama-9000"), "no model named 'llama-9000'")
    assert_clean_error(run("ask", "hi", "--model", "llama-9000"), "no model named")
    assert_clean_error(run("model", "pull", "someone/repo", "weights.bin"), "not a .gguf")
    assert not (home / "config" / "config.toml").exists()  # nothing was written


def test_model_add_use_info(demo_home: Paths, demo_gguf: Path) -> None:
    result = run("model", "add", str(demo_gguf), "--name", "gemma-small")
    assert result.returncode == 0, result.stderr
    assert "gemma-small" in run("model", "list").stdout
    assert_clean_error(run("model", "add", str(demo_gguf), "--name", "gemma-small"), "already exists")
    assert run("model", "use", "gemma-small").returncode == 0
    listing = run("model", "list").stdout
    assert "* gemma-small" in listing
    info = run("model", "info").stdout
    assert "architecture: gemma3" in info and "chat_template: none in file" in info


def test_plain_chat_with_stats(demo_home: Paths) -> None:
    result = run(
        "chat",
        "--plain",
        "--stats",
        "--seed",
        "1",
        "--max-tokens",
        "12",
        stdin="Hello, I am Ana.\n\nWhat is my name?\n",
    )
    assert result.returncode == 0, result.stderr
    stats = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [s["turn"] for s in stats] == [1, 2]
    assert stats[1]["cached_tokens"] > 0
    assert result.stdout.endswith("\n\n")


def test_plain_chat_empty_stdin(home: Path) -> None:
    assert_clean_error(run("chat", "--plain", stdin=""), "No message came on stdin")


def test_ask_answers_once(demo_home: Paths) -> None:
    result = run("ask", "Say hello.", "--max-tokens", "8", "--seed", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert_clean_error(run("ask", "   "), "message is empty")


def test_unreachable_remote(home: Path) -> None:
    from tests.conftest import free_port

    run("config", "set", "remote.base_url", f"http://127.0.0.1:{free_port()}/v1")
    run("config", "set", "model.backend", "remote")
    assert_clean_error(run("ask", "hello"), "Cannot reach the remote model server")


@pytest.mark.parametrize("args", [["doctor"]])
def test_doctor_reports_each_part(demo_home: Paths, args: list[str]) -> None:
    result = run(*args)
    for name in ("python", "llama.cpp", "model", "embedding model", "data directory", "keyring"):
        assert f"{name}:" in result.stdout
    assert "CPU build" in result.stdout or "CUDA" in result.stdout
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["frobnicate"], "No such command 'frobnicate'"),
        (["persona", "show"], "Missing argument"),
        (["memory", "show"], "Missing argument"),
        (["config", "set"], "Missing argument"),
        (["maintain", "--now"], "requires an argument"),
        (["memory", "search", "x", "--limit", "abc"], "Invalid value for '--limit'"),
        (["ask", "hi", "--max-tokens", "0"], "Invalid value for '--max-tokens'"),
        (["memory", "list", "--bogus"], "No such option"),
    ],
)
def test_a_typo_is_one_sentence_not_a_traceback(args: list[str], phrase: str, home: Path) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert_clean_error(result, phrase, "--help")


def test_settings_and_counts_read_as_english(home: Path) -> None:
    assert_clean_error(run("config", "set", "chat.max_tokens", "lots"), "needs a whole number, not 'lots'")
    assert_clean_error(run("config", "set", "memory.archive_messages", "maybe"), "needs true or false")
    assert_clean_error(
        run("config", "set", "model.n_ctx", "-5"), "must be between 256 and 1,048,576; got '-5'"
    )
    assert_clean_error(run("config", "set", "chat.temperature", "9"), "must be between 0 and 2;")
    # Whose passphrase is missing is said: an encrypted export's, not the (unencrypted) memory file's.
    assert_clean_error(
        run("memory", "export", "--encrypt", "-o", str(home / "out.bin")),
        "An encrypted export needs a passphrase",
    )
    assert run("memory", "add", "I like tea").returncode == 0
    stats = run("memory", "stats").stdout
    assert "0 messages in 0 sessions" in stats and "1 note" in stats
    assert run("memory", "add", "I like green tea too").returncode == 0
    assert "2 notes" in run("memory", "stats").stdout
