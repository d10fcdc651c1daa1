"""A small, fixed memory file for screen tests and snapshots: two past sessions, facts, a summary, a profile."""

from __future__ import annotations

import json

from companion.memory.db.store import Store
from companion.memory.tables import messages as message_table
from companion.memory.tables import sessions as session_table
from companion.paths import Paths
from tests.rows import add_memory


def seed(home: Paths, facts: int = 6) -> dict[str, int]:
    store = Store(home.database)
    ids: dict[str, int] = {}
    first = session_table.new(store, persona="Sam")
    ids["session"] = first
    ids["message"] = message_table.add(
        store,
        first,
        "user",
        "I started learning the cello last month.",
        created_at="2026-11-01T18:00:00.000+00:00",
    )
    message_table.add(
        store,
        first,
        "assistant",
        "That is wonderful! How are the lessons going?",
        speaker="Sam",
        created_at="2026-11-01T18:00:05.000+00:00",
    )
    session_table.close(store, first)
    ids["summary"] = add_memory(
        store, "summary", "Talked about starting cello lessons.", sources=[ids["message"]], session_id=first
    )
    texts = [
        "The user plays the cello.",
        "The user's sister Ana lives in Lisbon.",
        "The user drinks green tea in the morning.",
        "The user has a dog called Biscuit.",
        "The user works as a nurse.",
        "The user is afraid of heights.",
    ]
    for n in range(facts):
        text = texts[n] if n < len(texts) else f"Synthetic fact number {n} about tea and books."
        memory_id = add_memory(
            store, "fact", text, sources=[ids["message"]] if n == 0 else [], importance=0.6
        )
        ids.setdefault("fact", memory_id)
    with store.transaction() as conn:
        conn.execute(
            "update sessions set started_at = '2026-11-01T18:00:00.000+00:00', ended_at = '2026-11-01T18:30:00.000+00:00'"
        )
        conn.execute(
            "update memories set created_at = '2026-11-01T18:31:00.000+00:00', updated_at = created_at,"
            " valid_from = created_at, last_recalled_at = '2026-11-20T10:00:00.000+00:00'"
        )
        conn.execute("update audit set at = '2026-11-01T18:31:00.000+00:00'")
        conn.execute(
            "insert into profile_versions (created_at, sections, diff, sources, reason) values (?, ?, ?, ?, ?)",
            (
                "2026-11-01T19:00:00.000+00:00",
                json.dumps(
                    {
                        "traits": ["caring, works as a nurse"],
                        "preferences": ["green tea", "plays the cello"],
                        "relationships": ["sister Ana in Lisbon"],
                        "concerns": [],
                        "style": [],
                    }
                ),
                json.dumps(
                    {
                        "added": [
                            "traits: caring, works as a nurse",
                            "preferences: green tea",
                            "preferences: plays the cello",
                            "relationships: sister Ana in Lisbon",
                        ],
                        "removed": [],
                    }
                ),
                "[]",
                "after session 1",
            ),
        )
    store.close()
    return ids
