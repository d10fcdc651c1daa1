"""Choose recall's weights by cross-validation over the LoCoMo development conversations, and report the spread.

    python benchmarks/locomo_tune.py ../shared/data/locomo-dev [--homes .bench/locomo] [--json]

Each conversation is imported once with `companion memory import` (kept under --homes, reused by later runs)
and searched in-process with `LongTermMemory.search(..., weights=...)`, the questions embedded once. For every
candidate setting of the features recall can use (the session a turn belongs to, its neighbouring turn, a
named speaker, "when" questions), recall@10 is measured per conversation. Cross-validation: each conversation
in turn is held out, the setting with the best mean R@10 on the other two is chosen, and its R@10 on the held-out
one is what is reported — the figure that says how recall does on a conversation it was not tuned on. The
defaults kept in `companion/memory/retrieve.py` are the setting with the best mean that hurts no conversation
against the plain fusion.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path
from statistics import mean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from locomo_retrieval import CATEGORIES, KS, convert, evidence_ids, recall  # noqa: E402

# The features measured (each 0 = off); the first setting of the grid is the plain fusion, the baseline.
GRID = {
    "session": (0.0, 0.2, 0.4, 0.6),
    "neighbour": (0.0, 0.2, 0.4, 0.6),
    "speaker": (0.25, 0.5, 1.0),
    "when": (0.0, 0.5),
}


def prepare(file: Path, homes: Path, bursts: bool = False) -> tuple[Any, list[dict[str, Any]], Any, Any]:
    """The conversation imported (once) into its own home, its questions, their vectors and `now`. With
    `bursts`, each turn sent as one message per sentence, seconds apart (`locomo_retrieval.convert`)."""
    conversation = json.loads(file.read_text())
    lines, last = convert(conversation, bursts=bursts)
    home = homes / (f"{file.stem}-bursts" if bursts else file.stem)
    if not (home / "data" / "memory.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        log = home / "log.jsonl"
        log.write_text("".join(json.dumps(line) + "\n" for line in lines))
        subprocess.run(
            [sys.executable, "-m", "companion", "memory", "import", str(log), "--format", "jsonl"],
            env=os.environ | {"COMPANION_HOME": str(home), "HF_HUB_OFFLINE": "1"},
            check=True,
            capture_output=True,
        )
    os.environ["COMPANION_HOME"] = str(home)
    from companion import config
    from companion.memory import open_memory
    from companion.paths import get_paths

    paths = get_paths()
    memory = open_memory(paths, config.load(paths).memory)
    memory.ready()
    qas = [qa for qa in conversation["qa"] if evidence_ids(qa)]
    vectors = memory.embedder.encode([qa["question"] for qa in qas])
    return memory, qas, vectors, last


def evaluate(
    memory: Any, qas: list[dict[str, Any]], vectors: Any, now: Any, weights: Any
) -> dict[str, list[float]]:
    scores: dict[str, list[float]] = {}
    for qa, vector in zip(qas, vectors, strict=True):
        hits = memory.search(qa["question"], now=now, limit=20, query_vector=vector, weights=weights)
        ranked: list[str] = []
        for hit in hits:
            for source in hit.source_ids:
                source = source.split("#")[0]  # a sentence sent in a burst counts as its turn
                if source not in ranked:
                    ranked.append(source)
        evidence = evidence_ids(qa)
        category = CATEGORIES.get(qa["category"], str(qa["category"]))
        for k in KS:
            value = recall(ranked, evidence, k)
            scores.setdefault(f"all@{k}", []).append(value)
            scores.setdefault(f"{category}@{k}", []).append(value)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--homes", type=Path, default=Path(".bench/locomo"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from companion.memory.recall.retrieve import Weights

    files = sorted(args.data.glob("*.json"))
    conversations = {f.stem: prepare(f, args.homes) for f in files}
    plain = Weights(session=0.0, neighbour=0.0, speaker=0.25, when=0.0)
    settings = [
        replace(plain, **dict(zip(GRID, values, strict=True))) for values in itertools.product(*GRID.values())
    ]
    results: dict[int, dict[str, dict[str, list[float]]]] = {}
    for number, weights in enumerate(settings):
        results[number] = {name: evaluate(*conv, weights) for name, conv in conversations.items()}
        r10 = {name: mean(r["all@10"]) for name, r in results[number].items()}
        print(
            f"{number:3d} "
            + " ".join(f"{k}={getattr(weights, k)}" for k in GRID)
            + "  R@10 "
            + " ".join(f"{name} {v:.3f}" for name, v in r10.items()),
            flush=True,
        )

    def r10(number: int, name: str) -> float:
        return mean(results[number][name]["all@10"])

    folds = []
    for held in conversations:
        tuned = [n for n in conversations if n != held]
        best = max(results, key=lambda n: mean(r10(n, t) for t in tuned))
        folds.append(
            {
                "held_out": held,
                "chosen": {k: getattr(settings[best], k) for k in GRID},
                "held_out_r10": r10(best, held),
                "plain_r10": r10(0, held),
            }
        )
    baseline = {name: r10(0, name) for name in conversations}
    safe = [n for n in results if all(r10(n, name) >= baseline[name] - 0.005 for name in conversations)]
    final = max(safe, key=lambda n: mean(r10(n, name) for name in conversations))

    def pooled(number: int, key: str) -> float:
        values = [v for name in conversations for v in results[number][name].get(key, [])]
        return mean(values) if values else 0.0

    print("\ncross-validation (tuned on two, measured on the third):")
    for fold in folds:
        print(
            f"  held out {fold['held_out']}: R@10 {fold['held_out_r10']:.3f} (plain fusion {fold['plain_r10']:.3f}),"
            f" chosen {fold['chosen']}"
        )
    held = [f["held_out_r10"] for f in folds]
    print(f"  held-out R@10 mean {mean(held):.3f}, spread {min(held):.3f}–{max(held):.3f}")
    print(f"\nkept (best mean, hurts no conversation): {asdict(settings[final])}")
    print(f"{'category':<14}" + "".join(f"{'R@' + str(k):>8}" for k in KS) + "   (plain R@10)")
    for category in ["all", *CATEGORIES.values()]:
        print(
            f"{category:<14}"
            + "".join(f"{pooled(final, f'{category}@{k}'):>8.3f}" for k in KS)
            + f"   ({pooled(0, f'{category}@10'):.3f})"
        )
    for name in conversations:
        print(f"  {name}: R@10 {r10(final, name):.3f} (plain {baseline[name]:.3f})")
    if args.json:
        print(
            json.dumps(
                {
                    "folds": folds,
                    "held_out_r10_mean": mean(held),
                    "held_out_r10_min": min(held),
                    "held_out_r10_max": max(held),
                    "kept": {k: getattr(settings[final], k) for k in GRID},
                    "kept_r10": {name: r10(final, name) for name in conversations},
                    "plain_r10": baseline,
                    "kept_by_category_r10": {
                        c: pooled(final, f"{c}@10") for c in ["all", *CATEGORIES.values()]
                    },
                    "plain_by_category_r10": {c: pooled(0, f"{c}@10") for c in ["all", *CATEGORIES.values()]},
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
