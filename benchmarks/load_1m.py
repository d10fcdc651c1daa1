"""A store of one million messages: file size, start-up, retrieval (quiet and on a busy machine), and chat turns
in the app while the scheduler's jobs run.

    python benchmarks/load_1m.py [--messages 1000000] [--memories 10000] [--queries 200] [--turns 5] [--json]

The store is synthetic (seeded), built the way `memory_scale.py` builds it: Zipf-distributed words (so FTS5 has
realistic posting lists) and random unit vectors (search cost does not depend on what vectors mean), two per
message (the message, and the message with its previous turn). Queries are real sentences embedded by the real
model. Prints:
  * file size (database + WAL, and the saved FAISS index);
  * start-up: the first open, which builds the IVF index from the vectors in SQLite, and a later open, which
    maps the saved index; both to "ready to recall";
  * retrieval p50/p95 end to end (`LongTermMemory.search`, what a chat turn calls), quiet and with a CPU hog
    (another process spinning on one core) while the app's background jobs generate with the demo model in
    this process: each search alone, and each as a chat turn makes it (the jobs pause for the turn);
  * memory: the process's proportional set size (PSS) with the chat's llama.cpp context alone and with the
    background jobs' own context beside it;
  * the app (headless `App.run_test`, demo model) answering N turns while the upkeep jobs (forget over every
    memory, consolidation of pending sessions with the same model, the index job) run in the background,
    against the same turns with nothing in the background (the baseline, same run): time to first token,
    "database is locked" errors (target 0), and the longest stall of the UI event loop, measured as the worst
    lateness of a 20 ms timer (target: no stall a user would notice, under 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_scale import QUERIES, percentile, sentences, vocabulary  # noqa: E402

CHAT = [
    "Hi! Do you remember what I told you about my sister?",
    "I went running by the river this morning.",
    "What book was I reading last month?",
    "My cat knocked a plant over again.",
    "I think I'll cook pasta tonight.",
    "Do you remember the concert in May?",
]


def build(memory: Any, rng: np.random.Generator, n_messages: int, n_memories: int) -> None:
    from companion.memory.records import VARIANT_MEMORY, VARIANT_MESSAGE, VARIANT_MESSAGE_CONTEXT, vector_key

    words = vocabulary(rng)
    dim = memory.embedder.dim
    store = memory.store
    model = memory.embed_model
    per_session, chunk = 50, 50_000
    started = datetime(2024, 11, 26, tzinfo=UTC)
    for base in range(0, n_messages, chunk):
        texts = sentences(rng, words, min(chunk, n_messages - base), QUERIES)
        with store.transaction() as conn:
            for s in range(0, len(texts), per_session):
                n = base + s
                day = started + timedelta(minutes=n)  # two years of conversations, oldest first
                sid = conn.execute(
                    "insert into sessions (title, started_at, ended_at) values (?, ?, ?)",
                    (f"s{n}", day.isoformat(), (day + timedelta(minutes=per_session)).isoformat()),
                ).lastrowid
                rows, previous = [], None
                for i, text in enumerate(texts[s : s + per_session]):
                    rows.append(
                        (
                            sid,
                            "user" if i % 2 == 0 else "assistant",
                            text,
                            (day + timedelta(minutes=i)).isoformat(),
                            f"{previous}\n{text}" if previous else text,
                        )
                    )
                    previous = text
                first = conn.execute("select coalesce(max(id), 0) from messages").fetchone()[0] + 1
                conn.executemany(
                    "insert into messages (session_id, role, text, created_at, context) values (?, ?, ?, ?, ?)",
                    rows,
                )
                # Every session but the newest few is consolidated already: the job has a little work, not 20k.
                conn.execute(
                    "insert or replace into meta (key, value) values (?, ?)",
                    (f"consolidated.session.{sid}", f'{{"last_message": {first + len(rows) - 1}}}'),
                )
            ids = [
                r[0]
                for r in conn.execute(
                    "select id from messages where id > (select coalesce(max(item_id), 0) from vectors where kind = 'message') order by id"
                )
            ]
            for variant in (VARIANT_MESSAGE, VARIANT_MESSAGE_CONTEXT):
                vectors = rng.standard_normal((len(ids), dim)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                conn.executemany(
                    "insert into vectors (key, kind, item_id, variant, model, vector) values (?, 'message', ?, ?, ?, ?)",
                    [
                        (vector_key(m, variant), m, variant, model, v.tobytes())
                        for m, v in zip(ids, vectors, strict=True)
                    ],
                )
        print(f"  built {base + len(texts):>9,} messages", flush=True)
    memory_texts = sentences(rng, words, n_memories, QUERIES)
    with store.transaction() as conn:
        conn.executemany(
            "insert into memories (kind, text, created_at, updated_at, importance, strength, last_recalled_at)"
            " values ('fact', ?, ?, ?, 0.5, 1.0, ?)",
            [
                (t, "2025-06-01T00:00:00+00:00", "2025-06-01T00:00:00+00:00", "2025-06-01T00:00:00+00:00")
                for t in memory_texts
            ],
        )
        ids = [r[0] for r in conn.execute("select id from memories order by id")]
        vectors = rng.standard_normal((len(ids), dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        conn.executemany(
            "insert into vectors (key, kind, item_id, variant, model, vector) values (?, 'memory', ?, ?, ?, ?)",
            [
                (vector_key(m, VARIANT_MEMORY), m, VARIANT_MEMORY, model, v.tobytes())
                for m, v in zip(ids, vectors, strict=True)
            ],
        )
        # The newest three sessions are not consolidated yet: the consolidation job has real work to do.
        conn.execute(
            "delete from meta where key in (select 'consolidated.session.' || id from sessions order by id desc limit 3)"
        )


def open_memory(paths: Any) -> tuple[Any, Any, float]:
    from companion.memory.db.store import Store
    from companion.memory.operations import LongTermMemory

    started = time.perf_counter()
    store = Store(paths.database)
    memory = LongTermMemory(store, paths.index_file)
    memory.ready()
    return store, memory, time.perf_counter() - started  # the index mapped (or built) and ready to search


async def chat_in_app(paths: Any, turns: int, with_jobs: bool) -> dict[str, Any]:
    from companion import config
    from companion.engine import Engine
    from companion.memory.upkeep import scheduler
    from companion.tui.app import CompanionApp

    settings = config.load(paths)
    settings.chat.max_tokens = 32
    settings.chat.seed = 5
    # The jobs ask the model (grammar-constrained JSON), as they do with an instruct model: the demo model
    # would otherwise be consolidated without it, and the contention measured would be none.
    settings.memory.consolidation = "model"
    engine = Engine(settings, paths)
    app = CompanionApp(engine=engine, welcome=False, upkeep=False)
    lateness: list[float] = []
    errors: list[str] = []
    jobs_done: dict[str, str] = {}
    ttfts: list[float] = []
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        expected = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            lateness.append(max(0.0, now - expected[0] - 0.02))
            expected[0] = now

        app.set_interval(0.02, tick)
        worker = None
        if with_jobs:
            options = engine.upkeep_options()

            def run() -> None:
                try:
                    jobs_done.update(
                        scheduler.run_jobs(
                            engine.memory, datetime.now(UTC) + timedelta(hours=3), force=True, options=options
                        )
                    )
                except Exception as error:  # noqa: BLE001 - reported, not raised: the benchmark counts it
                    errors.append(f"{type(error).__name__}: {error}")

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            await pilot.pause(1.0)  # the jobs are under way
        for text in CHAT[:turns]:
            composer: Any = app.chat.query_one("#composer")
            composer.text = text
            composer.focus()
            await pilot.press("enter")
            while app.chat.busy or app.engine.last_turn is None or app.engine.last_turn.reply_id is None:
                await pilot.pause(0.02)
            ttfts.append(app.engine.last_turn.stats.ttft_ms)
        if worker is not None:
            while worker.is_alive():
                await pilot.pause(0.2)
    replies = engine.store.conn.execute(
        "select text from messages where role = 'assistant' order by id desc limit ?", (turns,)
    ).fetchall()
    engine.close()
    for outcome in jobs_done.values():
        if "locked" in outcome:
            errors.append(outcome)
    return {
        "ttft_p50": statistics.median(ttfts),
        "ttft_max": max(ttfts),
        "stall_max_ms": max(lateness) * 1000 if lateness else 0.0,
        "stall_p99_ms": percentile([x * 1000 for x in lateness], 99) if lateness else 0.0,
        "errors": errors,
        "jobs": jobs_done,
        "replies": len(replies),
    }


def busy_machine(paths: Any, memory: Any, queries: list[str]) -> tuple[list[float], list[float]]:
    """Recall times while another process spins on one core and the app's background jobs generate on their
    own llama.cpp context in this process (grammar-constrained answers to a long prompt, as consolidation
    asks): first each search alone (the jobs go on generating through it), then each search as a chat turn
    makes it (`model.chat_turn()` held around it: the jobs pause at their next step)."""
    import subprocess

    from companion import config
    from companion.errors import CompanionError
    from companion.llm.base import ChatMessage, GenerationOptions
    from companion.llm.models import open_model

    model = open_model(config.load(paths), paths)
    stop = threading.Event()
    prompt = [ChatMessage("user", "Summarise this conversation: " + " ".join(CHAT * 8))]
    schema = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}

    def generate() -> None:
        while not stop.is_set():
            with contextlib.suppress(CompanionError):  # a slow answer, or the end of the run
                model.complete_json(prompt, schema, GenerationOptions(max_tokens=64))

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    writer = threading.Thread(target=generate, daemon=True)
    writer.start()
    time.sleep(1.0)
    try:
        alone = timed_searches(memory, queries)
        as_turn = timed_searches(memory, queries, hold=model.chat_turn)
        return alone, as_turn
    finally:
        stop.set()
        hog.kill()
        model.abort_jobs()
        writer.join()
        model.close()


def timed_searches(memory: Any, queries: list[str], hold: Any = None) -> list[float]:
    """Milliseconds per search; `hold` (a model's `chat_turn`) is taken before each and let go after, as
    the engine does for a message."""
    times = []
    for q in queries:
        t = time.perf_counter()
        release = hold() if hold is not None else None
        memory.search(q, limit=10, now=datetime.now(UTC))
        if release is not None:
            release()
        times.append((time.perf_counter() - t) * 1000)
        if hold is not None:
            time.sleep(0.05)  # the jobs go on between messages
    return times


def jobs_context_pss(paths: Any) -> tuple[float, float]:
    """The process's PSS (MiB) with the chat model loaded, then with the jobs' context beside it."""
    import psutil

    from companion import config
    from companion.llm.base import ChatMessage, GenerationOptions
    from companion.llm.models import open_model

    # Each context evaluates a job-sized prompt first (about 1,500 tokens): KV pages count once written to.
    prompt = [ChatMessage("user", " ".join(CHAT * 40), name="Ana")]
    options = GenerationOptions(max_tokens=8, seed=1)
    process = psutil.Process()
    model = open_model(config.load(paths), paths)
    list(model.stream(prompt, options))
    alone = process.memory_full_info().pss / 2**20
    list(model.for_jobs().stream(prompt, options))
    both = process.memory_full_info().pss / 2**20
    model.close()
    return alone, both


async def time_to_typing(paths: Any) -> float:
    """Seconds from creating the app (the memory file opened) to a composer that takes keys."""
    from companion import config
    from companion.engine import Engine
    from companion.tui.app import CompanionApp

    started = time.perf_counter()
    engine = Engine(config.load(paths), paths)
    app = CompanionApp(engine=engine, welcome=False, upkeep=False)
    async with app.run_test(size=(100, 30)) as pilot:
        composer: Any = app.chat.query_one("#composer")
        while not (app.focused is composer and not composer.disabled):
            await pilot.pause(0.01)
        ready = time.perf_counter() - started
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
    engine.close()
    return ready


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    os.environ["COMPANION_HOME"] = tempfile.mkdtemp(prefix="companion-load-")
    from companion.llm.models import ensure_demo_model
    from companion.memory.recall.retrieve import query_terms  # noqa: F401 - the retrieval module, loaded before timing
    from companion.paths import get_paths

    paths = get_paths().ensure()
    ensure_demo_model(paths)
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    from companion.memory.db.store import Store
    from companion.memory.operations import LongTermMemory

    store = Store(paths.database)
    memory = LongTermMemory(store, paths.index_file)
    build(memory, rng, args.messages, args.memories)
    memory.close()
    print(
        f"built {args.messages:,} messages + {args.memories:,} memories in {time.perf_counter() - t0:.0f} s"
    )

    _, memory, first_open = open_memory(paths)
    memory.close()
    store, memory, later_open = open_memory(paths)
    db_bytes = sum(p.stat().st_size for p in paths.data_dir.glob("memory.db*"))
    index_bytes = sum(p.stat().st_size for p in paths.data_dir.glob("memory.faiss*"))
    print(
        f"file: {db_bytes / 2**30:.2f} GiB database, {index_bytes / 2**30:.2f} GiB saved index ({memory.stats()['index_kind']})"
    )
    print(
        f"start-up to ready to recall: first open (builds the index) {first_open:.1f} s; later opens "
        f"({memory.index.state}) {later_open:.2f} s"
    )

    queries = [QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" {i}") for i in range(args.queries)]
    memory.search(queries[0], limit=10)
    quiet_times = timed_searches(memory, queries)
    busy_times, turn_times = busy_machine(paths, memory, queries)
    print(
        f"retrieval over {args.messages * 2 + args.memories:,} vectors: p50 {statistics.median(quiet_times):.1f} ms, "
        f"p95 {percentile(quiet_times, 95):.1f} ms; with a CPU hog and the jobs generating: p50 "
        f"{statistics.median(busy_times):.1f} ms, p95 {percentile(busy_times, 95):.1f} ms "
        f"(p95 busy / quiet {percentile(busy_times, 95) / percentile(quiet_times, 95):.2f}); the same as a chat "
        f"turn recalls (the jobs pause): p50 {statistics.median(turn_times):.1f} ms, p95 "
        f"{percentile(turn_times, 95):.1f} ms (p95 busy / quiet {percentile(turn_times, 95) / percentile(quiet_times, 95):.2f})"
    )
    memory.close()

    pss_alone, pss_both = jobs_context_pss(paths)
    print(f"memory (PSS): chat model {pss_alone:.0f} MiB, with the jobs' own context {pss_both:.0f} MiB")
    typing = asyncio.run(time_to_typing(paths))
    print(f"app start to a composer that takes keys: {typing:.2f} s")
    quiet = asyncio.run(chat_in_app(paths, args.turns, with_jobs=False))
    busy = asyncio.run(chat_in_app(paths, args.turns, with_jobs=True))
    for name, r in (("alone (baseline)", quiet), ("with upkeep jobs", busy)):
        print(
            f"app, {args.turns} turns {name:<17}: TTFT p50 {r['ttft_p50']:.0f} ms (max {r['ttft_max']:.0f}), UI stall max "
            f"{r['stall_max_ms']:.0f} ms (p99 {r['stall_p99_ms']:.0f}), errors {len(r['errors'])}, replies {r['replies']}"
        )
    print(f"  jobs: {busy['jobs']}")
    if busy["errors"]:
        print(f"  errors: {busy['errors']}")
    figures = {
        "messages": args.messages,
        "first_open_s": round(first_open, 2),
        "ready_to_recall_s": round(later_open, 3),
        "recall_p50_ms": round(statistics.median(quiet_times), 2),
        "recall_p95_ms": round(percentile(quiet_times, 95), 2),
        "recall_busy_p50_ms": round(statistics.median(busy_times), 2),
        "recall_busy_p95_ms": round(percentile(busy_times, 95), 2),
        "recall_busy_over_quiet_p95": round(percentile(busy_times, 95) / percentile(quiet_times, 95), 2),
        "recall_turn_busy_p50_ms": round(statistics.median(turn_times), 2),
        "recall_turn_busy_p95_ms": round(percentile(turn_times, 95), 2),
        "recall_turn_busy_over_quiet_p95": round(percentile(turn_times, 95) / percentile(quiet_times, 95), 2),
        "pss_chat_mib": round(pss_alone),
        "pss_with_jobs_context_mib": round(pss_both),
        "app_to_typing_s": round(typing, 3),
        "ttft_alone_p50_ms": round(quiet["ttft_p50"]),
        "ttft_jobs_p50_ms": round(busy["ttft_p50"]),
        "ttft_jobs_over_alone_p50": round(busy["ttft_p50"] / quiet["ttft_p50"], 2),
        "ttft_jobs_over_alone_max": round(busy["ttft_max"] / quiet["ttft_max"], 2),
        "locked_errors": len(busy["errors"]),
    }
    print(
        f"  TTFT with jobs / alone: p50 {figures['ttft_jobs_over_alone_p50']:.2f}, worst "
        f"{figures['ttft_jobs_over_alone_max']:.2f}"
    )
    if args.json:
        import json

        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
