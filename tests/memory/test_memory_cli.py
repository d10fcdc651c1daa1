"""`companion memory …` as a user types it, in subprocesses over a real memory file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_cli import assert_clean_error


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "companion", "memory", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )


def test_import_search_show_export(log_file: Path, tmp_path: Path, home: Path) -> None:
    result = run("import", str(log_file))
    assert result.returncode == 0, result.stderr
    assert "Imported 11 messages in 3 new sessions" in result.stdout
    assert "Traceback" not in result.stderr

    hits = json.loads(run("search", "what is my cat called", "--json", "--limit", "3").stdout)
    assert {"id", "kind", "text", "score", "time", "source_ids"} <= set(hits[0])
    assert "D1:1" in [s for h in hits for s in h["source_ids"]]

    queries = tmp_path / "q.txt"
    queries.write_text("cat name\nwedding in Porto\n\nsurf lessons\n")
    lines = run("search", "--queries", str(queries), "--limit", "2").stdout.splitlines()
    assert len(lines) == 4 and json.loads(lines[2]) == []
    assert all(isinstance(json.loads(line), list) for line in lines)

    text = run("search", "surfing", "--now", "2023-06-27").stdout
    assert "message:" in text and "surfing lessons" in text

    # What the chat would recall: nothing for a word no message holds; --all shows the ranking anyway.
    assert run("search", "quokkazanzibar").stdout.strip() == "Nothing relevant remembered."
    assert json.loads(run("search", "quokkazanzibar", "--json").stdout) == []
    ranking = json.loads(run("search", "quokkazanzibar", "--json", "--all").stdout)
    assert ranking and not any(h["relevant"] for h in ranking)
    assert {"cosine", "cover", "unknown", "stranger"} <= set(ranking[0]["features"]) and ranking[0]["why"]
    listed = run("search", "quokkazanzibar", "--all").stdout
    assert listed.count("✗") == len(ranking) and "the chat would recall nothing" in listed

    stats = run("stats").stdout
    assert "11 messages in 3 sessions" in stats and "exact (flat)" in stats

    added = run("add", "Ana's favourite colour is teal")
    memory_id = added.stdout.split()[-1].rstrip(".")
    assert run("pin", memory_id).returncode == 0
    assert run("edit", memory_id, "Ana's favourite colour is dark teal").returncode == 0
    shown = run("show", memory_id).stdout
    assert "dark teal" in shown and "pinned" in shown and "update" in shown
    assert "Ana" in run("show", "message:1").stdout
    assert memory_id in run("list").stdout
    assert "message:1" in run("list", "--session", "1").stdout

    out = tmp_path / "journal.md"
    assert run("export", "--format", "markdown", "-o", str(out)).returncode == 0
    assert "dark teal" in out.read_text() and out.stat().st_mode & 0o077 == 0
    jsonl = run("export", "--format", "jsonl").stdout
    assert len(jsonl.splitlines()) == 11


def test_forget_needs_confirmation(log_file: Path) -> None:
    run("import", str(log_file))
    assert_clean_error(run("forget", "--matching", "password", stdin=""), "add --yes")
    assert "password" in run("search", "password").stdout
    result = run("forget", "--matching", "password", "--yes")
    assert result.returncode == 0 and "1 message," in result.stdout
    assert "hunter2" not in run("search", "password", "--limit", "20").stdout
    assert "Nothing matches" in run("forget", "--matching", "no-such-words", "--yes").stdout


def test_a_forgotten_message_leaves_no_summary_that_quotes_it(tmp_path: Path) -> None:
    """Without a model the session's summary is its central sentences word for word: forgetting a message it
    quotes takes the summary with it (it stayed, re-linked, still saying the message and still recalled); one
    it does not quote leaves it."""
    said = [
        ("user", "Ana", "I went hiking in the mountains with my brother."),
        ("assistant", "Sam", "That sounds wonderful. How was the weather?"),
        ("user", "Ana", "I told him I am pregnant with twins."),
        ("assistant", "Sam", "Congratulations to both of you!"),
    ]
    log = tmp_path / "walk.jsonl"
    log.write_text(
        "".join(
            json.dumps({"session": "a", "time": f"2026-11-02T10:0{n}:00", "role": r, "speaker": w, "text": t})
            + "\n"
            for n, (r, w, t) in enumerate(said)
        )
    )
    assert run("import", str(log)).returncode == 0
    done = subprocess.run(
        [sys.executable, "-m", "companion", "maintain", "--only", "consolidate", "--now", "2026-11-05T10:00"],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert "1 summary" in done.stdout, done.stderr
    summary = run("list", "--kind", "summary").stdout
    assert "pregnant with twins" in summary and "weather" not in summary
    shown = run("show", summary.split()[0]).stdout  # its provenance: the messages it quotes
    assert "message:3" in shown and "message:1" in shown and "message:2" not in shown
    kept = run("forget", "message:2", "--yes")
    assert kept.returncode == 0 and "0 memories" in kept.stdout
    assert "pregnant with twins" in run("list", "--kind", "summary").stdout
    assert "(summary)" in run("forget", "message:3").stdout  # the preview names it
    gone = run("forget", "message:3", "--yes")
    assert gone.returncode == 0 and "1 memory" in gone.stdout
    assert "pregnant" not in run("list", "--kind", "summary").stdout
    assert "Nothing relevant remembered" in run("search", "pregnant twins").stdout
    assert "twins" not in run("export", "--format", "jsonl").stdout


def test_bad_memory_commands(tmp_path: Path, log_file: Path) -> None:
    assert_clean_error(run("import", str(tmp_path / "missing.jsonl")), "does not exist")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(log_file.read_text() + "{oops\n")
    assert_clean_error(run("import", str(broken)), "Line 12 is not valid JSON", "nothing was imported")
    assert "0 messages in 0 sessions" in run("stats").stdout
    assert_clean_error(run("show", "42"), "no memory 42")
    assert_clean_error(run("show", "banana"), "not a memory id")
    assert_clean_error(run("search", ""), "Give something to search for")
    assert_clean_error(run("search", "x", "--now", "soon"), "--now 'soon' is not an ISO date")
    assert_clean_error(run("export", "--format", "pdf"), "not an export format")
    assert_clean_error(run("forget"), "Say what to forget")
    assert_clean_error(run("pin", "message:3"), "Messages cannot be pinned")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert_clean_error(run("import", str(binary)), "not UTF-8")


def test_a_forgotten_memorys_id_is_never_given_again(home: Path) -> None:
    from tests.test_cli import run as run_here

    first = run_here("memory", "add", "I keep bees on the roof.")
    second = run_here("memory", "add", "My neighbour is called Rui.")
    assert first.returncode == 0 and second.returncode == 0
    listed = run_here("memory", "list").stdout
    top = max(int(line.split()[0]) for line in listed.splitlines() if line[:1].isdigit())
    assert run_here("memory", "forget", "--matching", "Rui", "--yes").returncode == 0
    assert run_here("memory", "add", "I prefer green tea.").returncode == 0
    after = run_here("memory", "list").stdout
    tea = next(line for line in after.splitlines() if "green tea" in line)
    assert int(tea.split()[0]) == top + 1, after
