"""Ten replies of the built-in demo model (Gemma 3 270M base) to the same ten messages, through the app's own
chat path (`Engine.send`), with the chat template (how companion prompted it before) and as a plain transcript
(how it prompts a model without a chat template now).

    python benchmarks/demo_replies.py [--seed 3] [--json]

Each style is one conversation of ten turns in a fresh COMPANION_HOME, user "Ana", persona Sam, 48-token
replies, temperature 0.7. Besides the replies it counts the two failures the transcript prompt is meant to
remove: a reply that repeats the persona's own description, and a reply that speaks as both people.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time

MESSAGES = [
    "Do you like the sea?",
    "I had a long day at work.",
    "My sister is getting married next spring.",
    "What should I cook tonight?",
    "I adopted a cat called Bolacha.",
    "Can you remember what I tell you?",
    "I feel a bit lonely today.",
    "Tell me something kind.",
    "What's your favourite season?",
    "Good night, Sam!",
]


def run(style: str, seed: int) -> list[dict[str, object]]:
    os.environ["COMPANION_HOME"] = tempfile.mkdtemp(prefix=f"companion-demo-{style}-")
    from companion import config
    from companion.engine import Engine
    from companion.paths import get_paths

    paths = get_paths().ensure()
    settings = config.load(paths)
    settings.user.name = "Ana"
    settings.model.prompt_style = style
    settings.model.n_ctx = 2048
    settings.chat.max_tokens = 48
    settings.chat.seed = seed
    engine = Engine(settings, paths)
    out = []
    for number, text in enumerate(MESSAGES):
        started = time.perf_counter()
        engine.ask(text, seed=seed + number)  # a seed per turn: one fixed seed makes every turn sample alike
        kept = engine.messages()[-1].text
        out.append(
            {
                "message": text,
                "reply": kept,
                "repeats_persona": bool(
                    re.search(r"You are Sam|Sam is a warm|warm, curious and honest", kept)
                ),
                "both_speakers": bool(re.search(r"(^|\n)\s*(Ana|Sam|User|user|model)\s*:", kept)),
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    engine.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    results = {style: run(style, args.seed) for style in ("chat", "transcript")}
    for style, rows in results.items():
        print(f"\n## {style}")
        for row in rows:
            print(f"- {row['message']!r} -> {row['reply']!r}")
    figures = {
        f"{style}_{name}": sum(1 for row in rows if row[name])
        for style, rows in results.items()
        for name in ("repeats_persona", "both_speakers")
    }
    print("\n" + ", ".join(f"{k} {v}/10" for k, v in figures.items()))
    if args.json:
        print(
            json.dumps({**figures, "replies": {s: [r["reply"] for r in rows] for s, rows in results.items()}})
        )


if __name__ == "__main__":
    main()
