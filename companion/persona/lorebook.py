"""Lorebooks (`character_book`): world notes a card brings, inserted when their keys come up in the conversation.

An entry is inserted into the turn's memory block when one of its `keys` appears in the recent turns (and, when
`selective`, one of its `secondary_keys` too); `constant` entries always are; disabled ones never. Within the
book's `token_budget`, higher `priority` wins a place; the chosen entries keep their `insertion_order`. The
`position` field (before/after the character) is kept in the card but companion places every entry in the
memory block, as quoted notes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

DEFAULT_BUDGET = 256
NUMBERS = ("priority", "insertion_order")  # an entry's numeric fields (the book's: token_budget)


def _as_number(value: Any) -> int | None:
    """A card's numeric field as a whole number, or None when it is not one (`"high"`, a list, true)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def number(value: Any, default: int = 0) -> int:
    """A card's numeric field as a whole number; what is not a number counts as `default`."""
    found = _as_number(value)
    return default if found is None else found


def _keys(value: Any) -> list[Any]:
    """An entry's keys: a list, or one key given as a string."""
    if isinstance(value, str):
        return [value]
    return value if isinstance(value, list) else []


def unusable(book: dict[str, Any] | None) -> list[str]:
    """What a lorebook holds that companion cannot use, one warning each (the card keeps it as it is)."""
    if not book:
        return []
    found = []
    budget = book.get("token_budget")
    if budget is not None and (_as_number(budget) is None or number(budget) < 0):
        found.append(f"the token_budget {book['token_budget']!r} is not a number; {DEFAULT_BUDGET} is used")
    for position, entry in enumerate(book.get("entries") or [], start=1):
        if not isinstance(entry, dict):
            found.append(f"entry {position} is not an object; it is never inserted")
            continue
        for name in NUMBERS:
            if entry.get(name) is not None and _as_number(entry.get(name)) is None:
                found.append(f"entry {position}'s {name} {entry[name]!r} is not a number; 0 is used")
        if not isinstance(entry.get("keys", []), list | str):
            found.append(
                f"entry {position}'s keys are not a list of words; it is inserted only when constant"
            )
    return found


def _matches(keys: list[Any], text: str, case_sensitive: bool) -> bool:
    haystack = text if case_sensitive else text.lower()
    for key in keys:
        if not isinstance(key, str) or not key.strip():
            continue
        needle = key.strip() if case_sensitive else key.strip().lower()
        if re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack):
            return True
    return False


def triggered(
    book: dict[str, Any] | None, recent: str, count: Callable[[str], int], budget: int | None = None
) -> list[str]:
    """The contents of the entries the recent text calls up, within the book's token budget."""
    if not book:
        return []
    limit = budget or number(book.get("token_budget"), DEFAULT_BUDGET) or DEFAULT_BUDGET
    chosen: list[tuple[int, int, str]] = []
    for position, entry in enumerate(book.get("entries") or []):
        if not isinstance(entry, dict) or not entry.get("enabled", True):
            continue
        content = str(entry.get("content") or "").strip()
        if not content:
            continue
        case = bool(entry.get("case_sensitive", False))
        hit = bool(entry.get("constant")) or _matches(_keys(entry.get("keys")), recent, case)
        if hit and entry.get("selective") and entry.get("secondary_keys") and not entry.get("constant"):
            hit = _matches(_keys(entry.get("secondary_keys")), recent, case)
        if hit:
            order = number(entry.get("insertion_order"))
            chosen.append((number(entry.get("priority")), order * 10_000 + position, content))
    used = 0
    kept: list[tuple[int, str]] = []
    for _, order, content in sorted(chosen, key=lambda c: (-c[0], c[1])):
        cost = count(content)
        if used + cost > limit:
            continue
        used += cost
        kept.append((order, content))
    return [content for _, content in sorted(kept)]
