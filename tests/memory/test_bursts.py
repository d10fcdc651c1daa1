"""People type in bursts ("I signed up for a class" / "at the community centre" / "pottery!!"): a message is read
with the burst it ends and the turn it answers (the other side's burst before it), so a short message is found
by what its burst says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from companion.memory.db.store import Store
from companion.memory.operations import LongTermMemory
from companion.memory.records import (
    READ_WITH,
    VARIANT_MESSAGE,
    VARIANT_MESSAGE_CONTEXT,
    TurnBefore,
    read_with,
    vector_key,
)
from companion.memory.tables import messages as message_table
from companion.memory.tables import sessions as session_table
from companion.memory.tables import vectors as vector_table
from companion.paths import Paths


def turn(role: str, time: str, speaker: str = "") -> TurnBefore:
    return TurnBefore(0, "", None, role, speaker, time)


def test_a_message_is_read_with_its_burst_and_the_turn_it_answers() -> None:
    asked = turn("assistant", "2026-11-02T10:00:00", "Sam")
    burst = [turn("user", f"2026-11-02T10:00:{s:02d}", "Ana") for s in (10, 15, 40)]
    this = turn("user", "2026-11-02T10:01:30", "Ana")
    assert read_with([asked, *burst[:2]], this) == 3  # the burst so far, and the question it answers
    assert read_with([asked], burst[0]) == 1  # no burst: the turn before, as always
    assert read_with([burst[0]], turn("assistant", "2026-11-02T10:00:20", "Sam")) == 1
    # A reply is read with the whole burst it answers (but not with what came before that burst).
    reply = turn("assistant", "2026-11-02T10:01:00", "Sam")
    assert read_with([asked, *burst[:2]], reply) == 2
    assert read_with([turn("user", "2026-11-02T09:00:00", "Ana"), asked], burst[0]) == 1
    # The same speaker after a while is a new thought: read with the message before only.
    assert read_with([asked, burst[0]], turn("user", "2026-11-02T10:30:00", "Ana")) == 1
    # A long burst: its latest messages, at most READ_WITH.
    many = [turn("user", f"2026-11-02T10:0{m}:00", "Ana") for m in range(8)]
    assert read_with(many[:-1], many[-1]) == READ_WITH
    # A log without times: one speaker's messages in a row are a burst.
    assert read_with([turn("assistant", "", "Sam"), turn("user", "", "Ana")], turn("user", "", "ana")) == 2
    assert read_with([], this) == 0


BURST = [
    ("b", "2026-11-02T18:00:00", "assistant", "Sam", "What are you up to this winter?"),
    ("b", "2026-11-02T18:00:40", "user", "Ana", "I finally signed up for an evening class"),
    ("b", "2026-11-02T18:00:46", "user", "Ana", "at the community centre near the station"),
    ("b", "2026-11-02T18:00:51", "user", "Ana", "pottery!!"),
    ("b", "2026-11-02T18:01:30", "assistant", "Sam", "That sounds lovely."),
]
FILLER = [
    "I signed the lease for the flat yesterday.",
    "The station was closed again this morning.",
    "My sister finally finished her evening shifts.",
    "We went to the market and bought apples.",
    "The class photo from school turned up in a box.",
    "I walked to the centre of town after lunch.",
    "My neighbour up the road has a new dog.",
    "I am thinking about painting the kitchen.",
]


def write_log(path: Path) -> None:
    lines = [
        {
            "session": f"f{n}",
            "time": f"2026-10-{n + 1:02d}T09:00:00",
            "role": role,
            "speaker": who,
            "text": text,
        }
        for n, text in enumerate(FILLER)
        for role, who, text in (("user", "Ana", text), ("assistant", "Sam", "Tell me more."))
    ]
    lines += [{"session": s, "time": t, "role": r, "speaker": w, "text": x} for s, t, r, w, x in BURST]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def companion(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "companion", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_short_message_is_found_by_what_its_burst_says(paths: Paths, tmp_path: Path) -> None:
    log = tmp_path / "chat.jsonl"
    write_log(log)
    companion("memory", "import", str(log))
    store = Store(paths.database)
    pottery = store.conn.execute("select id, context from messages where text = 'pottery!!'").fetchone()
    assert pottery[1] == "\n".join(text for *_, text in BURST[:4])
    store.close()
    found = json.loads(companion("memory", "search", "What evening class did Ana sign up for?", "--json"))
    assert "pottery!!" in [hit["text"] for hit in found[:3]], [hit["text"] for hit in found]


def test_messages_stored_one_by_one_are_read_as_an_import_reads_them(paths: Paths) -> None:
    """The chat's path (each message stored, then embedded) and an import give a burst the same context and the
    same context vector."""
    store = Store(paths.database)
    memory = float32_memory(store, paths)
    memory.ready()
    session = session_table.new(store)
    ids = [message_table.add(store, session, r, x, speaker=w, created_at=t) for _, t, r, w, x in BURST]
    memory.embed_messages(ids[:2])
    memory.embed_messages(ids[2:])  # goes on from the file: the burst's earlier messages are read from there
    context = store.conn.execute("select context from messages where id = ?", (ids[3],)).fetchone()[0]
    assert context == "\n".join(text for *_, text in BURST[:4])
    assert_vectors_as_made_at_once(memory, ids)
    memory.close()


def test_forgetting_a_message_of_a_burst_rebuilds_the_messages_read_with_it(paths: Paths) -> None:
    store = Store(paths.database)
    memory = float32_memory(store, paths)
    memory.ready()
    session = session_table.new(store)
    ids = [message_table.add(store, session, r, x, speaker=w, created_at=t) for _, t, r, w, x in BURST]
    memory.embed_messages(ids)
    memory.forget(messages=[ids[1]])
    rows = dict(store.conn.execute("select id, context from messages"))
    assert "signed up" not in rows[ids[2]] and "signed up" not in rows[ids[3]]
    assert rows[ids[3]] == "\n".join(text for *_, text in (BURST[0], BURST[2], BURST[3]))
    assert_vectors_as_made_at_once(memory, [i for i in ids if i != ids[1]])
    memory.close()


def float32_memory(store: Store, paths: Paths) -> LongTermMemory:
    """The memory with its embedder in float32: these tests embed a conversation in other batches than
    `assert_vectors_as_made_at_once` does, and bfloat16 (used on CPUs with it) moves a vector by up to 1e-3
    with the batch it is in, float32 by less than 1e-6."""
    memory = LongTermMemory(store, paths.index_file)
    memory.embedder.precision = "float32"
    return memory


def assert_vectors_as_made_at_once(memory: LongTermMemory, ids: list[int]) -> None:
    """The stored vectors of these messages (a whole conversation) are those made of it in one go."""
    keys, made = memory.message_vectors(message_table.texts(memory.store, ids))
    stored_keys, stored = vector_table.of_keys(memory.store, keys.tolist(), memory.embedder.dim)
    by_key = dict(zip(stored_keys.tolist(), stored, strict=True))
    assert sorted(by_key) == sorted(keys.tolist())
    for key, vector in zip(keys.tolist(), made, strict=True):
        assert by_key[key] == pytest.approx(vector, abs=1e-5), key


def make_it_old(store: Store, dim: int) -> None:
    """What a file stored before bursts holds: each message read with the one message before it, whoever sent
    it (its context and its context vector), and no mark of the rule."""
    rows = store.conn.execute("select id, session_id, text from messages order by session_id, id").fetchall()
    plain = dict(
        (item, np.frombuffer(blob, dtype=np.float32))
        for item, blob in store.conn.execute(
            "select item_id, vector from vectors where variant = ?", (VARIANT_MESSAGE,)
        )
    )
    with store.transaction() as conn:
        before: dict[int, tuple[int, str]] = {}
        for item, session, text in rows:
            previous = before.get(session)
            context = f"{previous[1]}\n{text}" if previous else text
            joined = plain[item] + (plain[previous[0]] if previous else 0)
            conn.execute("update messages set context = ? where id = ?", (context, item))
            conn.execute(
                "update vectors set vector = ? where key = ?",
                (
                    (joined / np.linalg.norm(joined)).astype(np.float32).tobytes(),
                    vector_key(item, VARIANT_MESSAGE_CONTEXT),
                ),
            )
            before[session] = (item, text)
        conn.execute("delete from meta where key = 'contexts.read_with'")
    assert dim == len(next(iter(plain.values())))


def test_a_file_stored_before_bursts_is_read_again_by_the_index_job(paths: Paths, tmp_path: Path) -> None:
    """An upgrade: `maintain` (its index job) reads every message again under the rule of now, contexts and
    vectors (in the file and the saved index), once."""
    log = tmp_path / "chat.jsonl"
    write_log(log)
    companion("memory", "import", str(log))
    store = Store(paths.database)
    fresh = dict(store.conn.execute("select id, context from messages"))
    make_it_old(store, 384)
    pottery = store.conn.execute("select id from messages where text = 'pottery!!'").fetchone()[0]
    assert (
        fresh[pottery]
        != store.conn.execute("select context from messages where id = ?", (pottery,)).fetchone()[0]
    )
    store.close()

    said = companion("maintain", "--only", "index")
    # The burst's second and third messages and the reply to it: its first was read with the question before.
    assert "3 messages read again" in said, said
    store = Store(paths.database)
    assert dict(store.conn.execute("select id, context from messages")) == fresh
    memory = LongTermMemory(store, paths.index_file)
    assert_vectors_as_made_at_once(memory, list(fresh))
    # The saved index follows (its keys did not change, so nothing else would tell it).
    key = vector_key(pottery, VARIANT_MESSAGE_CONTEXT)
    assert memory.index.open() == "loaded"
    saved = memory.index.reconstruct(key)
    assert saved is not None
    assert saved == pytest.approx(vector_table.of_keys(store, [key], 384)[1][0], abs=1e-3)
    memory.close()
    found = json.loads(companion("memory", "search", "What evening class did Ana sign up for?", "--json"))
    assert "pottery!!" in [hit["text"] for hit in found[:3]], [hit["text"] for hit in found]
    assert "read again" not in companion("maintain", "--only", "index")  # once


def test_a_file_stored_now_has_nothing_to_read_again(paths: Paths, tmp_path: Path) -> None:
    """The walk that reads a file again gives every message the context it was stored with, whichever way it
    came in: the chat one by one (a regenerated reply, a message forgotten in a burst) and an import."""
    log = tmp_path / "chat.jsonl"
    write_log(log)
    companion("memory", "import", str(log))
    store = Store(paths.database)
    memory = LongTermMemory(store, paths.index_file)
    session = session_table.new(store)
    ids = [message_table.add(store, session, r, x, speaker=w, created_at=t) for _, t, r, w, x in BURST]
    message_table.mark_replaced(store, ids[-1])
    ids.append(
        message_table.add(
            store, session, "assistant", "Lovely!", speaker="Sam", created_at="2026-11-02T18:01:40"
        )
    )
    memory.embed_messages(ids)
    memory.forget(messages=[ids[2]])
    assert memory.reread_contexts() == 0
    assert (
        store.conn.execute("select value from meta where key = 'contexts.read_with'").fetchone() is not None
    )
    memory.close()


def test_a_forget_while_a_file_is_read_again_brings_nothing_back(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process forgets a message of the burst while the index job reads the file again (after it read
    the contexts, before it writes them): that batch is left for the next run, which reads what is there now."""
    log = tmp_path / "chat.jsonl"
    write_log(log)
    companion("memory", "import", str(log))
    store = Store(paths.database)
    make_it_old(store, 384)
    memory = LongTermMemory(store, paths.index_file)
    made = LongTermMemory._vectors_of_messages
    other = LongTermMemory(Store(paths.database), paths.index_file)  # a second connection: another companion

    def forget_first(self: LongTermMemory, ids: list[int], *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(LongTermMemory, "_vectors_of_messages", made)
        signed = other.store.conn.execute("select id from messages where text like '%signed up%'").fetchone()[
            0
        ]
        other.forget(messages=[signed])
        return made(self, ids, *args, **kwargs)

    monkeypatch.setattr(LongTermMemory, "_vectors_of_messages", forget_first)
    assert memory.reread_contexts() == 0
    assert store.conn.execute("select value from meta where key = 'contexts.read_with'").fetchone() is None
    contexts = [c for (c,) in store.conn.execute("select context from messages")]
    assert not [c for c in contexts if "signed up" in c]
    # The forget rebuilt the turns read with what it forgot, under the rule of now: nothing is left to read.
    assert memory.reread_contexts() == 0
    assert (
        store.conn.execute("select value from meta where key = 'contexts.read_with'").fetchone() is not None
    )
    pottery = store.conn.execute("select context from messages where text = 'pottery!!'").fetchone()[0]
    assert pottery == "\n".join(text for *_, text in (BURST[0], BURST[2], BURST[3]))
    assert_vectors_as_made_at_once(memory, [i for (i,) in store.conn.execute("select id from messages")])
    other.close()
    memory.close()


def test_companion_memory_forget_leaves_no_vector_made_with_what_it_forgot(
    paths: Paths, tmp_path: Path
) -> None:
    """`companion memory forget` (a process with no index open): the turns read with the forgotten message get
    context vectors made without it, not the ones made with it."""
    log = tmp_path / "chat.jsonl"
    write_log(log)
    companion("memory", "import", str(log))
    store = Store(paths.database)
    signed = store.conn.execute("select id from messages where text like '%signed up%'").fetchone()[0]
    store.close()
    companion("memory", "forget", f"message:{signed}", "-y")
    store = Store(paths.database)
    memory = LongTermMemory(store, paths.index_file)
    assert_vectors_as_made_at_once(memory, [i for (i,) in store.conn.execute("select id from messages")])
    memory.close()
