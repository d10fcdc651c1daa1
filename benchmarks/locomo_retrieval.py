"""LoCoMo retrieval: turn-level recall@k of `companion memory search`, next to BM25 and dense baselines.

    python benchmarks/locomo_retrieval.py ../shared/data/locomo-dev [--keep DIR]

For each conversation: convert it to the JSON Lines log (speaker_a as user, speaker_b as assistant, id = dia_id,
time from the session date, an image's blip_caption appended), import it with `companion memory import` into a
fresh COMPANION_HOME, run every question that has evidence through `companion memory search --queries FILE --json
--limit 20` (the public command, in a subprocess), flatten the hits' source_ids in rank order without repeats,
and score recall@k = the fraction of a question's evidence turns in the first k. In the same run: BM25 alone
(rank_bm25 over "speaker: text") and dense all-MiniLM-L6-v2 alone (FAISS flat) over the same turns.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

KS = (1, 5, 10, 20)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


def session_time(value: str) -> datetime:
    return datetime.strptime(value.strip(), "%I:%M %p on %d %B, %Y")


def convert(conversation: dict[str, Any]) -> tuple[list[dict[str, Any]], datetime]:
    a, b = conversation["speaker_a"], conversation["speaker_b"]
    numbers = sorted(int(m.group(1)) for k in conversation if (m := re.fullmatch(r"session_(\d+)", k)))
    lines = []
    last = datetime.min
    for n in numbers:
        turns = conversation[f"session_{n}"]
        if not isinstance(turns, list) or not turns:
            continue
        start = session_time(conversation[f"session_{n}_date_time"])
        last = max(last, start)
        for i, turn in enumerate(turns):
            text = turn.get("text", "")
            if turn.get("blip_caption"):
                text = f"{text} [shares an image: {turn['blip_caption']}]".strip()
            lines.append(
                {
                    "session": f"session_{n}",
                    "time": start.replace(second=min(i, 59)).isoformat(),
                    "role": "user" if turn["speaker"] == a else "assistant",
                    "speaker": turn["speaker"],
                    "text": text,
                    "id": turn["dia_id"],
                }
            )
    _ = b
    return lines, last


def evidence_ids(qa: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for item in qa.get("evidence") or []:
        for part in re.split(r"[;,\s]+", str(item)):
            part = part.strip()
            if re.fullmatch(r"D\d+:\d+", part) and part not in out:
                out.append(part)
    return out


def recall(ranked: list[str], evidence: list[str], k: int) -> float:
    top = set(ranked[:k])
    return sum(1 for e in evidence if e in top) / len(evidence)


def run_companion(
    lines: list[dict[str, Any]], questions: list[str], now: datetime, home: Path, consolidate: bool = False
) -> tuple[list[list[str]], float, float]:
    env = os.environ | {"COMPANION_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    log = home / "log.jsonl"
    home.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "companion", "memory", "import", str(log), "--format", "jsonl"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    imported = time.perf_counter() - started
    if consolidate:
        # Every session has ended by `now`: consolidation writes summaries and facts (fact keys) with the model.
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "companion",
                "maintain",
                "--only",
                "consolidate",
                "--now",
                (now + timedelta(days=1)).isoformat(),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        print(
            f"  consolidation ({time.perf_counter() - started:.0f} s): {done.stdout.strip() or done.stderr.strip()}",
            flush=True,
        )
    queries = home / "queries.txt"
    queries.write_text("".join(q.replace("\n", " ") + "\n" for q in questions))
    started = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "companion",
            "memory",
            "search",
            "--queries",
            str(queries),
            "--json",
            "--limit",
            "20",
            "--now",
            now.isoformat(),
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    searched = time.perf_counter() - started
    ranked = []
    for row in out.stdout.splitlines():
        seen: list[str] = []
        for hit in json.loads(row):
            for source in hit["source_ids"]:
                if source not in seen:
                    seen.append(source)
        ranked.append(seen)
    return ranked, imported, searched


def baselines(lines: list[dict[str, Any]], questions: list[str], embedder: Any) -> dict[str, list[list[str]]]:
    import faiss
    import numpy as np
    from rank_bm25 import BM25Okapi

    docs = [f"{line['speaker']}: {line['text']}" for line in lines]
    ids = [line["id"] for line in lines]
    bm25 = BM25Okapi([re.findall(r"\w+", d.lower()) for d in docs])
    bm25_ranked = []
    for q in questions:
        scores = bm25.get_scores(re.findall(r"\w+", q.lower()))
        bm25_ranked.append([ids[i] for i in np.argsort(-scores)[:20]])
    vectors = embedder.encode(docs)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, found = index.search(embedder.encode(questions), 20)
    dense_ranked = [[ids[i] for i in row if i >= 0] for row in found]
    return {"bm25": bm25_ranked, "dense": dense_ranked}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path, help="folder of LoCoMo conversation JSON files")
    parser.add_argument("--keep", type=Path, help="keep each conversation's COMPANION_HOME under this folder")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument(
        "--with-consolidation",
        action="store_true",
        help="also run `companion maintain --only consolidate` (the model) before searching, and "
        "report recall both ways",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.json"))
    if not files:
        print(f"No .json conversations in {args.data}", file=sys.stderr)
        return 2
    embedder = None
    if not args.no_baselines:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from companion.memory.embed import Embedder

        embedder = Embedder()
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    total_messages, total_import, total_queries, total_search = 0, 0.0, 0, 0.0
    root = args.keep or Path(tempfile.mkdtemp(prefix="locomo-"))
    for file in files:
        conversation = json.loads(file.read_text())
        lines, last = convert(conversation)
        qas = [qa for qa in conversation["qa"] if evidence_ids(qa)]
        questions = [qa["question"] for qa in qas]
        ranked, imported, searched = run_companion(lines, questions, last, root / file.stem)
        systems_extra = {}
        if args.with_consolidation:
            consolidated, _, _ = run_companion(
                lines, questions, last, root / f"{file.stem}-consolidated", True
            )
            systems_extra["consolidated"] = consolidated
        total_messages += len(lines)
        total_import += imported
        total_queries += len(questions)
        total_search += searched
        systems = {"companion": ranked, **systems_extra}
        if embedder is not None:
            systems |= baselines(lines, questions, embedder)
        for name, ranking in systems.items():
            for qa, ranks in zip(qas, ranking, strict=True):
                evidence = evidence_ids(qa)
                for k in KS:
                    scores[name][f"all@{k}"].append(recall(ranks, evidence, k))
                    scores[name][f"{CATEGORIES.get(qa['category'], qa['category'])}@{k}"].append(
                        recall(ranks, evidence, k)
                    )
        print(
            f"{file.name}: {len(lines)} turns, {len(questions)} questions; import {imported:.1f} s "
            f"({len(lines) / imported:.0f} messages/s incl. start-up), search {searched:.1f} s",
            flush=True,
        )
    print(f"\n{total_queries} questions over {len(files)} conversations, {total_messages} turns")
    print(f"{'method':<12}" + "".join(f"{'R@' + str(k):>8}" for k in KS))
    for name in scores:
        print(
            f"{name:<12}"
            + "".join(f"{sum(v) / len(v):>8.3f}" for k in KS for v in [scores[name][f"all@{k}"]])
        )
    print("\ncompanion by category (questions):")
    for category in CATEGORIES.values():
        values = scores["companion"].get(f"{category}@10")
        if values:
            row = "".join(f"{sum(scores['companion'][f'{category}@{k}']) / len(values):>8.3f}" for k in KS)
            print(f"  {category:<12}({len(values):>3})" + row)
    if args.json:
        figures = {
            f"{name}_{key.replace('@', '_r')}": round(sum(values) / len(values), 3)
            for name, by_key in scores.items()
            for key, values in by_key.items()
            if key.startswith("all@") or name == "companion"
        }
        print(json.dumps({"questions": total_queries, "turns": total_messages, **figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
