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
    limit = budget or int(book.get("token_budget") or DEFAULT_BUDGET)
    chosen: list[tuple[int, int, str]] = []
    for position, entry in enumerate(book.get("entries") or []):
        if not isinstance(entry, dict) or not entry.get("enabled", True):
            continue
        content = str(entry.get("content") or "").strip()
        if not content:
            continue
        case = bool(entry.get("case_sensitive", False))
        hit = bool(entry.get("constant")) or _matches(entry.get("keys") or [], recent, case)
        if hit and entry.get("selective") and entry.get("secondary_keys") and not entry.get("constant"):
            hit = _matches(entry.get("secondary_keys") or [], recent, case)
        if hit:
            order = int(entry.get("insertion_order") or 0)
            chosen.append((int(entry.get("priority") or 0), order * 10_000 + position, content))
    used = 0
    kept: list[tuple[int, str]] = []
    for _, order, content in sorted(chosen, key=lambda c: (-c[0], c[1])):
        cost = count(content)
        if used + cost > limit:
            continue
        used += cost
        kept.append((order, content))
    return [content for _, content in sorted(kept)]
