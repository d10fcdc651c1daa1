"""Choose `Weights.spread` (how far a gathering question's further hits from one session step back) by
leave-one-out over the LoCoMo development conversations, the other weights at their defaults.

    python benchmarks/spread_tune.py ../shared/data/locomo-dev [--homes .bench/locomo] [--bursts] [--json]

Each conversation is imported once (as `locomo_tune.py` does, into --homes) and searched in-process for every
value; recall@10 is counted over what the chat recalls (hits that clear the relevance bar). Each conversation in
turn is held out, the value with the best mean R@10 on the other two is chosen (ties: the smaller), and its R@10
on the held-out one is reported, with multi-hop (LoCoMo category 1, where most gathering questions are).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from locomo_tune import evaluate, prepare  # noqa: E402

VALUES = (0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--homes", type=Path, default=Path(".bench/locomo"))
    parser.add_argument(
        "--bursts", action="store_true", help="each turn sent as one message per sentence, seconds apart"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from companion.memory.recall.retrieve import AGGREGATE_QUESTION, Weights

    conversations = {f.stem: prepare(f, args.homes, args.bursts) for f in sorted(args.data.glob("*.json"))}
    gathering = sum(
        1
        for _, qas, _, _ in conversations.values()
        for qa in qas
        if AGGREGATE_QUESTION.search(qa["question"])
    )
    print(f"{gathering} gathering questions of {sum(len(c[1]) for c in conversations.values())}")
    r10: dict[float, dict[str, float]] = {}
    multihop: dict[float, float] = {}
    for value in VALUES:
        results = {
            name: evaluate(*conv, replace(Weights(), spread=value)) for name, conv in conversations.items()
        }
        r10[value] = {name: mean(r["all@10"]) for name, r in results.items()}
        multihop[value] = mean(v for r in results.values() for v in r.get("multi-hop@10", []))
        shown = " ".join(f"{name} {v:.3f}" for name, v in r10[value].items())
        print(f"spread {value}: R@10 {shown}; multi-hop {multihop[value]:.3f}", flush=True)
    folds = []
    for held in conversations:
        tuned = [n for n in conversations if n != held]
        best = max(VALUES, key=lambda v: (round(mean(r10[v][t] for t in tuned), 4), -v))
        folds.append(
            {"held_out": held, "chosen": best, "held_out_r10": r10[best][held], "plain_r10": r10[0.0][held]}
        )
        print(f"  held out {held}: chosen {best}, R@10 {r10[best][held]:.3f} (without: {r10[0.0][held]:.3f})")
    held_r10 = [f["held_out_r10"] for f in folds]
    print(
        f"held-out R@10 mean {mean(held_r10):.3f} ({min(held_r10):.3f}–{max(held_r10):.3f}); without spread {mean(r10[0.0].values()):.3f}"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "folds": folds,
                    "held_out_r10_mean": round(mean(held_r10), 4),
                    "r10": {str(v): r10[v] for v in VALUES},
                    "multihop_r10": {str(v): round(multihop[v], 4) for v in VALUES},
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
