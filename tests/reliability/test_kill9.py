"""SIGKILL at random (seeded) moments of each long operation — a reply, an import, a consolidation job, a
migration — loses nothing that was committed, leaves a database that passes `PRAGMA integrity_check`, and the
next start recovers by itself (the index is rebuilt, pending jobs run, migrations finish).

Each operation runs in a child process that prints READY right before the operation starts (after its imports),
so the kill lands inside the operation and not in interpreter start-up."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from companion.memory.tables import messages as message_table
from companion.memory.tables import sessions as session_table
from companion.paths import Paths

KILLS = 3  # per operation: bounded in count and time
SEED = 20261126


def child(code: str, kill_after: float | None, timeout: float = 300) -> tuple[int, float]:
    """Run `code` in a child; SIGKILL it `kill_after` seconds after it says READY. (returncode, seconds run)."""
    script = "import sys\n" + code
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "READY", (line, process.stderr.read() if process.stderr else "")
    started = time.perf_counter()
    if kill_after is None:
        _, stderr = process.communicate(timeout=timeout)
        assert process.returncode == 0, stderr[-2000:]
        return 0, time.perf_counter() - started
    try:
        process.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    process.communicate()
    return process.returncode, time.perf_counter() - started


def check(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db)
    assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
    return conn


REPLY = """
from companion import config
from companion.engine import Engine
engine = Engine(config.load())
engine.load_model()
engine.memory.ready()  # as the app does at start: recall does not load the embedder mid-turn
print("READY", flush=True)
text = sys.argv[1] if len(sys.argv) > 1 else "Tell me a very long story about the sea and the stars."
turn = engine.send(text, max_tokens=int(600), seed=1, temperature=1.0)
for piece in turn:
    pass
engine.close()
"""


def test_kill_during_a_reply_keeps_every_committed_message(demo_home: Paths) -> None:
    rng = random.Random(SEED)
    _, full = child(REPLY, None)
    killed = 0
    for _ in range(KILLS):
        before = (
            check(demo_home.database).execute("select id, role, text from messages order by id").fetchall()
        )
        delay = rng.uniform(0.05, full * 0.9)
        code, _ = child(REPLY, delay)
        killed += code == -signal.SIGKILL
        after = (
            check(demo_home.database).execute("select id, role, text from messages order by id").fetchall()
        )
        assert after[: len(before)] == before, "a committed message was lost"
        if code == -signal.SIGKILL:  # killed in the turn: the user's message was committed before generation
            assert after[len(before)][1:] == (
                "user",
                "Tell me a very long story about the sea and the stars.",
            )
            drafts = (
                check(demo_home.database)
                .execute("select role, incomplete from messages where id > ?", (after[len(before)][0],))
                .fetchall()
            )
            # Nothing yet, what was said so far (saved each second, marked), or — when the model stopped at a
            # speaker's name sooner than in the first run and the kill came after — the whole reply.
            assert drafts in ([], [("assistant", 1)], [("assistant", 0)])
            if delay > 2.5:  # a second and more into the reply: what was said is kept
                assert drafts
    assert killed, "no kill landed inside a reply"
    # The next start works, recalls, and answers.
    child(REPLY, None)
    rows = check(demo_home.database).execute("select role from messages order by id desc limit 2").fetchall()
    assert rows == [("assistant",), ("user",)]


IMPORT = """
from pathlib import Path
from companion import config
from companion.memory.operations import LongTermMemory
from companion.memory.portability.imports import import_file
from companion.memory.db.store import Store
from companion.paths import get_paths
paths = get_paths().ensure()
store = Store(paths.database)
memory = LongTermMemory(store, paths.index_file)
memory.embedder.load() if hasattr(memory.embedder, "load") else None
print("READY", flush=True)
print(import_file(memory, Path(sys.argv[1] if len(sys.argv) > 1 else "LOG"), "jsonl"))
memory.close(); store.close()
"""


def test_kill_during_an_import_leaves_all_or_nothing(paths: Paths, tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    log = tmp_path / "big.jsonl"
    with log.open("w") as out:
        for i in range(3000):
            out.write(
                json.dumps(
                    {
                        "session": f"s{i // 50}",
                        "time": f"2026-01-01T{(i // 60) % 24:02d}:{i % 60:02d}:00",
                        "role": "user" if i % 2 == 0 else "assistant",
                        "text": f"Line {i} about tea, cats and the river.",
                        "id": f"m{i}",
                    }
                )
                + "\n"
            )
    code = IMPORT.replace('"LOG"', repr(str(log)))
    from companion.memory.db.store import Store

    Store(paths.database).close()
    _, full = child(code, None)
    conn = check(paths.database)
    total = conn.execute("select count(*) from messages").fetchone()[0]
    assert total == 3000
    conn.execute("delete from messages")  # start again from an empty log, keeping the schema
    conn.execute("delete from sessions")
    conn.execute("delete from vectors")
    conn.commit()
    conn.close()
    killed = 0
    for _ in range(KILLS):
        killed += child(code, rng.uniform(0.05, full * 0.9))[0] == -signal.SIGKILL
        count = check(paths.database).execute("select count(*) from messages").fetchone()[0]
        assert count in (0, 3000), f"a partial import: {count} messages"
    assert killed, "no kill landed inside the import"
    child(code, None)  # importing again finishes (or skips what is there) and the index is complete
    conn = check(paths.database)
    assert conn.execute("select count(*) from messages").fetchone()[0] == 3000
    vectors = conn.execute("select count(distinct item_id) from vectors where kind = 'message'").fetchone()[0]
    assert vectors == 3000


CONSOLIDATE = """
import time
from datetime import UTC, datetime, timedelta
from companion.memory.upkeep import scheduler
from companion.memory.operations import LongTermMemory
from companion.memory.db.store import Store
from companion.paths import get_paths
from tests.scripted import ScriptedModel


