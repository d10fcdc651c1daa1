"""LoCoMo retrieval: turn-level recall@k of `companion memory search`, next to BM25 and dense baselines.

    python benchmarks/locomo_retrieval.py ../shared/data/locomo-dev [--keep DIR]

    python benchmarks/locomo_retrieval.py ../shared/data/locomo-dev --labels corrected  # locomo-dev-corrected

For each conversation: convert it to the JSON Lines log (speaker_a as user, speaker_b as assistant, id = dia_id,
time from the session date, an image's blip_caption appended), import it with `companion memory import` into a
fresh COMPANION_HOME, run every question that has evidence through `companion memory search --queries FILE --json
--all --limit 20` (the public command, in a subprocess), flatten the hits' source_ids in rank order without
repeats, and score recall@k = the fraction of a question's evidence turns in the first k: `companion` counts only
the hits that clear the relevance bar (what the chat recalls), `ranking` the whole ranking. Abstention: the other
conversations' questions (about people and events this memory never heard of) asked of each memory; the share
that recall answers with nothing. In the same run: BM25 alone (rank_bm25 over "speaker: text") and dense
all-MiniLM-L6-v2 alone (FAISS flat) over the same turns. With `--labels`, every recall figure is also scored
against the other label set (the corrected LoCoMo labels).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

KS = (1, 5, 10, 20)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


def session_time(value: str) -> datetime:
    return datetime.strptime(value.strip(), "%I:%M %p on %d %B, %Y")


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def misspelt(word: str, rng: random.Random) -> str:
    """One slip of the fingers in `word`: two letters swapped, one dropped, one doubled, or one replaced by a key
    next to it."""
    i = rng.randrange(len(word) - 1)
    slip = rng.randrange(4)
    if slip == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if slip == 1:
        return word[:i] + word[i + 1 :]
    if slip == 2:
        return word[:i] + word[i] + word[i:]
    row = next((r for r in KEYBOARD_ROWS if word[i].lower() in r), "")
    j = row.find(word[i].lower())
    near = row[max(0, j - 1) : j] + row[j + 1 : j + 2] if row else ""
    return word[:i] + (rng.choice(near) if near else word[i]) + word[i + 1 :]


def with_typos(text: str, rate: float, rng: random.Random) -> str:
    """`text` with each word of four letters or more misspelt with probability `rate`."""
    return re.sub(
        r"[A-Za-z]{4,}", lambda m: misspelt(m.group(0), rng) if rng.random() < rate else m.group(0), text
    )


def convert(
    conversation: dict[str, Any], bursts: bool = False, typos: float = 0.0, seed: int = 0
) -> tuple[list[dict[str, Any]], datetime]:
    """The conversation as JSON Lines log lines. With `bursts`, each turn is sent the way people type in a chat
    app: one message per sentence, seconds apart (id `D1:3#2` for the second of turn D1:3), the next turn
    half a minute later. With `typos`, that share of the words of four letters or more is misspelt (seeded by
    `seed`; the questions stay as they are)."""
    rng = random.Random(seed)
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
        clock = start
        for i, turn in enumerate(turns):
            text = turn.get("text", "")
            if turn.get("blip_caption"):
                text = f"{text} [shares an image: {turn['blip_caption']}]".strip()
            parts = [p for p in SENTENCE_END.split(text) if p.strip()] if bursts else [text]
            for j, part in enumerate(parts or [text]):
                if typos:
                    part = with_typos(part, typos, rng)
                if bursts:
                    clock += timedelta(seconds=30 if j == 0 else 6)
                lines.append(
                    {
                        "session": f"session_{n}",
                        "time": (clock if bursts else start.replace(second=min(i, 59))).isoformat(),
                        "role": "user" if turn["speaker"] == a else "assistant",
                        "speaker": turn["speaker"],
                        "text": part,
                        "id": f"{turn['dia_id']}#{j + 1}" if bursts else turn["dia_id"],
                    }
                )
        last = max(last, clock)
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


def import_conversation(
    lines: list[dict[str, Any]], home: Path, now: datetime, consolidate: bool = False
) -> float:
    """A fresh COMPANION_HOME holding the conversation, through `companion memory import` (and with
    `consolidate`, `companion maintain --only consolidate`); returns the import's seconds."""
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
    return imported


def search_all(home: Path, questions: list[str], now: datetime) -> tuple[list[list[dict[str, Any]]], float]:
    """Every question through `companion memory search --queries FILE --json --all --limit 20`: the whole
    ranking, each hit marked relevant or not (and its relevance features)."""
    env = os.environ | {"COMPANION_HOME": str(home), "HF_HUB_OFFLINE": "1"}
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
            "--all",
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
    return [json.loads(row) for row in out.stdout.splitlines()], time.perf_counter() - started


