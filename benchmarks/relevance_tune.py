"""Choose recall's relevance bar by cross-validation over the LoCoMo development conversations.

    python benchmarks/relevance_tune.py ../shared/data/locomo-dev [--homes .bench/relevance] [--json]

Each conversation is imported with `companion memory import` (kept under --homes, reused by later runs). Each
memory is then asked its own questions (recall should be kept) and the other conversations' questions — about
people and events it never heard of — (nothing should be recalled), through `companion memory search --queries
FILE --json --all --limit 20`, which prints every hit's relevance features (cosine, cover, unknown, stranger;
see `Bar` in companion/memory/recall/retrieve.py).

For a setting of the bar: retention = own-question R@10 counting only the hits that pass, divided by the whole
ranking's R@10; abstention = the share of foreign questions with no hit that passes. Leave one out: each
conversation in turn is held out; on the other two (their own questions and each other's) the weights and the
question bar are chosen for the best retention + abstention (retention ≥ 0.95, abstention ≥ 0.80), then the
highest per-hit floor that costs at most 0.01 of retention; the figures on the held-out conversation (its own
questions, the two others' questions asked of it) are reported. The default kept in the code is the same choice
made on all three.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from locomo_retrieval import convert, evidence_ids, import_conversation, search_all  # noqa: E402

DEPTH = 20  # hits per question (the gate looks at these: GATE_DEPTH in retrieve.py)
COVER = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
UNKNOWN = (0.0, 0.2, 0.4)
STRANGER = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)
QUESTION = np.round(np.arange(0.20, 1.0, 0.02), 2)
FLOOR = np.round(np.arange(-0.30, 0.8, 0.04), 2)
MIN_RETENTION, MIN_ABSTENTION, FLOOR_COST = 0.95, 0.80, 0.01


class Features:
    """Every (memory, question) pair as arrays: [pairs, DEPTH] of each feature and of the evidence each hit
    newly brings."""

    def __init__(self, pairs: list[dict[str, Any]]) -> None:
        n = len(pairs)
        self.f = {name: np.zeros((n, DEPTH)) for name in ("cosine", "cover", "unknown", "stranger")}
        self.evidence = np.zeros((n, DEPTH))
        self.valid = np.zeros((n, DEPTH), bool)
        self.wanted = np.array([max(len(p["evidence"]), 1) for p in pairs], float)
        self.own = np.array([p["memory"] == p["asked"] for p in pairs])
        self.memory = np.array([p["memory"] for p in pairs])
        self.asked = np.array([p["asked"] for p in pairs])
        for i, pair in enumerate(pairs):
            seen: set[str] = set()
            for j, hit in enumerate(pair["hits"][:DEPTH]):
                for name in self.f:
                    self.f[name][i, j] = hit["features"][name]
                self.valid[i, j] = True
                new = [s for s in hit["source_ids"] if s in pair["evidence"] and s not in seen]
                seen.update(new)
                self.evidence[i, j] = len(new)

    def evaluate(self, rows: np.ndarray, bar: tuple[float, ...]) -> tuple[float, float, float, float]:
        """(retention, abstention, R@10 of the whole ranking, R@10 of what passes) over `rows`."""
        cover, unknown, stranger, question, floor = bar
        f = self.f
        value = f["cosine"][rows] + cover * f["cover"][rows] - unknown * f["unknown"][rows]
        value = np.where(self.valid[rows], value - stranger * f["stranger"][rows], -99.0)
        own = self.own[rows]
        gate = value.max(axis=1) >= question
        passes = (value >= floor) & gate[:, None]
        kept = passes & (np.cumsum(passes, axis=1) <= 10)
        whole = self.valid[rows] & (np.cumsum(self.valid[rows], axis=1) <= 10)
        evidence, wanted = self.evidence[rows], self.wanted[rows]
        recall_kept = float(((kept * evidence).sum(1) / wanted)[own].mean())
        recall_whole = float(((whole * evidence).sum(1) / wanted)[own].mean())
        abstention = float((~gate[~own]).mean()) if (~own).any() else 1.0
        return recall_kept / (recall_whole or 1.0), abstention, recall_whole, recall_kept

    def choose(self, rows: np.ndarray) -> tuple[float, ...]:
        best: tuple[tuple[float, float], tuple[float, ...]] | None = None
        for cover, unknown, stranger, question in itertools.product(COVER, UNKNOWN, STRANGER, QUESTION):
            retention, abstention, _, _ = self.evaluate(rows, (cover, unknown, stranger, question, -99.0))
            if retention < MIN_RETENTION or abstention < MIN_ABSTENTION:
                continue
            key = (round(retention + abstention, 3), -question)
            if best is None or key > best[0]:
                best = (key, (float(cover), float(unknown), float(stranger), float(question)))
        if best is None:
            raise SystemExit("No setting keeps retention and abstention above their minimums.")
        cover, unknown, stranger, question = best[1]
        full = self.evaluate(rows, (cover, unknown, stranger, question, -99.0))[0]
        floor = -99.0
        for candidate in FLOOR:
            if candidate > question:
                break
            if (
                self.evaluate(rows, (cover, unknown, stranger, question, float(candidate)))[0]
                >= full - FLOOR_COST
            ):
                floor = float(candidate)
        return cover, unknown, stranger, question, floor


def collect(data: Path, homes: Path) -> list[dict[str, Any]]:
    files = sorted(data.glob("*.json"))
    conversations = {f.stem: json.loads(f.read_text()) for f in files}
    asked = {s: [qa for qa in c["qa"] if evidence_ids(qa)] for s, c in conversations.items()}
    pairs: list[dict[str, Any]] = []
    for stem, conversation in conversations.items():
        lines, last = convert(conversation)
        home = homes / stem
        if not (home / "data" / "memory.db").exists():
            import_conversation(lines, home, last)
        for other, qas in asked.items():
            rows, _ = search_all(home, [qa["question"] for qa in qas], last)
            for qa, hits in zip(qas, rows, strict=True):
                evidence = evidence_ids(qa) if other == stem else []
                pairs.append({"memory": stem, "asked": other, "evidence": evidence, "hits": hits})
        print(f"{stem}: asked {sum(len(q) for q in asked.values())} questions", flush=True)
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path, help="folder of LoCoMo conversation JSON files")
    parser.add_argument("--homes", type=Path, default=Path(".bench/relevance"))
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    features = Features(collect(args.data, args.homes))
    names = sorted(set(features.memory.tolist()))
    held: dict[str, dict[str, float]] = {}
    print("\nleave one out (cover, unknown, stranger, question, floor -> held-out retention, abstention):")
    for name in names:
        train = np.where((features.memory != name) & (features.asked != name))[0]
        test = np.where(features.memory == name)[0]
        bar = features.choose(train)
        retention, abstention, whole, kept = features.evaluate(test, bar)
        held[name] = {"retention": retention, "abstention": abstention}
        print(
            f"  held out {name}: {bar} -> retention {retention:.3f} (R@10 {kept:.3f} of {whole:.3f}),"
            f" abstention {abstention:.3f}"
        )
    everything = np.arange(len(features.memory))
    bar = features.choose(everything)
    print(
        f"\nchosen on all: cover {bar[0]}, unknown {bar[1]}, stranger {bar[2]}, question {bar[3]}, floor {bar[4]}"
    )
    for name in names:
        retention, abstention, _, _ = features.evaluate(np.where(features.memory == name)[0], bar)
        print(f"  on {name}: retention {retention:.3f}, abstention {abstention:.3f}")
    from companion.memory.recall.retrieve import Bar

    shipped = Bar()
    kept_bar = (shipped.cover, shipped.unknown, shipped.stranger, shipped.question, shipped.floor)
    retention, abstention, _, _ = features.evaluate(everything, kept_bar)
    same = (
        "the same" if tuple(round(v, 2) for v in kept_bar) == tuple(round(v, 2) for v in bar) else "differs"
    )
    print(f"the bar in the code {kept_bar} ({same}): retention {retention:.3f}, abstention {abstention:.3f}")
    # Without the unknown-name cue (a question about someone never heard of): how much rests on it.
    plain = features.evaluate(everything, (bar[0], bar[1], 0.0, bar[3], bar[4]))
    print(f"without the stranger term: retention {plain[0]:.3f}, abstention {plain[1]:.3f}")
    if args.json:
        retentions = [h["retention"] for h in held.values()]
        abstentions = [h["abstention"] for h in held.values()]
        print(
            json.dumps(
                {
                    "heldout_retention_mean": round(float(np.mean(retentions)), 3),
                    "heldout_retention_min": round(min(retentions), 3),
                    "heldout_abstention_mean": round(float(np.mean(abstentions)), 3),
                    "heldout_abstention_min": round(min(abstentions), 3),
                    "cover": bar[0],
                    "unknown": bar[1],
                    "stranger": bar[2],
                    "question": bar[3],
                    "floor": bar[4],
                    "without_stranger_abstention": round(plain[1], 3),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
