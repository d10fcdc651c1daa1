"""No network by default: a chat turn with recall, a consolidation job and the TUI open no internet socket and
resolve no host name (an audit hook watches every socket the process creates). Only `model pull` and a
configured remote backend may talk to the network, and no module phones home."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from companion.paths import Paths

SCRIPT = r"""
import json, socket, sys
events = []

def watch(event, args):
    if event == "socket.__new__" and args[1] in (socket.AF_INET, socket.AF_INET6):
        events.append(f"{event} family={args[1]}")
    elif event in ("socket.connect", "socket.bind", "socket.sendto") and isinstance(args[1], tuple):
        events.append(f"{event} {args[1]!r}")
    elif event == "socket.getaddrinfo":
        events.append(f"{event} {args[0]!r}")

sys.addaudithook(watch)

import asyncio
from datetime import UTC, datetime, timedelta
from companion import config
from companion.engine import Engine
from companion.paths import get_paths

paths = get_paths().ensure()
settings = config.load(paths)
settings.chat.max_tokens = 24
settings.chat.seed = 1

# 1. Two conversations: the second recalls the first (embedder + FAISS + SQLite), then the session ends.
for text in ("My sister Ana lives in Lisbon and plays the cello.", "Where does my sister live?"):
    engine = Engine(settings, paths)
    engine.ask(text)
    engine.memory.ready()
    engine.close()
stage = {"chat": list(events)}

# 2. Consolidation of the ended sessions with the model (summary, facts, profile).
from companion.llm.models import open_model
from companion.memory.upkeep import scheduler
from companion.memory.operations import LongTermMemory
from companion.memory.db.store import Store

store = Store(paths.database)
memory = LongTermMemory(store, paths.index_file, settings.memory.embedding_model)
model = open_model(settings, paths)
outcome = scheduler.run_jobs(memory, datetime.now(UTC) + timedelta(hours=2), only="consolidate", force=True,
                             options=scheduler.UpkeepOptions(model=lambda: model, idle_minutes=1, user="Ana"))
model.close(); memory.close(); store.close()
stage["consolidate"] = list(events)

# 3. The TUI: open, send a message, read the reply, open the memories screen, quit.
from companion.tui.app import CompanionApp

async def tui():
    app = CompanionApp(engine=Engine(settings, paths), welcome=False)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(3):
            await app.workers.wait_for_complete(); await pilot.pause()
        composer = app.chat.query_one("#composer")
        composer.text = "Hello again!"; composer.focus()
        await pilot.press("enter")
        for _ in range(3):
            await app.workers.wait_for_complete(); await pilot.pause()
        await pilot.press("f2")
        await app.workers.wait_for_complete(); await pilot.pause()
    app.engine.close()

asyncio.run(tui())
stage["tui"] = list(events)
print(json.dumps({"events": stage, "consolidate": outcome}))
"""


def test_chat_consolidation_and_tui_open_no_network_socket(demo_home: Paths) -> None:
    env = os.environ.copy()
    env.pop("HF_HUB_OFFLINE", None)  # the guard must hold without the offline switch too
    env.pop("HF_HUB_DISABLE_TELEMETRY", None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["events"] == {"chat": [], "consolidate": [], "tui": []}
    assert not report["consolidate"]["consolidate"].startswith("failed"), report


NETWORK = re.compile(
    r"^\s*(import|from)\s+(httpx|requests|urllib\.request|http\.client|socket|huggingface_hub)\b", re.M
)
ALLOWED = {"llm/remote.py", "llm/models.py"}  # the remote backend and `model pull`


def test_only_the_remote_backend_and_model_pull_can_reach_the_network() -> None:
    package = Path(__file__).resolve().parents[2] / "companion"
    reaching = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if NETWORK.search(path.read_text(encoding="utf-8"))
    }
    assert reaching <= ALLOWED, reaching - ALLOWED
    text = "\n".join(p.read_text(encoding="utf-8") for p in package.rglob("*.py"))
    # "update check(er)", but not the SQL of the check-ins table ("update checkins set …").
    for phrase in ("telemetry", r"update check(?!ins\b)", "posthog", "sentry", "analytics"):
        assert not re.search(phrase, text.lower()), phrase
