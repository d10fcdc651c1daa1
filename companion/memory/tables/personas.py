"""The personas table: each persona's Character Card, kept verbatim as JSON, with its lorebook entries as
pinned `lore` memories of that persona. `companion.persona.library` decides what a card means; this module
only stores it."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from companion import timeutil
from companion.memory.db.store import Store
from companion.memory.tables import Write, memories
from companion.memory.tables.words import COMPANION, FORGOTTEN, Words, register


def count(store: Store) -> int:
    return store.count("personas")


def names(store: Store) -> list[str]:
    return [r[0] for r in store.conn.execute("select name from personas order by id")]


def card_json(store: Store, name: str) -> str | None:
    """The stored card of a persona (its name in any case), or None."""
    row = store.conn.execute("select card from personas where name = ? collate nocase", (name,)).fetchone()
    return row[0] if row else None


def exists(store: Store, name: str) -> bool:
    return card_json(store, name) is not None


def add(store: Store, name: str, card: str, lore: list[str], *, if_missing: bool = False) -> bool:
    """Store a persona and its lorebook entries in one transaction. With `if_missing`, a persona of that name
    that is already there (another process may have just added it) is left as it is. True when it was added."""
    now = timeutil.now_iso()
    with store.transaction() as conn:
        verb = "insert or ignore" if if_missing else "insert"
        cursor = conn.execute(
            f"{verb} into personas (name, card, created_at, updated_at) values (?, ?, ?, ?)",
            (name, card, now, now),
        )
        if not cursor.rowcount:
            return False
        w = Write(conn)  # lore is embedded later, with everything else that has no vector yet
        for content in lore:
            memories.add(
                w, "lore", content, importance=1.0, reason=f"lorebook of {name}", pinned=True, persona=name
            )
        return True


def update(store: Store, name: str, new_name: str, card: str) -> None:
    """Rewrite a persona's card; a new name follows it into its sessions and memories."""
    with store.transaction() as conn:
        conn.execute(
            "update personas set name = ?, card = ?, updated_at = ? where name = ? collate nocase",
            (new_name, card, timeutil.now_iso(), name),
        )
        if new_name != name:
            conn.execute("update memories set persona = ? where persona = ? collate nocase", (new_name, name))
            conn.execute("update sessions set persona = ? where persona = ? collate nocase", (new_name, name))


def scrub(conn: sqlite3.Connection, words: Words) -> None:
    """Take `words` out of every persona card: a lorebook entry that holds them goes, other text is redacted.
    A persona whose name holds them is renamed "Companion" (its card, sessions and memories follow), and its
    own card says the new name where it said the old one."""
    register(conn)
    taken = {r[0].casefold() for r in conn.execute("select name from personas")}
    clause, args = words.sql("card || char(10) || name")
    for persona_id, name, stored in conn.execute(
        f"select id, name, card from personas where {clause}", args
    ).fetchall():
        neutral = FORGOTTEN
        new_name = name
        if words.found(name):
            new_name = _free_name(taken)
            taken.add(new_name.casefold())
            neutral = new_name
        card = _scrubbed(json.loads(stored), words, neutral)
        conn.execute(
            "update personas set name = ?, card = ?, updated_at = ? where id = ?",
            (new_name, json.dumps(card, ensure_ascii=False), timeutil.now_iso(), persona_id),
        )
        if new_name != name:
            conn.execute("update memories set persona = ? where persona = ?", (new_name, name))
            conn.execute("update sessions set persona = ? where persona = ?", (new_name, name))


def lore_holding(stored: str, words: Words) -> list[str]:
    """The lorebook entries of a stored card that hold `words` (what a forget of them removes)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "content" in value and words.found(json.dumps(value, ensure_ascii=False)):
                found.append(str(value.get("content", "")))
                return
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(stored))
    return found


def _free_name(taken: set[str]) -> str:
    if COMPANION.casefold() not in taken:
        return COMPANION
    n = 2
    while f"{COMPANION} {n}".casefold() in taken:
        n += 1
    return f"{COMPANION} {n}"


def _scrubbed(value: Any, words: Words, neutral: str) -> Any:
    if isinstance(value, str):
        return words.redact(value, neutral)
    if isinstance(value, list):
        kept = [
            v
            for v in value
            if not (isinstance(v, dict) and "content" in v and words.found(json.dumps(v, ensure_ascii=False)))
        ]
        return [_scrubbed(v, words, neutral) for v in kept]
    if isinstance(value, dict):
        return {k: _scrubbed(v, words, neutral) for k, v in value.items()}
    return value
