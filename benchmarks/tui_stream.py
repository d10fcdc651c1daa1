"""The terminal app under load, headless (`App.run_test`), with the real demo model.

    python benchmarks/tui_stream.py [--tokens 256] [--repeats 3] [--memories 100000]

Prints, in one run:
  * streaming: the time from a token leaving the engine (the worker thread receives it from llama.cpp) to the
    reply widget holding it, p50/p95/max; and tokens/s on screen ÷ tokens/s from the engine (target >= 0.95),
    where on-screen speed counts until the last token is on screen. The same measurement for a naive screen
    that re-renders the whole Markdown reply on every token is printed as the baseline.
  * the memories screen with N memories (default 100k): seconds from F2 to the first page on screen (target
    < 1 s), against loading every memory into the table (the baseline), same file, same run.

Runs under a temporary COMPANION_HOME.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPTS = [
    "Tell me a long story about a lighthouse keeper and the sea.",
    "Describe, in detail, a walk through an old city at night.",
    "Write a long letter to a friend about learning the cello.",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def stream_once(home: Any, prompt: str, tokens: int, naive: bool) -> dict[str, float]:
    from companion import config
    from companion.engine import Engine
    from companion.tui.app import CompanionApp
    from companion.tui.screens.chat import ChatScreen

    class NaiveChat(ChatScreen):
        """Baseline: every token re-renders the whole reply (Markdown.update), straight from the worker."""

        def generate(self, kind: str, text: str, message_id: int | None) -> None:  # type: ignore[override]
            self._naive(text)

        from textual import work

        @work(thread=True, exclusive=True, group="reply")
        def _naive(self, text: str) -> None:
            from companion.tui.messages import ReplyFinished, ReplyStarted

            engine = self.app.engine  # type: ignore[attr-defined]
            turn = engine.send(text)
            self.post_message(ReplyStarted(turn.user_message_id, turn.hits, {}))
            shown = ""
            for piece in turn:
                emitted = time.perf_counter()
                shown += piece
                self.app.call_from_thread(self._reply.update, shown)  # type: ignore[union-attr]
                if self.probe is not None:
                    self.probe.append((emitted, time.perf_counter(), len(piece)))
            self.post_message(
                ReplyFinished(turn.incomplete, turn.stats.completion_tokens, turn.stats.gen_tok_s, 0, "")
            )

    settings = config.load(home)
    settings.chat.max_tokens = tokens
    settings.chat.seed = 3
    settings.memory.recall_limit = 0
    engine = Engine(settings, home)
    app = CompanionApp(engine=engine, welcome=False, upkeep=False)
    if naive:
        app.chat = NaiveChat()
    app.chat.probe = []
    async with app.run_test(size=(100, 40)) as pilot:
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        composer: Any = app.chat.query_one("#composer")
        composer.text = prompt
        composer.focus()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        probe = app.chat.probe
    engine.close()
    assert probe, "no tokens were streamed"
    latencies = [(shown - emitted) * 1000 for emitted, shown, _ in probe]
    first, last_emit = probe[0][0], max(e for e, _, _ in probe)
    last_shown = max(s for _, s, _ in probe)
    n = len(probe)
    engine_rate = (n - 1) / (last_emit - first) if last_emit > first else 0.0
    screen_rate = (n - 1) / (last_shown - first) if last_shown > first else 0.0
    return {
        "pieces": n,
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 0.95),
        "max": max(latencies),
        "engine_tok_s": engine_rate,
        "screen_tok_s": screen_rate,
        "ratio": screen_rate / engine_rate if engine_rate else 0.0,
    }


def make_memories(home: Any, count: int) -> None:
    from companion.memory.db.store import Store
    from companion.timeutil import now_iso as utcnow

    rng = random.Random(7)
    words = "tea cello sister Lisbon dog walk garden book night shift friend river music bread rain".split()
    store = Store(home.database)
    now = utcnow()
    with store.transaction() as conn:
        conn.executemany(
            "insert into memories (kind, text, created_at, updated_at, importance, strength, valid_from)"
            " values (?, ?, ?, ?, 0.5, 1.0, ?)",
            [
                (
                    "fact" if i % 5 else "summary",
                    f"Memory {i}: the user mentioned " + " ".join(rng.choice(words) for _ in range(12)),
                    now,
                    now,
                    now,
                )
                for i in range(count)
            ],
        )
    store.close()


async def open_memories(home: Any, everything: bool) -> tuple[float, int]:
    from companion import config
    from companion.engine import Engine
    from companion.tui.app import CompanionApp
    from companion.tui.screens import memories

    saved = memories.PAGE
    if everything:
        memories.PAGE = 10**9
    try:
        engine = Engine(config.load(home), home)
        app = CompanionApp(engine=engine, welcome=False, upkeep=False)
        async with app.run_test(size=(100, 40)) as pilot:
            for _ in range(3):
                await app.workers.wait_for_complete()
                await pilot.pause()
            started = time.perf_counter()
            await pilot.press("f2")
            await app.workers.wait_for_complete()
            await pilot.pause()
            table: Any = app.screen.query_one("DataTable")
            while not table.row_count:
                await pilot.pause(0.01)
            seconds = time.perf_counter() - started
            rows = table.row_count
        engine.close()
    finally:
        memories.PAGE = saved
    return seconds, rows


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    os.environ["COMPANION_HOME"] = tempfile.mkdtemp(prefix="companion-tui-bench-")
    from companion.paths import get_paths

    home = get_paths().ensure()
    figures: dict[str, float] = {}
    print(f"streaming {args.tokens} tokens, {args.repeats} repeats, demo model, 100x40 headless terminal")
    for naive in (False, True):
        runs = [
            await stream_once(home, PROMPTS[i % len(PROMPTS)], args.tokens, naive)
            for i in range(args.repeats)
        ]
        name = "naive (re-render per token)" if naive else "companion (batched append)"
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"  {name:<28} token→screen p50 {med['p50']:6.1f} ms  p95 {med['p95']:6.1f} ms  max {med['max']:6.1f} ms"
            f"  engine {med['engine_tok_s']:5.1f} tok/s  screen {med['screen_tok_s']:5.1f} tok/s"
            f"  ratio {med['ratio']:.3f}"
        )
        prefix = "naive" if naive else "batched"
        figures.update({f"{prefix}_{k}": round(v, 3) for k, v in med.items()})
    make_memories(home, args.memories)
    paged, rows = await open_memories(home, everything=False)
    print(
        f"memories screen with {args.memories} memories: first page ({rows} rows) on screen in {paged:.3f} s"
    )
    full, rows = await open_memories(home, everything=True)
    print(
        f"  baseline, every memory loaded into the table ({rows} rows): {full:.3f} s; paged/baseline {paged / full:.4f}"
    )
    if args.json:
        figures.update(
            memories_first_page_s=round(paged, 3),
            memories_everything_s=round(full, 3),
            paged_over_everything=round(paged / full, 4),
        )
        print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
