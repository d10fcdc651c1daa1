"""A small conversation over two months, imported through the real path (embedder, FAISS, SQLite)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from companion.memory.db.store import Store
from companion.memory.operations import LongTermMemory
from companion.memory.portability.imports import import_file
from companion.paths import Paths

LOG = [
    ("s1", "2023-05-01T10:00:00", "user", "Ana", "Hi! I just adopted a grey cat called Bolacha.", "D1:1"),
    (
        "s1",
        "2023-05-01T10:00:10",
        "assistant",
        "Sam",
        "Bolacha is a lovely name! How is she settling in?",
        "D1:2",
    ),
    ("s1", "2023-05-01T10:00:20", "user", "Ana", "She hides under the sofa all day.", "D1:3"),
    ("s2", "2023-05-15T18:00:00", "user", "Ana", "My sister Marta got engaged to Tiago yesterday!", "D2:1"),
    (
        "s2",
        "2023-05-15T18:00:10",
        "assistant",
        "Sam",
        "Congratulations to Marta! When is the wedding?",
        "D2:2",
    ),
    ("s2", "2023-05-15T18:00:20", "user", "Ana", "Next spring, in Porto, by the river.", "D2:3"),
    ("s3", "2023-06-20T09:00:00", "user", "Ana", "I started surfing lessons at Carcavelos beach.", "D3:1"),
    ("s3", "2023-06-20T09:00:10", "assistant", "Sam", "Brave! Are the waves big there?", "D3:2"),
    ("s3", "2023-06-20T09:00:20", "user", "Ana", "Huge. I fell off the board twelve times.", "D3:3"),
    ("s3", "2023-06-20T09:00:30", "user", "Ana", "My secret password is hunter2-zebra-quasar.", "D3:4"),
    ("s3", "2023-06-20T09:00:40", "assistant", "Sam", "Please keep that one to yourself!", "D3:5"),
]


def write_log(path: Path, rows: list[tuple[str, str, str, str, str, str]] = LOG) -> Path:
    path.write_text(
        "".join(
            json.dumps({"session": s, "time": t, "role": r, "speaker": sp, "text": x, "id": i}) + "\n"
            for s, t, r, sp, x, i in rows
        )
    )
    return path


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return write_log(tmp_path / "log.jsonl")


@pytest.fixture
def memory(paths: Paths, log_file: Path) -> Iterator[LongTermMemory]:
    store = Store(paths.database)
    memory = LongTermMemory(store, paths.index_file)
    memory.ready()
    import_file(memory, log_file, "jsonl")
    yield memory
    memory.close()
    store.close()
