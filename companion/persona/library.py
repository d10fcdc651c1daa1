"""The personas the user talks with, kept in the memory file, and how a persona becomes the system prompt.

A persona is a Character Card (stored verbatim as V2/V3 JSON, so export gives back what was imported). The
default companion, Sam, ships as a card in `assets/personas/` and is added on first use. `{{char}}` and
`{{user}}` are filled in when the prompt is built. Lorebook entries are also stored as pinned `lore` memories of
their persona, so recall finds them by meaning too.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import fields

from companion.errors import CompanionError
from companion.memory.store import Store, utcnow
from companion.paths import assets_dir
from companion.persona.card import LIST_FIELDS, TEXT_FIELDS, Card, card_from_json, read_card

DEFAULT_NAME = "Sam"
EDITABLE = (*TEXT_FIELDS, *LIST_FIELDS)


def default_card() -> Card:
    return read_card(assets_dir() / "personas" / "sam.json")


def ensure_default(store: Store) -> None:
    if not store.scalar("select count(*) from personas"):
        add(store, default_card())


def names(store: Store) -> list[str]:
    return [r[0] for r in store.conn.execute("select name from personas order by id")]


def get(store: Store, name: str) -> Card:
    row = store.conn.execute("select card from personas where name = ? collate nocase", (name,)).fetchone()
    if row is None:
        known = ", ".join(names(store)) or "none yet"
        raise CompanionError(
            f"There is no persona named '{name}' (known: {known}); import one with `companion persona import FILE`."
        )
    return card_from_json(json.loads(row[0]), f"persona {name}")


def add(store: Store, card: Card) -> None:
    if store.scalar("select count(*) from personas where name = ? collate nocase", (card.name,)):
        raise CompanionError(
            f"A persona named '{card.name}' already exists; rename one (`companion persona edit NAME name NEW`) or remove it first."
        )
    now = utcnow()
    with store.transaction() as conn:
        conn.execute(
            "insert into personas (name, card, created_at, updated_at) values (?, ?, ?, ?)",
            (card.name, json.dumps(card.to_json(), ensure_ascii=False), now, now),
        )
        _store_lore(store, conn, card)


def update(store: Store, name: str, field: str, value: str) -> Card:
    card = get(store, name)
    if field not in EDITABLE:
        raise CompanionError(f"'{field}' is not a field you can edit; use one of: {', '.join(EDITABLE)}.")
    if field in LIST_FIELDS:
        setattr(card, field, [item.strip() for item in value.split("|") if item.strip()])
    else:
        setattr(card, field, value)
    if not card.name.strip():
        raise CompanionError("A persona needs a name.")
    if (
        field == "name"
        and card.name.lower() != name.lower()
        and card.name.lower() in (n.lower() for n in names(store))
    ):
        raise CompanionError(f"A persona named '{card.name}' already exists.")
    with store.transaction() as conn:
        conn.execute(
            "update personas set name = ?, card = ?, updated_at = ? where name = ? collate nocase",
            (card.name, json.dumps(card.to_json(), ensure_ascii=False), utcnow(), name),
        )
        if field == "name":
            conn.execute(
                "update memories set persona = ? where persona = ? collate nocase", (card.name, name)
            )
            conn.execute(
                "update sessions set persona = ? where persona = ? collate nocase", (card.name, name)
            )
    return card


def _store_lore(store: Store, conn: sqlite3.Connection, card: Card) -> None:
    book = card.character_book or {}
    for entry in book.get("entries", []):
        content = str(entry.get("content") or "").strip()
        if content and entry.get("enabled", True):
            memory_id = store.add_memory(
                "lore", content, importance=1.0, reason=f"lorebook of {card.name}", conn=conn
            )
            conn.execute("update memories set pinned = 1, persona = ? where id = ?", (card.name, memory_id))


def fill(text: str, char: str, user: str) -> str:
    """The placeholders cards use: {{char}}, {{user}} (any case) and the older <BOT>, <USER>."""
    text = re.sub(r"\{\{\s*char\s*\}\}|<BOT>", lambda _: char, text, flags=re.IGNORECASE)
    return re.sub(r"\{\{\s*user\s*\}\}|<USER>", lambda _: user, text, flags=re.IGNORECASE)


def system_text(card: Card, user: str) -> str:
    """The persona part of the system prompt, from the card's fields. The card's text is the persona's voice:
    it is placed in the prompt and nothing else (it cannot reach settings)."""
    user = user or "the user"
    parts = []
    instruction = card.system_prompt.strip()
    if instruction:
        parts.append(
            instruction.replace("{{description}}", card.description.strip()).replace("{{original}}", "")
        )
    if card.description.strip() and "{{description}}" not in card.system_prompt:
        parts.append(card.description.strip())
    if card.personality.strip():
        parts.append(f"{{{{char}}}}'s personality: {card.personality.strip()}")
    if card.scenario.strip():
        parts.append(f"Scenario: {card.scenario.strip()}")
    if card.mes_example.strip():
        examples = re.sub(r"<START>\s*", "\n", card.mes_example).strip()
        parts.append(f"How {{{{char}}}} talks (examples):\n{examples}")
    return fill("\n\n".join(parts), card.name, user)


def card_fields() -> list[str]:
    return [f.name for f in fields(Card) if f.name in EDITABLE]
