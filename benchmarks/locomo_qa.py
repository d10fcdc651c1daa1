"""Answer-level LoCoMo: does what companion recalls help the model answer? Token F1 per category.

    python benchmarks/locomo_qa.py ../shared/data/locomo-dev/30.json [--model NAME] [--limit N] [--json]

Every question of the conversation that has an answer goes through the app's own chat path (`Engine.send`: recall
at the conversation's date, the prompt the app builds for the configured model), each in a new conversation,
three ways:
  - no memory: recall turned off (what the model says without knowing the person);
  - companion: recall as the app does it;
  - gold evidence: the memory block holds exactly the turns the question's evidence names (perfect recall).
The reply is scored with LoCoMo's token F1 (answers normalised: lower case, no punctuation or articles; a
multi-hop answer's comma-separated parts each matched to their best part of the reply). Prompt tokens and
seconds per answer are recorded.

The model is the configured one: the built-in demo model (whose figures are low: it is a 270M base model), a
registered GGUF (`--model NAME`), or a remote OpenAI-compatible server (`--base-url http://host:8080/v1
[--remote-model NAME]`, key from COMPANION_API_KEY): the benchmark then measures that server's model behind
companion's recall.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import string
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, timedelta
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from locomo_retrieval import CATEGORIES, convert, evidence_ids  # noqa: E402

from companion.memory.tables import messages as message_table


def normalise(text: str) -> list[str]:
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the|and)\b", " ", text)
    return text.split()


def f1(prediction: str, answer: str) -> float:
    said, gold = normalise(prediction), normalise(answer)
    common = Counter(said) & Counter(gold)
    same = sum(common.values())
    if not said or not gold or same == 0:
        return 0.0
    precision, recall = same / len(said), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def score(prediction: str, answer: str, category: int) -> float:
    if category == 1:  # several answers: each part of the gold answer against its best part of the reply
        parts = [p for p in str(answer).split(",") if p.strip()]
        said = [p for p in prediction.split(",") if p.strip()] or [prediction]
        return mean(max(f1(s, p) for s in said) for p in parts) if parts else 0.0
    return f1(prediction, str(answer))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("conversation", type=Path)
    parser.add_argument("--model", help="a registered model name (default: the configured one)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--base-url",
        help="an OpenAI-compatible server (e.g. http://gpu-box:8080/v1) instead of a local GGUF; "
        "the API key, if it wants one, from COMPANION_API_KEY",
    )
    parser.add_argument("--remote-model", default="", help="the model name the server wants, if any")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    conversation = json.loads(args.conversation.read_text())
    lines, last = convert(conversation)
    qas = [qa for qa in conversation["qa"] if "answer" in qa and evidence_ids(qa)]
    if args.limit:
        qas = qas[: args.limit]
    home = Path(tempfile.mkdtemp(prefix="locomo-qa-"))
    os.environ["COMPANION_HOME"] = str(home)
    from companion import config, timeutil
    from companion.engine import Engine
    from companion.memory.portability.formats import LogLine
    from companion.memory.portability.imports import import_log
    from companion.memory.records import Hit
    from companion.paths import get_paths

    paths = get_paths().ensure()
    settings = config.load(paths)
    settings.user.name = conversation["speaker_a"]
    settings.chat.max_tokens = args.max_tokens
    settings.chat.temperature = 0.0
    settings.chat.seed = 1
    if args.base_url:
        settings.model.backend = "remote"
        settings.remote.base_url = args.base_url
        settings.remote.model = args.remote_model
    now = (last + timedelta(days=1)).replace(tzinfo=UTC)
    engine = Engine(settings, paths, model_name=args.model, now=lambda: now)
    engine.memory.ready()
    import_log(
        engine.memory,
        [
            LogLine(
                x["session"], timeutil.normalize(x["time"]) or "", x["role"], x["speaker"], x["text"], x["id"]
            )
            for x in lines
        ],
    )
    by_source = {
        m.source_id: m
        for m in message_table.page(engine.store, limit=len(lines) + 10)
        if m.source_id is not None
    }

    class Gold(Engine):
        """The same chat path, with recall replaced by the question's evidence turns."""

        evidence: list[str] = []

        def recall(self, text: str) -> list[Hit]:
            hits = []
            for source in self.evidence:
                m = by_source.get(source)
                if m is not None:
                    hits.append(
                        Hit(
                            m.id,
                            "message",
                            m.text,
                            1.0,
                            m.created_at,
                            [source],
                            m.session_id,
                            m.speaker,
                            m.role,
                        )
                    )
            return hits

    gold = Gold(settings, paths, model=engine.model, now=lambda: now)  # the same loaded model
    results: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    costs: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for number, qa in enumerate(qas, start=1):
        category = CATEGORIES.get(qa["category"], str(qa["category"]))
        for way, runner in (("no memory", engine), ("companion", engine), ("gold evidence", gold)):
            runner.settings.memory.recall_limit = 0 if way == "no memory" else 5
            runner.new_session()
            if runner is gold:
                gold.evidence = evidence_ids(qa)
            started = time.perf_counter()
            reply, turn = runner.ask(qa["question"])
            seconds = time.perf_counter() - started
            f = score(turn.reply_text, qa["answer"], qa["category"])
            results[way][category].append(f)
            results[way]["all"].append(f)
            costs[way]["prompt_tokens"].append(turn.stats.prompt_tokens)
            costs[way]["seconds"].append(seconds)
        print(
            f"{number:3d}/{len(qas)} {category:<11} {qa['question'][:60]!r} -> {turn.reply_text[:60]!r}"
            f" (gold {str(qa['answer'])[:30]!r})",
            flush=True,
        )
    gold.close()
    engine.close()
    ways = ["no memory", "companion", "gold evidence"]
    print(
        f"\nLoCoMo token F1, conversation {args.conversation.stem}, model {engine.model.name}, {len(qas)} questions"
    )
    print(f"{'category':<14}" + "".join(f"{w:>16}" for w in ways))
    for category in ["all", *CATEGORIES.values()]:
        if results["companion"].get(category):
            print(
                f"{category:<14}"
                + "".join(f"{mean(results[w][category]):>16.3f}" for w in ways)
                + f"   ({len(results['companion'][category])})"
            )
    print(f"{'prompt tokens':<14}" + "".join(f"{mean(costs[w]['prompt_tokens']):>16.0f}" for w in ways))
    print(f"{'s per answer':<14}" + "".join(f"{mean(costs[w]['seconds']):>16.2f}" for w in ways))
    if args.json:
        print(
            json.dumps(
                {
                    "conversation": args.conversation.stem,
                    "model": engine.model.name,
                    "questions": len(qas),
                    "f1": {w: {c: mean(v) for c, v in results[w].items()} for w in ways},
                    "prompt_tokens": {w: mean(costs[w]["prompt_tokens"]) for w in ways},
                    "seconds_per_answer": {w: mean(costs[w]["seconds"]) for w in ways},
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
