"""Import at the embedder's speed: `companion memory import` of N messages against the embedding model alone on
the same texts, in the same run.

    python benchmarks/import_speed.py [--messages 100000] [--json]

The texts are synthetic chat turns (8–40 words, seeded): common words, and words drawn from the embedding model's
own vocabulary (whole English words), in sessions of 40. First
the embedder alone encodes every text (what an import cannot do faster than), then the public command imports
the JSON Lines file into a fresh COMPANION_HOME (start-up, parsing, embedding, the one write transaction with
its FTS5 triggers and vectors, all included). The figure is import messages/s ÷ embedder texts/s (target ≥ 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def texts(count: int, vocabulary: list[str], seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    common = "i you we the a and to of in it is was that my for on with have this".split()
    out = []
    for number in range(count):
        words = [
            rng.choice(common) if rng.random() < 0.4 else rng.choice(vocabulary)
            for _ in range(rng.randint(8, 40))
        ]
        out.append(" ".join(words).capitalize() + f" ({number}).")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from companion.memory.recall.embed import Embedder

    embedder = Embedder()
    words = sorted(w for w in embedder.model.tokenizer.vocab if w.isalpha() and w.islower() and len(w) > 3)
    said = texts(args.messages, words)
    embedder.encode(said[:256])  # loaded and warm, as the import's own embedder is after its first batch
    started = time.perf_counter()
    embedder.encode(said)
    embed_s = time.perf_counter() - started
    home = Path(tempfile.mkdtemp(prefix="companion-import-"))
    log = home / "log.jsonl"
    log.write_text(
        "".join(
            json.dumps(
                {
                    "session": f"s{n // 40}",
                    "time": f"2024-01-{1 + (n // 40) % 28:02d}T{(n // 60) % 24:02d}:{n % 60:02d}:00",
                    "role": "user" if n % 2 == 0 else "assistant",
                    "text": text,
                    "id": f"m{n}",
                }
            )
            + "\n"
            for n, text in enumerate(said)
        )
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "companion", "memory", "import", str(log)],
        env=os.environ | {"COMPANION_HOME": str(home), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    import_s = time.perf_counter() - started
    embed_rate, import_rate = args.messages / embed_s, args.messages / import_s
    print(done.stdout.strip())
    print(f"embedder alone: {embed_rate:,.0f} texts/s ({embed_s:.1f} s)")
    print(f"companion memory import: {import_rate:,.0f} messages/s ({import_s:.1f} s, start-up included)")
    print(f"import / embedder: {import_rate / embed_rate:.3f} (target >= 0.9)")
    if args.json:
        print(
            json.dumps(
                {
                    "messages": args.messages,
                    "embedder_texts_per_s": round(embed_rate, 1),
                    "import_messages_per_s": round(import_rate, 1),
                    "import_over_embedder": round(import_rate / embed_rate, 3),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
