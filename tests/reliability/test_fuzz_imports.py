"""Hostile files: every import parser (companion JSON, JSON Lines, ChatGPT conversations.json) is fed arbitrary
bytes and arbitrary JSON shaped like the real thing. Each file either imports cleanly or fails with a
CompanionError (one sentence for the user) — never another exception, and never a partial import."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.errors import CompanionError
from companion.memory.db.store import Store
from companion.memory.operations import LongTermMemory
from companion.memory.portability.imports import import_file

TABLES = ("sessions", "messages", "memories", "memory_sources", "vectors", "audit", "profile_versions")
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LongTermMemory]:
    home = tmp_path_factory.mktemp("fuzz")
    store = Store(home / "memory.db")
    memory = LongTermMemory(store, None)
    memory.ready()
    yield memory
    memory.close()
    store.close()


def counts(memory: LongTermMemory) -> dict[str, int]:
    return {t: memory.store.count(t) for t in TABLES}


def attempt(memory: LongTermMemory, tmp: Path, name: str, raw: bytes, fmt: str) -> None:
    path = tmp / name
    path.write_bytes(raw)
    before = counts(memory)
    try:
        import_file(memory, path, fmt)
    except CompanionError as error:
        message = str(error)
        assert message and "\n" not in message and "Traceback" not in message
        assert counts(memory) == before, "a failed import changed the memory file"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def maybe(keys: list[str], value: st.SearchStrategy[Any] = values) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), value, max_size=len(keys))


@FUZZ
@given(raw=st.binary(max_size=600), fmt=st.sampled_from(["json", "jsonl", "chatgpt"]))
def test_any_bytes(memory: LongTermMemory, tmp_path: Path, raw: bytes, fmt: str) -> None:
    attempt(memory, tmp_path, "file", raw, fmt)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = scalars) -> st.SearchStrategy[Any]:
    """Well-formed four times in five, so the fuzzing reaches the deep end of each parser too."""
    return st.integers(0, 4).flatmap(lambda pick: bad if pick == 0 else good)


times = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["2026-05-01T10:00:00", "2026-05-01", "10:00"]),
)
log_line = st.fixed_dictionaries(
    {
        "session": mostly(st.text(min_size=1, max_size=5)),
        "time": mostly(times),
        "role": mostly(st.sampled_from(["user", "assistant", "system"])),
        "text": mostly(st.text(max_size=30)),
    },
    optional={"speaker": mostly(st.text(max_size=5)), "id": mostly(st.text(max_size=4) | st.integers())},
)


@FUZZ
@given(lines=st.lists(mostly(log_line, values), min_size=1, max_size=4))
def test_json_lines_shaped_like_a_log(memory: LongTermMemory, tmp_path: Path, lines: list[Any]) -> None:
    raw = "\n".join(json.dumps(line) for line in lines).encode()
    attempt(memory, tmp_path, "log.jsonl", raw, "jsonl")


stamps = st.one_of(
    st.floats(), st.integers(min_value=-(2**64), max_value=2**64), st.floats(min_value=0, max_value=2e9)
)
message = st.fixed_dictionaries(
    {
        "author": mostly(
            st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool"])}), values
        ),
        "content": mostly(
            st.fixed_dictionaries({"parts": st.lists(mostly(st.text(max_size=20), values), max_size=2)}),
            values,
        ),
    },
    optional={"create_time": mostly(stamps), "id": scalars},
)
node_ids = st.sampled_from(["a", "b", "c"])
conversation = st.fixed_dictionaries(
    {
        "mapping": mostly(
            st.dictionaries(
                node_ids,
                st.fixed_dictionaries(
                    {}, optional={"message": mostly(message, values), "parent": mostly(node_ids)}
                ),
                max_size=3,
            ),
            values,
        ),
        "current_node": mostly(node_ids),
    },
    optional={"create_time": mostly(stamps), "conversation_id": scalars, "id": scalars},
)


@FUZZ
@given(conversations=st.lists(mostly(conversation, values), min_size=1, max_size=3))
def test_chatgpt_shaped_exports(memory: LongTermMemory, tmp_path: Path, conversations: list[Any]) -> None:
    attempt(memory, tmp_path, "conversations.json", json.dumps(conversations).encode(), "chatgpt")


SESSION_KEYS = [
    "id",
    "persona",
    "title",
    "started_at",
    "ended_at",
    "off_record",
    "external_id",
    "parent_id",
    "branch_at",
]
MESSAGE_KEYS = [
    "id",
    "session_id",
    "role",
    "speaker",
    "text",
    "created_at",
    "source_id",
    "token_count",
    "incomplete",
    "model",
    "archived",
    "replaced",
]
MEMORY_KEYS = [
    "id",
    "kind",
    "text",
    "event_time",
    "created_at",
    "importance",
    "strength",
    "pinned",
    "archived",
    "superseded_by",
    "session_id",
    "thread",
]


@FUZZ
@given(
    header=maybe(
        ["format", "schema_version"], st.one_of(st.just("companion-memory"), st.integers(0, 6), scalars)
    ),
    sessions=st.one_of(st.lists(maybe(SESSION_KEYS), max_size=2), values),
    messages=st.one_of(st.lists(maybe(MESSAGE_KEYS), max_size=2), values),
    memories=st.one_of(st.lists(maybe(MEMORY_KEYS), max_size=2), values),
    sources=st.lists(maybe(["memory_id", "message_id"]), max_size=2),
)
def test_companion_json_shaped_exports(
    memory: LongTermMemory,
    tmp_path: Path,
    header: dict[str, Any],
    sessions: Any,
    messages: Any,
    memories: Any,
    sources: Any,
) -> None:
    data = {
        "format": "companion-memory",
        "schema_version": 5,
        **header,
        "sessions": sessions,
        "messages": messages,
        "memories": memories,
        "memory_sources": sources,
    }
    attempt(memory, tmp_path, "export.json", json.dumps(data).encode(), "json")
