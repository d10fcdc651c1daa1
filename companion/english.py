"""Words a sentence shown to the user needs to get right: `1 session`, `2 sessions`, `a whole number`."""

from __future__ import annotations

KINDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 session`, `2 sessions`; `many` where the plural is not noun + s (`memory`, `memories`)."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def kind_name(kind: type) -> str:
    """What a setting's type is called in a sentence: `a whole number`, not `a int`."""
    return KINDS.get(kind, f"a {kind.__name__}")
