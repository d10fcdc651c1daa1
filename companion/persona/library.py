"""The personas the user talks with, kept in the memory file, and how a persona becomes the system prompt.

A persona is a Character Card (stored verbatim as V2/V3 JSON, so export gives back what was imported). The
default companion, Sam, ships as a card in `assets/personas/` and is added on first use. `{{char}}` and
`{{user}}` are filled in when the prompt is built. Lorebook entries are also stored as pinned `lore` memories of
their persona, so recall finds them by meaning too.
"""

from __future__ import annotations

import json
import re

from companion.errors import CompanionError
from companion.memory.db.store import Store
from companion.memory.tables import personas
from companion.paths import assets_dir
from companion.persona.card import LIST_FIELDS, TEXT_FIELDS, Card, card_from_json, read_card

DEFAULT_NAME = "Sam"
EDITABLE = (*TEXT_FIELDS, *LIST_FIELDS)


def default_card() -> Card:
    return read_card(assets_dir() / "personas" / "sam.json")


def ensure_default(store: Store, wanted: str | None = None) -> None:
    """The default companion, on first use (another process may be adding it at the same moment), and
    whenever the persona `wanted` (the settings' choice) is the default one and is not there (a file whose
    first persona was the user's own, from before the default came first)."""
    if personas.count(store) and not (wanted and wanted.casefold() == DEFAULT_NAME.casefold()):
        return
    if personas.exists(store, DEFAULT_NAME):
        return
    card = default_card()
    personas.add(store, card.name, _card_json(card), _lore(card), if_missing=True)


def names(store: Store) -> list[str]:
    return personas.names(store)


def get(store: Store, name: str) -> Card:
    stored = personas.card_json(store, name)
    if stored is None:
        known = ", ".join(names(store)) or "none yet"
        raise CompanionError(
            f"There is no persona named '{name}' (known: {known}); import one with `companion persona import FILE`."
        )
    return card_from_json(json.loads(stored), f"persona {name}")


def add(store: Store, card: Card) -> None:
    """Add the user's persona; the default one comes first (a first persona of one's own before the first chat
    leaves the default there to talk with; a card of the default's own name takes its place)."""
    if card.name.casefold() != DEFAULT_NAME.casefold():
        ensure_default(store)
    if personas.exists(store, card.name):
        raise CompanionError(
            f"A persona named '{card.name}' already exists; rename one (`companion persona edit NAME name NEW`) or remove it first."
        )
    personas.add(store, card.name, _card_json(card), _lore(card))


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
    personas.update(store, name, card.name, _card_json(card))
    return card


def _card_json(card: Card) -> str:
    return json.dumps(card.to_json(), ensure_ascii=False)


def _lore(card: Card) -> list[str]:
    """The lorebook entries recall can find by meaning: enabled ones with text."""
    book = card.character_book or {}
    entries = [e for e in book.get("entries", []) if isinstance(e, dict) and e.get("enabled", True)]
    return [text for e in entries if (text := str(e.get("content") or "").strip())]


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


def scene_text(card: Card, user: str) -> str:
    """The persona for a transcript prompt (a base model continues a chat it reads): who is talking, in the
    third person, and how they talk (the card's examples as transcript lines). The card's system prompt is an
    instruction to a chat model ("You are …") and is left out: a base model would only repeat it."""
    user = user or "User"
    parts = ["The following is a chat between {{user}} and {{char}}, an AI companion."]
    if card.description.strip():
        parts.append(card.description.strip())
    if card.personality.strip():
        parts.append(f"{{{{char}}}}'s personality: {card.personality.strip()}")
    if card.scenario.strip():
        parts.append(f"Scenario: {card.scenario.strip()}")
    examples = [chunk.strip() for chunk in re.split(r"<START>", card.mes_example) if chunk.strip()]
    if examples:
        parts.append("How {{char}} talks:\n" + "\n".join(examples))
    return fill("\n\n".join(parts), card.name, user)
