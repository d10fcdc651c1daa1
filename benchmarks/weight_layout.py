"""What loading weights as stored costs: llama.cpp with and without its extra buffer types, same model, same prompt.

    python benchmarks/weight_layout.py [--model PATH] [--prompt-tokens 512] [--tokens 64] [--repeats 3] [--json]

llama.cpp can lay a model's weights out again at load for its fastest CPU kernels ("extra buffer types": the
repacked layouts, and AMX on a build with it). companion turns them off on a build with AMX, whose path stopped
the process with an illegal instruction (`companion.llm.llama.keep_weights_as_stored`). Each layout runs in a
process of its own (a crash ends that process, not the benchmark): the model loaded, `--prompt-tokens` tokens
evaluated at once (prefill), then `--tokens` tokens generated greedily, `--repeats` times. Prints tokens/s for
each layout and the ratio as stored ÷ extra buffers (1.0 = no price), or how the process with extra buffers
ended. Which llama.cpp is measured is the one Python imports (`PYTHONPATH` chooses another build).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys, time
import llama_cpp
from companion.llm.llama import use_extra_buffers

use_extra_buffers(sys.argv[2] == "extra")
prompt_tokens, tokens, repeats = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
llm = llama_cpp.Llama(sys.argv[1], n_ctx=prompt_tokens + tokens + 8, n_batch=512, n_threads=int(sys.argv[6]),
                      verbose=False)
text = " ".join(["the quiet river runs past the old mill and the children count the boats"] * 200)
prompt = llm.tokenize(text.encode())[:prompt_tokens]
out = {"system": llama_cpp.llama_print_system_info().decode(), "prefill": [], "generate": []}
for _ in range(repeats):
    llm.reset()
    started = time.perf_counter()
    llm.eval(prompt)
    out["prefill"].append(len(prompt) / (time.perf_counter() - started))
    started = time.perf_counter()
    made = 0
    for token in llm.generate(prompt, temp=0.0):
        made += 1
        if made >= tokens:
            break
    out["generate"].append(made / (time.perf_counter() - started))
print(json.dumps(out))
"""


def run(model: Path, layout: str, args: argparse.Namespace, threads: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(CHILD)
    try:
        done = subprocess.run(
            [
                sys.executable,
                script.name,
                str(model),
                layout,
                str(args.prompt_tokens),
                str(args.tokens),
                str(args.repeats),
                str(threads),
            ],
            capture_output=True,
            text=True,
            # companion as this script finds it, after any PYTHONPATH that chooses another llama.cpp build
            env=os.environ
            | {
                "HF_HUB_OFFLINE": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])),
            },
        )
    finally:
        os.unlink(script.name)
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        return {"ended": how}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["ended"] = "ok"
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="a GGUF (default: the demo model)")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    model = args.model
    if model is None:
        os.environ.setdefault("COMPANION_HOME", tempfile.mkdtemp(prefix="companion-bench-"))
        from companion.llm.models import ensure_demo_model
        from companion.paths import get_paths

        model = ensure_demo_model(get_paths())
    from companion.llm.llama import physical_cores, uses_amx

    threads = physical_cores()
    stored = run(model, "stored", args, threads)
    extra = run(model, "extra", args, threads)
    figures: dict[str, Any] = {
        "model": model.name,
        "threads": threads,
        "amx_build": uses_amx(stored.get("system", "")),
        "extra_buffers_ended": extra["ended"],
        "stored_ended": stored["ended"],
    }
    print(f"llama.cpp: {stored.get('system', '?').strip()}")
    for name, result in (("as stored", stored), ("extra buffer types", extra)):
        if result["ended"] != "ok":
            print(f"{name:>20}: the process ended by {result['ended']}")
            continue
        prefill, generate = statistics.median(result["prefill"]), statistics.median(result["generate"])
        key = "stored" if result is stored else "extra"
        figures[f"{key}_prefill_tps"], figures[f"{key}_generate_tps"] = round(prefill, 1), round(generate, 1)
        print(f"{name:>20}: prefill {prefill:8.1f} tokens/s   generation {generate:6.1f} tokens/s")
    if stored["ended"] == extra["ended"] == "ok":
        figures["prefill_stored_over_extra"] = round(
            figures["stored_prefill_tps"] / figures["extra_prefill_tps"], 3
        )
        figures["generate_stored_over_extra"] = round(
            figures["stored_generate_tps"] / figures["extra_generate_tps"], 3
        )
        print(
            f"as stored ÷ extra buffer types: prefill {figures['prefill_stored_over_extra']:.3f}, "
            f"generation {figures['generate_stored_over_extra']:.3f}"
        )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
