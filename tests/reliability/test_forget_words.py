"""`forget --matching`: whole words in any case of any script, names too (speakers, personas), what it removes
listed before it acts, and everything that matches when it acts (not when it was asked), through the public
commands."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from companion.paths import Paths
from tests.reliability.test_edges import count, jsonl, memory
from tests.test_cli import run


def chat_log(tmp_path: Path) -> Path:
    return jsonl(
        tmp_path / "log.jsonl",
        [
            {"session": "a", "time": "2024-03-01T10:00:00", "role": "user", "speaker": "Caroline",
             "text": "I had lunch with Élodie today.", "id": "1"},
            {"session": "a", "time": "2024-03-01T10:00:30", "role": "assistant", "speaker": "Melanie",
             "text": "How is she doing?", "id": "2"},
            {"session": "a", "time": "2024-03-01T10:01:00", "role": "user", "speaker": "Caroline",
             "text": "The storm ruined the garden.", "id": "3"},
            {"session": "a", "time": "2024-03-01T1001:30".replace("1001", "10:01"), "role": "user",
             "speaker": "Caroline", "text": "Rui from work helped me fix it.", "id": "4"},
        ],
    )  # fmt: skip


def persona_card(tmp_path: Path) -> Path:
    card = tmp_path / "card.json"
    card.write_text(
        json.dumps(
            {
                "spec": "chara_card_v2",
                "spec_version": "2.0",
                "data": {
                    "name": "Luz",
                    "description": "Luz keeps the lighthouse.",
                    "character_book": {
                        "entries": [
                            {"keys": ["castle"], "content": "The old castle is in ruins.", "enabled": True},
                            {"keys": ["sea"], "content": "The sea is cold.", "enabled": True},
                        ]
                    },
                },
            }
        )
    )
    return card


def texts(paths: Paths, sql: str) -> list[str]:
    with sqlite3.connect(paths.database) as conn:
        return [r[0] for r in conn.execute(sql)]


def test_matching_is_unicode_aware_and_on_whole_words(paths: Paths, tmp_path: Path) -> None:
    assert memory("import", str(chat_log(tmp_path))).returncode == 0
    assert run("persona", "import", str(persona_card(tmp_path))).returncode == 0

    result = memory("forget", "--matching", "élodie", "--yes")
    assert result.returncode == 0, result.stderr
    assert not [t for t in texts(paths, "select text from messages") if "lodie" in t]

    # "Rui" is a colleague's name: the garden that was ruined and the castle in ruins are not his.
    result = memory("forget", "--matching", "Rui", "--yes")
    assert result.returncode == 0 and "1 message" in result.stdout, result.stdout
    said = texts(paths, "select text from messages")
    assert "The storm ruined the garden." in said and not [t for t in said if "Rui " in t]
    assert "The old castle is in ruins." in texts(paths, "select text from memories where kind = 'lore'")
    assert "ruins" in texts(paths, "select card from personas where name = 'Luz'")[0]

    # Inside words only when asked.
    result = memory("forget", "--matching", "rui", "--substring", "--yes")
    assert result.returncode == 0
    assert not [t for t in texts(paths, "select text from messages") if "rui" in t.lower()]
    assert "The old castle is in ruins." not in texts(paths, "select text from memories")


def test_names_are_forgotten_too(paths: Paths, tmp_path: Path) -> None:
    assert memory("import", str(chat_log(tmp_path))).returncode == 0
    assert run("persona", "import", str(persona_card(tmp_path))).returncode == 0
    assert count(paths, "select count(*) from messages where speaker = 'Melanie'") == 1

    assert memory("forget", "--matching", "melanie", "--yes").returncode == 0
    assert count(paths, "select count(*) from messages where speaker like '%melanie%'") == 0
    assert "How is she doing?" in texts(paths, "select text from messages")  # the message stays, unnamed
    exported = memory("export").stdout + memory("export", "--format", "jsonl").stdout
    assert "melanie" not in exported.lower() and '"speaker": "someone"' in exported

    assert memory("forget", "--matching", "Luz", "--yes").returncode == 0
    names = texts(paths, "select name from personas")
    assert "Luz" not in names and "Companion" in names and "[forgotten]" not in names
    card = json.loads(texts(paths, "select card from personas where name = 'Companion'")[0])
    assert (
        card["data"]["name"] == "Companion"
        and card["data"]["description"] == "Companion keeps the lighthouse."
    )
    assert "Companion" in run("persona", "list").stdout


def test_forget_lists_what_it_removes_and_dry_run_keeps_it(paths: Paths, tmp_path: Path) -> None:
    assert memory("import", str(chat_log(tmp_path))).returncode == 0
    assert run("persona", "import", str(persona_card(tmp_path))).returncode == 0
    assert memory("add", "The castle trip with Rui is in May").returncode == 0
    before = count(paths, "select count(*) from messages") + count(paths, "select count(*) from memories")

    listing = memory("forget", "--matching", "castle", "--dry-run")
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout
    assert "(note) The castle trip with Rui is in May" in out
    assert "lorebook entry of Luz: The old castle is in ruins." in out
    assert "Nothing was forgotten" in out
    after = count(paths, "select count(*) from messages") + count(paths, "select count(*) from memories")
    assert after == before

    asked = memory("forget", "--matching", "castle", stdin="")  # no terminal to answer: the list, then no
    assert asked.returncode != 0 and "The castle trip" in asked.stdout and "add --yes" in asked.stderr
    assert memory("forget", "--matching", "castle", "--yes").returncode == 0
    assert not [t for t in texts(paths, "select text from memories") if "castle" in t]


def test_what_is_written_while_forget_waits_is_forgotten_too(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upkeep in another process writes a fact that says the words while forget is loading the embedder (after
    it listed what it would remove): the fact is forgotten as well."""
    from companion.memory.db.store import Store
    from companion.memory.operations import LongTermMemory
    from companion.memory.tables import memories, write

    assert memory("import", str(chat_log(tmp_path))).returncode == 0
    ready = LongTermMemory.ready

    def upkeep_meanwhile(self: LongTermMemory, *args: Any, **kwargs: Any) -> Any:
        other = Store(paths.database)  # its own connection, as another process has
        with write(other) as w:
            memories.add(w, "fact", "Caroline often has lunch with Élodie.", importance=0.5, reason="upkeep")
        other.close()
        return ready(self, *args, **kwargs)

    monkeypatch.setattr(LongTermMemory, "ready", upkeep_meanwhile)
    result = memory("forget", "--matching", "lunch", "--yes")
    assert result.returncode == 0, result.stderr
    assert "1 message, 1 memory" in result.stdout
    assert not [t for t in texts(paths, "select text from memories") if "lunch" in t]


def test_profile_lines_go_with_the_memories_they_say(paths: Paths) -> None:
    from companion.memory.db.store import Store
    from companion.memory.tables import profile

    added = memory("add", "I am allergic to peanuts").stdout
    note = int(added.strip().rstrip(".").split()[-1])
    store = Store(paths.database)
    from companion import timeutil

    profile.save(
        store,
        {
            "traits": [],
            "preferences": [],
            "relationships": [],
            "concerns": ["allergic to peanuts"],
            "style": [],
        },
        {"concerns: allergic to peanuts": [note]},
        "test",
        timeutil.now(),
    )
    store.close()
    assert "allergic to peanuts" in run("profile").stdout
    assert memory("forget", str(note), "--yes").returncode == 0
    assert "peanuts" not in run("profile").stdout