def sources(hits: list[dict[str, Any]], relevant_only: bool) -> list[str]:
    """The hits' source_ids in rank order without repeats; with `relevant_only`, of what the chat recalls."""
    seen: list[str] = []
    for hit in hits:
        if relevant_only and not hit["relevant"]:
            continue
        for source in hit["source_ids"]:
            source = source.split("#")[0]  # a sentence of a turn sent in bursts counts as the turn
            if source not in seen:
                seen.append(source)
    return seen


def baselines(lines: list[dict[str, Any]], questions: list[str], embedder: Any) -> dict[str, list[list[str]]]:
    import faiss
    import numpy as np
    from rank_bm25 import BM25Okapi

    docs = [f"{line['speaker']}: {line['text']}" for line in lines]
    ids = [line["id"].split("#")[0] for line in lines]  # a sentence sent in a burst counts as its turn

    def turns(order: Any) -> list[str]:
        return list(dict.fromkeys(ids[i] for i in order if i >= 0))[:20]

    bm25 = BM25Okapi([re.findall(r"\w+", d.lower()) for d in docs])
    bm25_ranked = []
    for q in questions:
        scores = bm25.get_scores(re.findall(r"\w+", q.lower()))
        bm25_ranked.append(turns(np.argsort(-scores)[:100]))
    vectors = embedder.encode(docs)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, found = index.search(embedder.encode(questions), 100)
    dense_ranked = [turns(row) for row in found]
    return {"bm25": bm25_ranked, "dense": dense_ranked}


