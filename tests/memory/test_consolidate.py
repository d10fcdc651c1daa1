"""Consolidation end to end with the real demo model: structure, provenance and idempotence (not prose)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from companion.errors import CompanionError
from companion.llm.remote import RemoteModel
from companion.memory import scheduler
from companion.memory.consolidate import (
    Consolidator,
    Report,
    current_profile,
    profile_history,
    save_profile,
    veto,
)
from companion.memory.operations import LongTermMemory
from companion.memory.store import VARIANT_MEMORY, vector_key
from tests.conftest import free_port

NOW = datetime(2023, 7, 1, 12, 0, tzinfo=UTC)


def session_messages(memory: LongTermMemory, session_id: int) -> set[int]:
    return {
        r[0] for r in memory.store.conn.execute("select id from messages where session_id = ?", (session_id,))
    }


def test_sessions_become_summaries_and_facts_with_provenance(memory: LongTermMemory, demo_model) -> None:  # type: ignore[no-untyped-def]
    consolidator = Consolidator(memory, demo_model, user="Ana")
    pending = consolidator.pending_sessions(NOW, timedelta(minutes=30))
    assert len(pending) == 3
    report = Report()
    for session_id in pending[:2]:
        consolidator.consolidate_session(session_id, NOW, report)
    assert report.sessions == 2 and report.summaries == 2
    for session_id in pending[:2]:
        owned = session_messages(memory, session_id)
        summary = memory.store.conn.execute(
            "select id from memories where kind = 'summary' and session_id = ?", (session_id,)
        ).fetchall()
        assert len(summary) == 1
        assert {m.id for m in memory.store.memory_sources(summary[0][0])} == owned
        for (fact_id,) in memory.store.conn.execute(
            "select id from memories where kind = 'fact' and session_id = ?", (session_id,)
        ):
            sources = {m.id for m in memory.store.memory_sources(fact_id)}
            assert sources and sources <= owned  # a fact points at the turns it came from
    # Idempotent: what is done is not done again.
    counts = memory.store.conn.execute("select kind, count(*) from memories group by kind").fetchall()
    assert consolidator.pending_sessions(NOW, timedelta(minutes=30)) == pending[2:]
    # Summaries and facts are recallable and carry their sources.
    hits = memory.search("what did Ana tell about her cat", kinds={"summary", "fact"}, limit=5)
    assert hits and all(h.source_ids for h in hits)
    # A session that goes on is summarized anew; the old summary is superseded, not duplicated.
    memory.store.add_message(
        pending[0], "user", "Bolacha finally sleeps on my bed now.", created_at="2023-05-01T11:00:00+00:00"
    )
    consolidator.consolidate_session(pending[0], NOW, Report())
    active = memory.store.conn.execute(
        "select count(*) from memories where kind = 'summary' and session_id = ? and valid_to is null",
        (pending[0],),
    ).fetchone()[0]
    assert active == 1
    assert counts  # (kept for the failure message)
    # The superseded summary left the vectors with it, so the saved index still matches the file.
    assert not memory.store.scalar(
        "select count(*) from vectors v join memories m on v.kind = 'memory' and v.item_id = m.id"
        " where m.valid_to is not null"
    )
    old_summary = memory.store.scalar(
        "select id from memories where kind = 'summary' and session_id = ? and valid_to is not null",
        (pending[0],),
    )
    assert memory.index.reconstruct(vector_key(old_summary, VARIANT_MEMORY)) is None
    assert memory.index.size == memory.store.vector_fingerprint(memory.embed_model)[0]


def test_a_failing_model_leaves_the_memory_as_it_was(memory: LongTermMemory, demo_model) -> None:  # type: ignore[no-untyped-def]
    gone = RemoteModel(f"http://127.0.0.1:{free_port()}/v1", timeout=2)  # a real client, nobody listening
    before = memory.store.conn.execute("select count(*) from memories").fetchone()[0]
    outcome = scheduler.run_jobs(
        memory, NOW, only="consolidate", options={"model": lambda: gone, "user": "Ana"}
    )
    assert outcome["consolidate"].startswith("failed (ModelError")
    assert memory.store.conn.execute("select count(*) from memories").fetchone()[0] == before
    assert not memory.store.get_meta("consolidated.session.1")
    state = scheduler.load_state(memory, "consolidate")
    assert state.failures == 1 and state.retry_at is not None
    # Later, with a working model, it resumes and does each session once.
    later = state.retry_at + timedelta(minutes=1)
    outcome = scheduler.run_jobs(
        memory, later, only="consolidate", options={"model": lambda: demo_model, "user": "Ana"}
    )
    assert outcome["consolidate"].startswith("3 sessions: 3 summaries")
    again = scheduler.run_jobs(
        memory, later + timedelta(hours=1), only="consolidate", options={"model": lambda: demo_model}
    )
    assert again["consolidate"].startswith("0 sessions")
    assert (
        memory.store.conn.execute("select count(*) from memories where kind = 'summary'").fetchone()[0] == 3
    )


def test_digests_once_per_day_and_week(memory: LongTermMemory, demo_model) -> None:  # type: ignore[no-untyped-def]
    with memory.store.transaction() as conn:
        for session_id, day in ((1, "2023-05-01"), (2, "2023-05-15"), (3, "2023-06-20")):
            memory.store.add_memory(
                "summary",
                f"Ana talked on {day}.",
                sources=list(session_messages(memory, session_id)),
                event_time=f"{day}T10:00:00+00:00",
                session_id=session_id,
                conn=conn,
            )
    consolidator = Consolidator(memory, demo_model, user="Ana")
    report = Report()
    consolidator.make_digests(NOW, report)
    consolidator.make_digests(NOW, report)  # nothing twice
    digests = memory.store.conn.execute(
        "select text, event_time from memories where kind = 'digest' order by id"
    ).fetchall()
    daily = [d for d in digests if not d[0].startswith("Week of")]
    weekly = [d for d in digests if d[0].startswith("Week of")]
    assert [d[1][:10] for d in daily] == ["2023-05-01", "2023-05-15", "2023-06-20"]
    assert [d[1][:10] for d in weekly] == ["2023-05-01", "2023-05-15", "2023-06-19"]
    assert report.digests == 6


def test_profile_versions_diff_and_veto(memory: LongTermMemory, demo_model) -> None:  # type: ignore[no-untyped-def]
    store = memory.store
    first = save_profile(
        store,
        {
            "traits": ["curious"],
            "preferences": ["tea"],
            "relationships": ["sister Marta"],
            "concerns": [],
            "style": [],
        },
        [],
        "test",
        NOW,
    )
    assert first is not None
    assert save_profile(store, current_profile(store)[1], [], "no change", NOW) is None
    version = veto(store, "preferences: tea", NOW)
    _, sections, _ = current_profile(store)
    assert sections["preferences"] == [] and version == first + 1
    assert profile_history(store)[-1]["diff"] == {"added": [], "removed": ["preferences: tea"]}
    with pytest.raises(CompanionError, match="not a line of the profile"):
        veto(store, "likes jazz", NOW)
    # The model updates the profile from new facts; a vetoed inference is filtered out.
    store.add_memory("fact", "Ana drinks tea every morning", importance=0.8)
    report = Report()
    Consolidator(memory, demo_model, user="Ana").update_profile(NOW + timedelta(days=1), report)
    _, sections, _ = current_profile(store)
    assert set(sections) == {"traits", "preferences", "relationships", "concerns", "style"}
    assert not any(line.lower() == "tea" for line in sections["preferences"])
    assert all(isinstance(line, str) and len(line) <= 120 for lines in sections.values() for line in lines)
