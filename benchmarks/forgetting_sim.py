"""A simulated year of daily conversations with a fake clock: does the active memory stay bounded while nothing
is lost?

    python benchmarks/forgetting_sim.py [--days 365] [--per-day 12] [--seed 3]

Each simulated day adds `per-day` derived memories (synthetic, seeded: importance drawn from a skewed
distribution, a few pinned), recalls some of the active ones (more often the important ones, as conversation
would), and runs the same forgetting sweep the app runs. Vectors are random unit vectors (search cost does not
depend on meaning). Printed every month: active and archived counts, the index size, and retrieval latency over
the active set; at the end, the check that active + archived = everything ever made (forgetting never deletes).
The baseline is the same year without forgetting: how large the active set and the index would have grown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=12)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--tau", type=float, default=5.0)
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    os.environ["COMPANION_HOME"] = tempfile.mkdtemp(prefix="companion-forget-")

    from companion.memory.db.store import Store
    from companion.memory.recall.index import VectorIndex
    from companion.memory.records import VARIANT_MEMORY, vector_key
    from companion.memory.tables import memories, write
    from companion.memory.upkeep.forgetting import Sweep, faded
    from companion.paths import get_paths

    paths = get_paths().ensure()
    store = Store(paths.database)
    rng = np.random.default_rng(args.seed)
    dim = 384
    index = VectorIndex(store, "sim", dim, None)
    index.open()
    start = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
    made = 0
    print(
        f"{args.days} days, {args.per_day} new memories a day, tau {args.tau} days, archive below {args.threshold}"
    )
    print("day   made  active  archived  pinned  index  search p50/p95 ms")
    for day in range(args.days):
        now = start + timedelta(days=day)
        importance = np.clip(rng.beta(2, 5, args.per_day), 0.05, 1.0)
        vectors = rng.standard_normal((args.per_day, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        keys = []
        with write(store) as w:
            for value, vector in zip(importance, vectors, strict=True):
                memory_id = memories.add(
                    w,
                    "fact",
                    f"day {day} memory {made}",
                    importance=float(value),
                    pinned=bool(rng.random() < 0.01),
                    vector=vector,
                    model="sim",
                )
                w.conn.execute(
                    "update memories set created_at = ? where id = ?", (now.isoformat(), memory_id)
                )
                keys.append(vector_key(memory_id, VARIANT_MEMORY))
                made += 1
        index.add(np.asarray(keys, dtype=np.int64), vectors)
        # Conversation brings some memories up again: important ones more often.
        active = store.conn.execute("select id, importance from memories where archived = 0").fetchall()
        if active:
            weights = np.array([a[1] for a in active]) ** 2
            picks = rng.choice(
                len(active), size=min(len(active), 4), replace=False, p=weights / weights.sum()
            )
            with store.transaction() as conn:
                conn.executemany(
                    "update memories set strength = strength + 1, recall_count = recall_count + 1,"
                    " last_recalled_at = ? where id = ?",
                    [((now + timedelta(hours=2)).isoformat(), active[i][0]) for i in picks],
                )
        result = Sweep()
        due = faded(store, now + timedelta(hours=12), args.tau, args.threshold, result)
        with write(store) as w:  # what the app's sweep writes, with a standalone index beside it
            for item in due:
                memories.archive(
                    w, item.memory_id, f"retention {item.retention:.3f} fell below {args.threshold:g}"
                )
        index.apply(w.change)
        if (day + 1) % 30 == 0 or day + 1 == args.days:
            latencies = []
            for _ in range(50):
                query = rng.standard_normal(dim).astype(np.float32)
                query /= np.linalg.norm(query)
                t = time.perf_counter()
                index.search(query, 10)
                latencies.append((time.perf_counter() - t) * 1000)
            counts = store.conn.execute(
                "select sum(archived = 0), sum(archived = 1), sum(pinned) from memories"
            ).fetchone()
            print(
                f"{day + 1:>3}  {made:>5}  {counts[0]:>6}  {counts[1]:>8}  {counts[2]:>6}  {index.size:>5}  "
                f"{statistics.median(latencies):.2f} / {np.percentile(latencies, 95):.2f}"
            )
    total, active_n, archived_n = store.conn.execute(
        "select count(*), sum(archived = 0), sum(archived = 1) from memories"
    ).fetchone()
    print(
        f"\nnothing lost: {active_n} active + {archived_n} archived = {total} = {made} made: {active_n + archived_n == made == total}"
    )
    print(
        f"baseline without forgetting: {made} active memories and index entries (x{made / max(active_n, 1):.1f} the active set)"
    )
    store.close()
    if args.json:
        print(
            json.dumps(
                {
                    "days": args.days,
                    "made": made,
                    "active": active_n,
                    "archived": archived_n,
                    "nothing_lost": active_n + archived_n == made == total,
                    "baseline_over_active": round(made / max(active_n, 1), 2),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