def score(qas: list[dict[str, Any]], ranking: list[list[str]], into: dict[str, list[float]]) -> None:
    for qa, ranks in zip(qas, ranking, strict=True):
        evidence = evidence_ids(qa)
        if not evidence:
            continue
        for k in KS:
            into[f"all@{k}"].append(recall(ranks, evidence, k))
            into[f"{CATEGORIES.get(qa['category'], qa['category'])}@{k}"].append(recall(ranks, evidence, k))


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path, help="folder of LoCoMo conversation JSON files")
    parser.add_argument(
        "--labels",
        type=Path,
        help="a folder with the same conversations under other labels (e.g. ../shared/data/locomo-dev-corrected),"
        " or `corrected` for the folder beside DATA named DATA-corrected: every figure is reported against both",
    )
    parser.add_argument("--keep", type=Path, help="keep each conversation's COMPANION_HOME under this folder")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument(
        "--with-consolidation",
        action="store_true",
        help="also run `companion maintain --only consolidate` (the model) before searching, and "
        "report recall both ways",
    )
    parser.add_argument(
        "--bursts",
        action="store_true",
        help="send each turn as one message per sentence, seconds apart (as people type in a chat app); a hit on"
        " any sentence counts as its turn",
    )
    parser.add_argument(
        "--typos",
        type=float,
        default=0.0,
        metavar="RATE",
        help="misspell this share of the messages' words of four letters or more (seeded per conversation; the"
        " questions are not misspelt), as people type on a phone",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.json"))
    if not files:
        print(f"No .json conversations in {args.data}", file=sys.stderr)
        return 2
    label_sets = {"original": args.data}
    if args.labels == Path("corrected") and not args.labels.exists():
        args.labels = args.data.resolve().parent / f"{args.data.resolve().name}-corrected"
    if args.labels:
        if not all((args.labels / f.name).exists() for f in files):
            print(f"{args.labels} does not hold every conversation of {args.data}", file=sys.stderr)
            return 2
        label_sets[args.labels.name] = args.labels
    embedder = None
    if not args.no_baselines:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from companion.memory.recall.embed import Embedder

        embedder = Embedder()
    # scores[labels][system][key] -> per question; per_conversation[labels][system][stem] -> R@10
    scores: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    per_conversation: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    abstained: dict[str, float] = {}
    total_messages, total_import, total_queries, total_search = 0, 0.0, 0, 0.0
    root = args.keep or Path(tempfile.mkdtemp(prefix="locomo-"))
    conversations = {f.stem: json.loads(f.read_text()) for f in files}
    questions_of = {
        stem: [qa["question"] for qa in c["qa"] if evidence_ids(qa)] for stem, c in conversations.items()
    }
    for file in files:
        conversation = conversations[file.stem]
        lines, last = convert(
            conversation, bursts=args.bursts, typos=args.typos, seed=zlib.crc32(file.stem.encode())
        )
        questions = questions_of[file.stem]
        home = root / file.stem
        imported = import_conversation(lines, home, last)
        rows, searched = search_all(home, questions, last)
        systems = {
            "companion": [sources(hits, relevant_only=True) for hits in rows],
            "ranking": [sources(hits, relevant_only=False) for hits in rows],
        }
        if args.with_consolidation:
            consolidated = root / f"{file.stem}-consolidated"
            import_conversation(lines, consolidated, last, consolidate=True)
            systems["consolidated"] = [
                sources(h, relevant_only=True) for h in search_all(consolidated, questions, last)[0]
            ]
        if embedder is not None:
            systems |= baselines(lines, questions, embedder)
        # Questions about people and events this memory never heard of: the other conversations' questions.
        foreign = [q for stem, qs in questions_of.items() if stem != file.stem for q in qs]
        if foreign:
            foreign_rows, _ = search_all(home, foreign, last)
            abstained[file.stem] = mean(
                [float(not any(h["relevant"] for h in hits)) for hits in foreign_rows]
            )
        total_messages += len(lines)
        total_import += imported
        total_queries += len(questions)
        total_search += searched
        for labels, folder in label_sets.items():
            qas = [qa for qa in json.loads((folder / file.name).read_text())["qa"] if evidence_ids(qa)]
            labelled = systems
            if [qa["question"] for qa in qas] != questions:  # reworded or newly evidenced questions
                asked, _ = search_all(home, [qa["question"] for qa in qas], last)
                labelled = {
                    "companion": [sources(hits, relevant_only=True) for hits in asked],
                    "ranking": [sources(hits, relevant_only=False) for hits in asked],
                }
                if args.with_consolidation:  # every system is asked the reworded questions, or none is scored
                    labelled["consolidated"] = [
                        sources(h, relevant_only=True)
                        for h in search_all(
                            root / f"{file.stem}-consolidated", [qa["question"] for qa in qas], last
                        )[0]
                    ]
                if embedder is not None:
                    labelled |= baselines(lines, [qa["question"] for qa in qas], embedder)
            for name, ranking in labelled.items():
                mine: dict[str, list[float]] = defaultdict(list)
                score(qas, ranking, mine)
                for key, values in mine.items():
                    scores[labels][name][key] += values
                per_conversation[labels][name][file.stem] = mean(mine["all@10"])
        print(
            f"{file.name}: {len(lines)} turns, {len(questions)} questions; import {imported:.1f} s "
            f"({len(lines) / imported:.0f} messages/s incl. start-up), search {searched:.1f} s"
            + (
                f"; foreign questions with nothing recalled {abstained[file.stem]:.3f}"
                if file.stem in abstained
                else ""
            ),
            flush=True,
        )
    print(f"\n{total_queries} questions over {len(files)} conversations, {total_messages} turns")
    print("companion: what the chat recalls (hits that clear the relevance bar); ranking: the whole ranking")
    figures: dict[str, Any] = {
        "questions": total_queries,
        "turns": total_messages,
        "bursts": args.bursts,
        "typos": args.typos,
    }
    for labels, by_system in scores.items():
        print(f"\nlabels: {labels}")
        print(f"{'method':<14}" + "".join(f"{'R@' + str(k):>8}" for k in KS) + "   R@10 per conversation")
        for name, by_key in by_system.items():
            spread = " ".join(f"{stem} {v:.3f}" for stem, v in per_conversation[labels][name].items())
            print(f"{name:<14}" + "".join(f"{mean(by_key[f'all@{k}']):>8.3f}" for k in KS) + f"   {spread}")
        print(
            "companion by category (questions; 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial):"
        )
        for category in CATEGORIES.values():
            values = by_system["companion"].get(f"{category}@10")
            if values:
                row = "".join(f"{mean(by_system['companion'][f'{category}@{k}']):>8.3f}" for k in KS)
                print(f"  {category:<12}({len(values):>3})" + row)
        kept = mean(by_system["companion"]["all@10"]) / (mean(by_system["ranking"]["all@10"]) or 1.0)
        print(f"the bar keeps {kept:.3f} of the whole ranking's R@10")
        prefix = "" if labels == "original" else f"{labels}_"
        figures[f"{prefix}kept_of_ranking_r10"] = round(kept, 3)
        for name, by_key in by_system.items():
            for key, values in by_key.items():
                if key.startswith("all@") or name == "companion":
                    figures[f"{prefix}{name}_{key.replace('@', '_r')}"] = round(mean(values), 3)
            per = per_conversation[labels][name].values()
            figures[f"{prefix}{name}_r10_min"] = round(min(per), 3)
            figures[f"{prefix}{name}_r10_max"] = round(max(per), 3)
    if abstained:
        spread = " ".join(f"{stem} {v:.3f}" for stem, v in abstained.items())
        print(
            f"\nforeign questions (the other conversations') with nothing recalled: {mean(list(abstained.values())):.3f}  ({spread})"
        )
        figures["foreign_abstention"] = round(mean(list(abstained.values())), 3)
        figures["foreign_abstention_min"] = round(min(abstained.values()), 3)
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
