"""Two companion processes on one memory file are normal use: the app and `companion maintain` from cron, two
imports, a chat, an encrypt. Real processes, one home."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from companion.paths import Paths

HOLD = """
import sys
sys.argv = ["companion", "memory", "import"]  # what this process says it is, in the lock's notes
from companion import config
from companion.memory import open_memory
from companion.paths import get_paths
paths = get_paths().ensure()
memory = open_memory(paths, config.load(paths).memory)
print("READY", flush=True)
sys.stdin.readline()
memory.close()
"""


def companion(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "companion", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def finish(
    process: subprocess.Popen[str], stdin: str | None = None, timeout: float = 600
) -> tuple[int, str, str]:
    out, err = process.communicate(stdin, timeout=timeout)
    return process.returncode, out, err


def log_file(path: Path, sessions: int, turns: int, tag: str) -> Path:
    rows = [
        {
            "session": f"{tag}-{s}",
            "time": f"2023-05-{s + 1:02d}T10:{t // 60:02d}:{t % 60:02d}",
            "role": "user" if t % 2 == 0 else "assistant",
            "text": f"{tag} session {s} turn {t}: I talked about the garden, the cat and the sea.",
            "id": f"{tag}-{s}-{t}",
        }
        for s in range(sessions)
        for t in range(turns)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def messages(paths: Paths) -> int:
    with sqlite3.connect(paths.database) as conn:
        return int(conn.execute("select count(*) from messages").fetchone()[0])


def test_encrypt_waits_for_no_one_and_names_who_has_the_file_open(paths: Paths) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "READY"
    env = {"COMPANION_PASSPHRASE": "correct horse battery"}
    code, _, err = finish(companion("memory", "encrypt", "--passphrase", env=env))
    assert code == 1 and "Traceback" not in err
    assert "`companion memory import`" in err and f"pid {holder.pid}" in err and "Nothing was changed" in err
    assert paths.database.read_bytes().startswith(b"SQLite format 3\x00")
    assert not list(paths.data_dir.glob("memory.db.*crypting"))
    holder.communicate("\n", timeout=60)
    code, out, err = finish(companion("memory", "encrypt", "--passphrase", env=env))
    assert code == 0, err
    assert "encrypted with SQLCipher" in out


def test_the_same_file_imported_twice_at_once_is_imported_once(paths: Paths, tmp_path: Path) -> None:
    log = log_file(tmp_path / "log.jsonl", sessions=6, turns=50, tag="a")
    first, second = companion("memory", "import", str(log)), companion("memory", "import", str(log))
    results = [finish(first), finish(second)]
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    assert messages(paths) == 300
    imported = sorted(int(out.split()[1]) for _, out, _ in results)
    assert imported in ([0, 300], [300, 0])  # one wrote it, the other found it there


def test_commands_on_a_brand_new_home_at_once(paths: Paths) -> None:
    paths.database.unlink(missing_ok=True)
    start = time.time() + 4  # every process opens the new file at about the same moment
    code = (
        "import time, sys\n"
        f"time.sleep(max(0, {start} - time.time()))\n"
        "from companion.cli import main\n"
        "sys.argv = ['companion', 'persona', 'list']\n"
        "main()\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in processes]
    assert all(rc == 0 for _, _, rc in results), [err for _, err, _ in results]
    assert all("Sam" in out for out, _, _ in results)
    with sqlite3.connect(paths.database) as conn:
        assert conn.execute("select count(*) from personas").fetchone()[0] == 1
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"


def test_many_opens_of_a_brand_new_file_at_the_same_moment(tmp_path: Path) -> None:
    """Every opener of a new file sees it whole: never another application's file half-way through the first
    opener's migrations, never "database is locked" while another switches it to WAL. Threads here (each its own
    SQLite connection and its own lock handle, as separate processes have), many rounds, to meet the race."""
    import threading

    from companion.errors import CompanionError
    from companion.memory.db.store import Store

    failures: list[str] = []
    for round_ in range(40):
        database = tmp_path / f"round-{round_}" / "memory.db"
        start = threading.Barrier(6)

        def open_it(database: Path = database, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                store = Store(database)
                with store.transaction() as conn:
                    conn.execute("select count(*) from messages").fetchone()
                store.close()
            except CompanionError as error:
                failures.append(str(error))

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


@pytest.mark.slow
def test_imports_a_chat_upkeep_and_an_encrypt_at_once(demo_home: Paths, tmp_path: Path) -> None:
    """Two imports (one file twice), a chat with the demo model, upkeep, and an encrypt that refuses while
    they run and succeeds once they end. Nothing is lost or doubled; the file is sound."""
    env = {"COMPANION_PASSPHRASE": "correct horse battery"}
    first = log_file(tmp_path / "first.jsonl", sessions=4, turns=60, tag="a")
    second = log_file(tmp_path / "second.jsonl", sessions=3, turns=40, tag="b")
    subprocess.run([sys.executable, "-m", "companion", "config", "set", "chat.max_tokens", "8"], check=True)
    running = [
        companion("memory", "import", str(first)),
        companion("memory", "import", str(first)),
        companion("memory", "import", str(second)),
        companion("chat", "--plain"),
        companion("maintain"),  # every job; consolidation of the demo (base) model's sessions is extractive
    ]
    said = ["Hello, I am Ana.", "I like the garden.", "Tell me something kind."]
    assert running[3].stdin is not None
    running[3].stdin.write("\n".join(said) + "\n")
    running[3].stdin.flush()
    time.sleep(3)
    refused = finish(companion("memory", "encrypt", "--passphrase", env=env))
    results = [finish(p, stdin=None) for p in running]
    assert all(code == 0 for code, _, _ in results), [err[-500:] for _, _, err in results]
    assert refused[0] == 1 and "has it open" in refused[2] and "Traceback" not in refused[2]
    assert messages(demo_home) == 240 + 120 + 2 * len(said)
    code, out, err = finish(companion("memory", "encrypt", "--passphrase", env=env))
    assert code == 0, err
    key = "PRAGMA key = 'correct horse battery'"
    from companion.memory.db.cipher import cipher_module

    conn = cipher_module().connect(str(demo_home.database))
    conn.execute(key)
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert conn.execute("select count(*) from messages").fetchone()[0] == 240 + 120 + 2 * len(said)
    conn.close()


def test_a_memory_edited_by_another_process_is_recalled_by_its_new_text(paths: Paths) -> None:
    """The app has the index open; `companion memory edit` in a shell rewrites a memory's vector under its own
    key. The app's next search scores the new text (not the old vector it held), and a save by the app does not
    put the old vector back in the index file every later process opens."""
    from companion import config
    from companion.memory import open_memory

    def cosine(hits: list[dict[str, object]], memory_id: int) -> float:
        found = [h for h in hits if h["kind"] == "note" and h["id"] == memory_id]
        assert found, hits
        features = found[0]["features"]
        assert isinstance(features, dict)
        return float(features["cosine"])

    for text in ("I love drinking green tea every morning", "My sister lives in Lisbon"):
        assert finish(companion("memory", "add", text))[0] == 0
    app = open_memory(paths.ensure(), config.load(paths).memory)
    try:
        app.ready()
        query = "Do I have a dog called Rex?"
        before = app.search(query, limit=5, everything=True)  # the index is open and holds every vector
        code, _, err = finish(companion("memory", "edit", "1", "I adopted a dog named Rex last spring"))
        assert code == 0, err
        q = app.embedder.encode_one(query)
        new = float(app.embedder.encode_one("I adopted a dog named Rex last spring") @ q)
        old = float(app.embedder.encode_one("I love drinking green tea every morning") @ q)
        assert abs(new - old) > 0.2
        assert abs(cosine([h.__dict__ for h in before], 1) - old) < 1e-3
        assert abs(cosine([h.__dict__ for h in app.search(query, limit=5, everything=True)], 1) - new) < 1e-3
        app.add_note("I work as a nurse at the hospital")  # the app writes, and saves its index
    finally:
        app.close()
    code, out, err = finish(companion("memory", "search", query, "--json", "--all"))
    assert code == 0, err
    assert abs(cosine(json.loads(out), 1) - new) < 1e-3