class SlowModel(ScriptedModel):  # a model that takes its time, so the kill lands mid-job
    def complete_json(self, messages, schema, options):
        time.sleep(0.3)
        return super().complete_json(messages, schema, options)


facts = {"facts": [{"text": "Ana adopted a cat called Miso.", "turns": [1], "importance": 3, "date": "", "future": False},
                   {"text": "Ana works as a nurse in Porto.", "turns": [3], "importance": 4, "date": "", "future": False}]}
model = SlowModel(answers={"summary": [{"summary": "Ana talked about her cat Miso and her work."}], "facts": [facts],
                           "action": [{"action": "NOOP", "fact": 1, "text": ""}], "traits": [{"traits": ["caring"]}]})
paths = get_paths().ensure()
store = Store(paths.database)
memory = LongTermMemory(store, paths.index_file)
memory.ready()
print("READY", flush=True)
out = scheduler.run_jobs(memory, datetime.now(UTC) + timedelta(days=1), only="consolidate", force=True,
                         options=scheduler.UpkeepOptions(model=lambda: model, idle_minutes=1, user="Ana"))
print(out)
memory.close()
"""


def test_kill_during_consolidation_loses_nothing_and_resumes(paths: Paths, tmp_path: Path) -> None:
    demo_home = paths  # the model is scripted (and slow on purpose): what is tested is the file
    from companion.memory.db.store import Store

    rng = random.Random(SEED + 2)
    store = Store(demo_home.database)
    for s in range(4):
        session = session_table.new(store)
        for i, text in enumerate(
            ["I adopted a cat called Miso.", "She sleeps on my desk all day.", "I work as a nurse in Porto."]
        ):
            message_table.add(store, session, "user" if i % 2 == 0 else "assistant", f"{text} ({s})")
        session_table.close(store, session)
    store.close()
    messages = check(demo_home.database).execute("select id, text from messages order by id").fetchall()
    killed = 0
    for _ in range(KILLS):
        killed += child(CONSOLIDATE, rng.uniform(0.2, 2.5))[0] == -signal.SIGKILL
        conn = check(demo_home.database)
        assert conn.execute("select id, text from messages order by id").fetchall() == messages
        for (memory_id,) in conn.execute(
            "select id from memories"
        ):  # no half-written memory: each has its audit entry
            assert (
                conn.execute(
                    "select count(*) from audit where target = 'memory' and target_id = ?", (memory_id,)
                ).fetchone()[0]
                >= 1
            )
    assert killed, "no kill landed inside consolidation"
    child(CONSOLIDATE, None, timeout=600)  # the next run picks up what is left
    conn = check(demo_home.database)
    done = [
        json.loads(v)["last_message"]
        for (v,) in conn.execute("select value from meta where key like 'consolidated.session.%'")
    ]
    assert len(done) == 4


MIGRATE = """
from companion.memory.db.store import Store
from companion.paths import get_paths
print("READY", flush=True)
Store(get_paths().ensure().database).close()
"""


def test_kill_during_a_migration_leaves_the_old_or_the_new_schema(paths: Paths) -> None:
    import sqlite_utils

    from companion.memory.db.schema import MIGRATIONS

    rng = random.Random(SEED + 3)
    db = sqlite_utils.Database(paths.database)
    MIGRATIONS[0](db)
    db.conn.execute("pragma user_version = 1")
    db.conn.execute("insert into sessions (id, started_at) values (1, '2026-01-01T00:00:00')")
    db.conn.executemany(
        "insert into messages (session_id, role, text, created_at) values (1, 'user', ?, '2026-01-01T00:00:00')",
        [(f"message {i} about the river, the tea and the cello {i * 7}",) for i in range(150_000)],
    )
    db.conn.commit()
    db.conn.close()
    os.chmod(paths.database, 0o600)
    sizes = set()
    killed = 0
    for _ in range(KILLS):
        killed += child(MIGRATE, rng.uniform(0.05, 1.5))[0] == -signal.SIGKILL
        conn = check(paths.database)
        version = conn.execute("pragma user_version").fetchone()[0]
        sizes.add(version)
        assert conn.execute("select count(*) from messages").fetchone()[0] == 150_000
        if version >= 2:
            assert (
                conn.execute("select count(*) from messages_fts where messages_fts match 'cello'").fetchone()[
                    0
                ]
                == 150_000
            )
        conn.close()
    assert killed, "no kill landed inside the migration"
    child(MIGRATE, None)  # the next start finishes the migrations
    conn = check(paths.database)
    assert conn.execute("pragma user_version").fetchone()[0] == len(MIGRATIONS)
    assert (
        conn.execute("select count(*) from messages_fts where messages_fts match 'river'").fetchone()[0]
        == 150_000
    )
