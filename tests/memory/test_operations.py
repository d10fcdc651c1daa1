"""What the user does with their memory: forget for good, pin, edit, export and import without loss."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from companion.errors import CompanionError
from companion.memory.db.store import Store
from companion.memory.operations import LongTermMemory
from companion.memory.portability.exports import export_json, export_jsonl, export_markdown
from companion.memory.portability.imports import import_file
from companion.memory.records import Ref
from companion.memory.tables import audit as audit_table
from companion.memory.tables import memories as memory_table
from companion.memory.tables import messages as message_table
from companion.memory.tables import sessions as session_table
from companion.paths import Paths
from tests.rows import add_memory

SECRET = "hunter2-zebra-quasar"


def message_id(memory: LongTermMemory, source: str) -> int:
    return int(memory.store.scalar("select id from messages where source_id = ?", (source,)))


def raw_bytes(paths: Paths) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-shm"):
        file = Path(f"{paths.database}{suffix}")
        if file.exists():
            data += file.read_bytes()
    return data


def test_forgotten_text_is_found_nowhere(paths: Paths, memory: LongTermMemory) -> None:
    secret_id = message_id(memory, "D3:4")
    only = add_memory(memory.store, "fact", f"Ana's password is {SECRET}", sources=[secret_id])
    shared = add_memory(
        memory.store, "fact", "Ana surfs and shares secrets", sources=[secret_id, message_id(memory, "D3:1")]
    )
    memory.embed_memories([only, shared])
    assert SECRET.encode() in raw_bytes(paths)

    done = memory.forget(messages=[secret_id])
    assert done["messages"] == 1 and done["memories"] == 1

    assert SECRET.encode() not in raw_bytes(paths)
    assert SECRET.split("-")[1].encode() not in raw_bytes(paths)  # no token of it in the FTS index either
    with sqlite3.connect(paths.database) as conn:
        for table in ("messages", "memories", "audit", "messages_fts", "memories_fts"):
            for row in conn.execute(f"select * from {table}"):
                assert SECRET not in " ".join(map(str, row)), table
    assert memory_table.get(memory.store, only) is None  # derived only from it: gone
    kept = memory_table.sources(memory.store, shared)  # derived also from another message: re-linked
    assert [m.source_id for m in kept] == ["D3:1"]
    assert SECRET not in json.dumps(export_json(memory))
    assert not [h for h in memory.search("secret password zebra", limit=20) if SECRET in h.text]
    # The next turn no longer carries the forgotten one in its context.
    follower = memory.store.scalar("select context from messages where source_id = 'D3:5'")
    assert SECRET not in follower and "twelve times" in follower


def test_forget_a_session_and_before_a_date(memory: LongTermMemory) -> None:
    session = memory.store.scalar("select id from sessions where external_id = 's1'")
    memory.forget(sessions=[session])
    assert memory.store.scalar("select count(*) from messages where session_id = ?", (session,)) == 0
    assert not [h for h in memory.search("grey cat Bolacha", limit=10) if "Bolacha" in h.text]
    ids = memory.select_messages(before=datetime(2023, 6, 1, tzinfo=UTC))
    assert len(ids) == 3
    memory.forget(messages=ids)
    assert memory.store.count("messages") == 5


def test_pin_edit_restore_and_history(memory: LongTermMemory) -> None:
    note = memory.add_note("Ana prefers tea to coffee")
    memory.pin(note)
    memory.edit(note, "Ana prefers green tea to coffee")
    item = memory_table.get(memory.store, note)
    assert item is not None and item.pinned and item.text == "Ana prefers green tea to coffee"
    actions = [h.action for h in audit_table.history(memory.store, "memory", note)]
    assert actions == ["add", "pin", "update"]
    assert memory.search("what does Ana like to drink", limit=1)[0].text == "Ana prefers green tea to coffee"
    with pytest.raises(CompanionError, match="not archived"):
        memory.restore(note)
    with pytest.raises(CompanionError, match="no memory 999"):
        memory.pin(999)


def test_a_saved_index_older_than_a_rewritten_vector_is_rebuilt_not_trusted(
    paths: Paths, memory: LongTermMemory
) -> None:
    """A vector rewritten under its own key by a process that never opened the index leaves the saved index
    with the same keys (count and checksum match) and the old vector: the next process must not load it."""
    note = memory.add_note("Ana prefers tea to coffee")
    memory.search("tea", limit=1)  # the index is open and saved with the note's vector
    memory.close()
    store = Store(paths.database)
    writer = LongTermMemory(store, paths.index_file)  # the index is never opened here
    text = "Ana rides her bicycle to work along the river"
    with writer.write() as w:
        memory_table.update_text(
            w, note, text, "edited", vector=writer.vector_of(text), model=writer.embed_model
        )
    assert writer.stats()["index_state"].startswith("saved before a vector changed")
    reader = LongTermMemory(store, paths.index_file)
    query = "how does Ana get to work?"
    hit = next(h for h in reader.search(query, limit=5, everything=True) if h.id == note and h.kind == "note")
    expected = float(reader.embedder.encode_one(text) @ reader.embedder.encode_one(query))
    assert abs(hit.features["cosine"] - expected) < 1e-3
    assert reader.index.state == "rebuilt"
    reader.close()
    writer.close()
    assert LongTermMemory(store, paths.index_file).stats()["index_state"] == "saved, up to date"
    store.close()


def test_json_round_trip_is_lossless(
    tmp_path: Path, memory: LongTermMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    note = memory.add_note("Ana's birthday is the 14th of June")
    memory.pin(note)
    add_memory(memory.store, "fact", "Ana has a cat", sources=[message_id(memory, "D1:1")])
    first = export_json(memory)
    file = tmp_path / "export.json"
    file.write_text(json.dumps(first))
    monkeypatch.setenv("COMPANION_HOME", str(tmp_path / "elsewhere"))
    from companion.paths import get_paths

    other_paths = get_paths().ensure()
    store = Store(other_paths.database)
    other = LongTermMemory(store, other_paths.index_file)
    result = import_file(other, file, "json")
    assert result.messages == len(first["messages"]) and result.memories == 2
    second = export_json(other)
    first.pop("exported_at")
    second.pop("exported_at")
    assert json.dumps(second, sort_keys=True) == json.dumps(first, sort_keys=True)
    assert other.search("birthday", limit=1)[0].text == "Ana's birthday is the 14th of June"
    store.close()


def test_jsonl_export_imports_back(tmp_path: Path, memory: LongTermMemory) -> None:
    text = export_jsonl(memory)
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0] == {
        "session": "s1",
        "time": "2023-05-01T10:00:00.000+00:00",
        "role": "user",
        "speaker": "Ana",
        "text": "Hi! I just adopted a grey cat called Bolacha.",
        "id": "D1:1",
    }
    file = tmp_path / "again.jsonl"
    file.write_text(text)
    again = import_file(memory, file, "jsonl")
    assert again.messages == 0 and again.skipped == len(lines)  # importing twice adds nothing


def test_markdown_journal(memory: LongTermMemory) -> None:
    memory.add_note("Ana loves the sea")
    text = export_markdown(memory)
    assert text.index("Ana loves the sea") < text.index("grey cat")
    assert "## 2023-05-01 — s1" in text and "**Ana** (10:00):" in text


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("{not json", "Line 2 is not valid JSON"),
        ('{"session": "x", "time": "yesterday", "role": "user", "text": "hi"}', "Line 2: 'time'"),
        ('{"session": "x", "time": "2023-01-01T00:00:00", "role": "robot", "text": "hi"}', "Line 2: 'role'"),
        ('{"session": "x", "time": "2023-01-01T00:00:00", "role": "user"}', "'text' is missing"),
        ('["a list"]', "Line 2 is not a JSON object"),
        ('{"session": "", "time": "2023-01-01T00:00:00", "role": "user", "text": "hi"}', "'session' must be"),
    ],
)
def test_malformed_jsonl_imports_nothing(tmp_path: Path, paths: Paths, line: str, words: str) -> None:
    good = json.dumps({"session": "x", "time": "2023-01-01T00:00:00", "role": "user", "text": "fine"})
    file = tmp_path / "bad.jsonl"
    file.write_text(good + "\n" + line + "\n" + good + "\n")
    store = Store(paths.database)
    memory = LongTermMemory(store, paths.index_file)
    with pytest.raises(CompanionError, match=words):
        import_file(memory, file, "jsonl")
    assert store.count("messages") == 0 and store.count("sessions") == 0
    store.close()


def test_chatgpt_export_import(tmp_path: Path, paths: Paths) -> None:
    conversation = {
        "title": "Trip",
        "conversation_id": "c1",
        "create_time": 1684000000.0,
        "current_node": "n3",
        "mapping": {
            "n0": {"id": "n0", "message": None, "parent": None, "children": ["n1"]},
            "n1": {
                "id": "n1",
                "parent": "n0",
                "children": ["n2"],
                "message": {
                    "id": "n1",
                    "author": {"role": "user"},
                    "create_time": 1684000001.0,
                    "content": {"content_type": "text", "parts": ["Plan a trip to Madeira"]},
                },
            },
            "n2": {
                "id": "n2",
                "parent": "n1",
                "children": ["n3", "nX"],
                "message": {
                    "id": "n2",
                    "author": {"role": "assistant"},
                    "create_time": 1684000002.0,
                    "content": {"content_type": "text", "parts": ["Levadas and swimming!"]},
                },
            },
            "nX": {
                "id": "nX",
                "parent": "n2",
                "children": [],
                "message": {
                    "id": "nX",
                    "author": {"role": "user"},
                    "create_time": 1684000003.0,
                    "content": {"content_type": "text", "parts": ["an abandoned branch"]},
                },
            },
            "n3": {
                "id": "n3",
                "parent": "n2",
                "children": [],
                "message": {
                    "id": "n3",
                    "author": {"role": "user"},
                    "create_time": 1684000004.0,
                    "content": {"content_type": "text", "parts": ["And food?"]},
                },
            },
        },
    }
    file = tmp_path / "conversations.json"
    file.write_text(json.dumps([conversation]))
    store = Store(paths.database)
    memory = LongTermMemory(store, paths.index_file)
    result = import_file(memory, file, None)
    assert result.messages == 3
    texts = [r[0] for r in store.conn.execute("select text from messages order by id")]
    assert texts == ["Plan a trip to Madeira", "Levadas and swimming!", "And food?"]
    # The conversation keeps its title, and ChatGPT's replies are ChatGPT's (what upkeep summarises by).
    assert list(store.conn.execute("select title, persona from sessions")) == [("Trip", "ChatGPT")]
    assert [r[0] for r in store.conn.execute("select speaker from messages where role = 'assistant'")] == [
        "ChatGPT"
    ]
    file.write_text(json.dumps([{"no": "mapping"}]))
    with pytest.raises(CompanionError, match="ChatGPT"):
        import_file(memory, file, "chatgpt")
    store.close()


def test_refs() -> None:
    assert Ref.parse("12") == Ref("memory", 12)
    assert Ref.parse("message:7") == Ref("message", 7)
    with pytest.raises(CompanionError, match="not a memory id"):
        Ref.parse("seven")


def test_a_start_embeds_what_came_after_the_newest_vector_and_the_index_job_fills_gaps(
    memory: LongTermMemory,
) -> None:
    """Starting looks only past the newest embedded message (seconds saved at a million messages); a gap in the
    middle, which only an embedding error leaves, is filled by the index job, which looks at everything."""
    gap = message_id(memory, "D2:1")
    with memory.store.transaction() as conn:
        conn.execute("delete from vectors where kind = 'message' and item_id = ?", (gap,))
    session = session_table.new(memory.store)
    newest = message_table.add(memory.store, session, "user", "I painted the kitchen yellow today.")

    def embedded(item: int) -> bool:
        return bool(
            memory.store.scalar(
                "select count(*) from vectors where kind = 'message' and item_id = ?", (item,)
            )
        )

    assert memory.embed_missing(everything=False) == 1
    assert embedded(newest) and not embedded(gap)
    assert memory.embed_missing() == 1  # the index job's look
    assert embedded(gap)
