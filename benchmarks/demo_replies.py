"""The built-in demo model (Gemma 3 270M base) in conversations with a memory: how many of its replies write
the prompt's furniture instead of a reply — the memory block (its header or a quoted note), a line for either
speaker, the persona's own description — and so would make up memories if they were kept.

    python benchmarks/demo_replies.py [--conversations 6] [--seed 3] [--json]

A fresh COMPANION_HOME gets three earlier conversations of Marta's (imported with `companion memory import`,
so recall has something to bring), then `--conversations` new conversations of ten messages each go through
the app's chat path (`Engine.send`), user Marta, persona Sam, 64-token replies, temperature 0.7, one seed per
turn. It counts what is stored, which is what the next prompts, searches and upkeep read. It uses only what
every version of companion has, so it measures the code before a change as well (run it with PYTHONPATH
pointing at a checkout of the older commit).
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

EARLIER = [
    ("2026-11-02T19:00:00", "One important thing: I'm allergic to peanuts."),
    ("2026-11-02T19:01:00", "I work as a nurse at the hospital in Porto."),
    ("2026-11-09T20:00:00", "My sister Lena is getting married on June 14."),
    ("2026-11-09T20:02:00", "I prefer green tea to coffee."),
    ("2026-11-16T21:00:00", "I adopted a cat called Bolacha last month."),
    ("2026-11-16T21:03:00", "Work has been exhausting, three night shifts in a row."),
]
MESSAGES = [
    "Hi Sam, it's Marta again.",
    "What should I avoid eating at the wedding?",
    "Do you remember my cat's name?",
    "I had a long shift today.",
    "What do I like to drink?",
    "Lena called me about the dress.",
    "I feel a bit lonely tonight.",
    "Tell me something kind.",
    "What do you remember about my work?",
    "Good night, Sam!",
]
# The memory block written as a reply: its header, a quoted note (`- (fact) …`), or a note's own text — a
# quote that opens with a speaker's name, the ` / Name:` that joins a note to the turn before it, or the
# escaped quotes of the block (a backslash before a quote).
BLOCK = re.compile(
    r"\[What you remember|(^|\n)\s*-\s*\((message|fact|summary|note|digest|profile|lore)\)"
    r'|"\s*(Marta|Sam)\s*:| / (Marta|Sam):|\\"',
    re.I,
)
SPEAKER = re.compile(r"(^|\n)\s*(Marta|Sam|User|user|model)\s*:")
PERSONA = re.compile(r"You are Sam|Sam is a warm|warm, curious and honest|The following is a chat between")


def run(conversations: int, seed: int) -> list[dict[str, object]]:
    home = tempfile.mkdtemp(prefix="companion-demo-replies-")
    os.environ["COMPANION_HOME"] = home
    lines = []
    for number, (when, text) in enumerate(EARLIER):
        lines.append(
            json.dumps(
                {
                    "session": f"earlier-{number // 2}",
                    "time": when,
                    "role": "user",
                    "speaker": "Marta",
                    "text": text,
                }
            )
        )
        lines.append(
            json.dumps(
                {
                    "session": f"earlier-{number // 2}",
                    "time": when,
                    "role": "assistant",
                    "speaker": "Sam",
                    "text": "Thank you for telling me.",
                }
            )
        )
    earlier = os.path.join(home, "earlier.jsonl")
    with open(earlier, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    subprocess.run(
        [sys.executable, "-m", "companion", "memory", "import", earlier], check=True, capture_output=True
    )
    from companion import config
    from companion.engine import Engine
    from companion.paths import get_paths

    paths = get_paths().ensure()
    settings = config.load(paths)
    settings.user.name = "Marta"
    settings.model.n_ctx = 2048
    settings.chat.max_tokens = 64
    settings.chat.seed = seed
    out = []
    for conversation in range(conversations):
        engine = Engine(settings, paths)
        for number, text in enumerate(MESSAGES):
            started = time.perf_counter()
            turn = engine.send(text, seed=seed + 100 * conversation + number)
            "".join(turn)
            kept = engine.messages()[-1].text if engine.messages()[-1].role == "assistant" else ""
            out.append(
                {
                    "message": text,
                    "reply": kept,
                    "memory_block": bool(BLOCK.search(kept)),
                    "speaker_line": bool(SPEAKER.search(kept)),
                    "repeats_persona": bool(PERSONA.search(kept)),
                    "recalled": len(turn.hits),
                    "seconds": round(time.perf_counter() - started, 2),
                }
            )
        engine.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=6)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    rows = run(args.conversations, args.seed)
    for row in rows:
        print(f"- {row['message']!r} -> {row['reply']!r}")
    total = len(rows)
    figures: dict[str, object] = {"replies": total}
    for name in ("memory_block", "speaker_line", "repeats_persona"):
        figures[name] = sum(1 for row in rows if row[name])
    figures["furniture"] = sum(
        1 for r in rows if r["memory_block"] or r["speaker_line"] or r["repeats_persona"]
    )
    figures["furniture_share"] = round(int(figures["furniture"]) / max(total, 1), 3)  # type: ignore[call-overload]
    figures["turns_with_recall"] = sum(1 for row in rows if row["recalled"])
    figures["mean_seconds"] = round(sum(float(r["seconds"]) for r in rows) / max(total, 1), 2)  # type: ignore[arg-type]
    print("\n" + ", ".join(f"{k} {v}" for k, v in figures.items()))
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
