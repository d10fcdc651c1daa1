"""Memory at scale: search latency, index build, memory use and file size with 100k memories plus messages, and
the one-time re-read of an older file's contexts (`LongTermMemory.reread_contexts`).

    python benchmarks/memory_scale.py [--memories 100000] [--messages 50000] [--queries 200] [--import-messages 2000]

The bulk of the store is synthetic (seeded): texts drawn from a Zipf-distributed vocabulary so FTS5 has realistic
posting lists, and random unit vectors, since search cost does not depend on what the vectors mean. Queries are
real sentences embedded by the real model. The import figure is separate and real: `import_log` (what `companion
memory import` runs) on a generated conversation with real embeddings, messages per second.
Targets on 2 cores: search p95 <= 50 ms end-to-end at 100k; import >= 200 messages/s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUERIES = [
    "when did my sister get engaged",
    "what is the name of my cat",
    "how did the job interview go",
    "where did we go hiking last summer",
    "what book was I reading",
    "my favourite food",
    "the trip to Porto",
    "who is my best friend",
    "what music do I like",
    "how is my grandmother",
    "my running club on sundays",
    "what did I cook for dinner",
    "the concert in May",
    "my new apartment",
    "learning the guitar",
]


def vocabulary(rng: np.random.Generator, size: int = 20000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < size:
        n = int(rng.integers(3, 10))
        words.add("".join(letters[i] for i in rng.integers(0, 26, n)))
    return sorted(words)


def sentences(rng: np.random.Generator, words: list[str], count: int, base: list[str]) -> list[str]:
    ranks = np.minimum(rng.zipf(1.3, size=(count, 12)), len(words)) - 1
    real = base * (count // len(base) + 1)
    return [
        " ".join(words[r] for r in row[: 6 + i % 7]) + (" " + real[i] if i % 5 == 0 else "")
        for i, row in enumerate(ranks)
    ]


def build(memory, rng: np.random.Generator, n_memories: int, n_messages: int) -> None:  # type: ignore[no-untyped-def]
    from companion.memory.records import VARIANT_MEMORY, VARIANT_MESSAGE, VARIANT_MESSAGE_CONTEXT, vector_key

    words = vocabulary(rng)
    dim = memory.embedder.dim
    store = memory.store
    message_texts = sentences(rng, words, n_messages, QUERIES)
    memory_texts = sentences(rng, words, n_memories, QUERIES)

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    with store.transaction() as conn:
        per_session = 50
        for s in range(0, n_messages, per_session):
            cursor = conn.execute(
                "insert into sessions (title, started_at) values (?, ?)",
                (f"s{s}", "2023-01-01T00:00:00+00:00"),
            )
            sid = cursor.lastrowid
            previous = None
            rows = []
            for i in range(s, min(s + per_session, n_messages)):
                text = message_texts[i]
                day = f"2023-{1 + i % 12:02d}-{1 + i % 28:02d}T12:00:00+00:00"
                rows.append(
                    (
                        sid,
                        "user" if i % 2 == 0 else "assistant",
                        text,
                        day,
                        f"{previous}\n{text}" if previous else text,
                    )
                )
                previous = text
            conn.executemany(
                "insert into messages (session_id, role, text, created_at, context) values (?, ?, ?, ?, ?)",
                rows,
            )
        conn.executemany(
            "insert into memories (kind, text, created_at, updated_at, importance, strength) values ('fact', ?, ?, ?, 0.5, 1.0)",
            [(t, "2023-06-01T00:00:00+00:00", "2023-06-01T00:00:00+00:00") for t in memory_texts],
        )
        message_ids = [r[0] for r in conn.execute("select id from messages order by id")]
        memory_ids = [r[0] for r in conn.execute("select id from memories order by id")]
        model = memory.embed_model
        for variant in (VARIANT_MESSAGE, VARIANT_MESSAGE_CONTEXT):
            vectors = unit(len(message_ids))
            conn.executemany(
                "insert into vectors (key, kind, item_id, variant, model, vector) values (?, 'message', ?, ?, ?, ?)",
                [
                    (vector_key(m, variant), m, variant, model, v.tobytes())
                    for m, v in zip(message_ids, vectors, strict=True)
                ],
            )
        vectors = unit(len(memory_ids))
        conn.executemany(
            "insert into vectors (key, kind, item_id, variant, model, vector) values (?, 'memory', ?, ?, ?, ?)",
            [
                (vector_key(m, VARIANT_MEMORY), m, VARIANT_MEMORY, model, v.tobytes())
                for m, v in zip(memory_ids, vectors, strict=True)
            ],
        )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--import-messages", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    os.environ["COMPANION_HOME"] = tempfile.mkdtemp(prefix="companion-scale-")

    from companion.memory.db.store import Store
    from companion.memory.operations import LongTermMemory
    from companion.memory.portability.formats import LogLine
    from companion.memory.portability.imports import import_log
    from companion.paths import get_paths

    paths = get_paths().ensure()
    rng = np.random.default_rng(7)
    store = Store(paths.database)
    memory = LongTermMemory(store, paths.index_file)
    memory.embedder.encode_one("warm up")
    started = time.perf_counter()
    build(memory, rng, args.memories, args.messages)
    print(
        f"synthetic store: {args.memories} memories, {args.messages} messages, "
        f"{store.scalar('select count(*) from vectors')} vectors written in {time.perf_counter() - started:.1f} s"
    )

    started = time.perf_counter()
    state = memory.ready()
    build_s = time.perf_counter() - started
    print(f"index build: {build_s:.2f} s ({state}, {memory.index.kind}, {memory.index.size} vectors)")
    started = time.perf_counter()
    reopened = LongTermMemory(store, paths.index_file)
    reopened_state = reopened.ready()
    reopen_s = time.perf_counter() - started
    print(f"index reopen from file: {reopen_s:.2f} s ({reopened_state})")

    questions = [
        QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" {i}") for i in range(args.queries)
    ]
    vectors = memory.embedder.encode(questions)
    with_embedding, without_embedding, embed_only = [], [], []
    for i, question in enumerate(questions):
        t = time.perf_counter()
        memory.embedder.encode_one(question)
        embed_only.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        memory.search(question, limit=10)
        with_embedding.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        memory.search(question, limit=10, query_vector=vectors[i])
        without_embedding.append((time.perf_counter() - t) * 1000)

    def row(name: str, values: list[float]) -> None:
        print(f"  {name:<34} p50 {statistics.median(values):6.1f} ms   p95 {percentile(values, 95):6.1f} ms")

    print(f"search over {args.queries} queries:")
    row("end to end (query embedded)", with_embedding)
    row("with the query vector given", without_embedding)
    row("query embedding alone", embed_only)
    # A file from before the rule of what a message is read with (`records.READ_WITH_RULE`) is read again once
    # by the index job: the walk over every message, first with nothing to change, then with one message in ten
    # holding an old context (its context and context vector made again, from the stored vectors).
    from companion.memory.operations import CONTEXTS_READ
    from companion.memory.tables import meta

    reread: dict[str, float] = {}
    for share, name in ((0, "nothing_stale"), (10, "tenth_stale")):
        with store.transaction() as conn:
            conn.execute("delete from meta where key = ?", (CONTEXTS_READ,))
            if share:
                conn.execute(f"update messages set context = text where id % {share} = 3")
        started = time.perf_counter()
        changed = memory.reread_contexts()
        reread[f"reread_{name}_s"] = round(time.perf_counter() - started, 2)
        reread[f"reread_{name}_messages"] = changed
        assert meta.get(store, CONTEXTS_READ) is not None
        print(
            f"read again ({name.replace('_', ' ')}): {changed} messages in {reread[f'reread_{name}_s']:.2f} s"
        )
    db_bytes = sum(p.stat().st_size for p in paths.data_dir.glob("memory.db*"))
    print(
        f"file: {db_bytes / 2**20:.0f} MiB database, {paths.index_file.stat().st_size / 2**20:.0f} MiB index"
    )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    # Import throughput: real embeddings, the path `companion memory import` takes.
    words = vocabulary(np.random.default_rng(1), 3000)
    texts = sentences(np.random.default_rng(2), words, args.import_messages, QUERIES)
    lines = [
        LogLine(
            f"import-{i // 40}",
            f"2024-01-{1 + i // 400:02d}T10:{(i // 60) % 60:02d}:{i % 60:02d}.000+00:00",
            "user" if i % 2 == 0 else "assistant",
            "",
            text,
            f"m{i}",
        )
        for i, text in enumerate(texts)
    ]
    fresh_store = Store(paths.data_dir / "import-bench.db")
    fresh = LongTermMemory(fresh_store, paths.data_dir / "import-bench.faiss")
    fresh.ready()
    started = time.perf_counter()
    result = import_log(fresh, lines)
    seconds = time.perf_counter() - started
    print(
        f"import: {result.messages} messages in {seconds:.1f} s = {result.messages / seconds:.0f} messages/s "
        f"(embedding precision: {'bfloat16' if fresh.embedder._use_bfloat16() else 'float32'})"
    )
    memory.close()
    store.close()
    fresh_store.close()
    if args.json:
        figures = {
            "vectors": memory.index.size,
            "index_build_s": round(build_s, 2),
            "index_reopen_s": round(reopen_s, 2),
            **reread,
        }
        for name, values in (
            ("search", with_embedding),
            ("search_vector_given", without_embedding),
            ("embed_query", embed_only),
        ):
            figures[f"{name}_p50_ms"] = round(statistics.median(values), 1)
            figures[f"{name}_p95_ms"] = round(percentile(values, 95), 1)
        figures["import_messages_per_s"] = round(result.messages / seconds, 1)
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
