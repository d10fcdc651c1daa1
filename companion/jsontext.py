"""JSON that comes from outside (a card, an import, a file someone edited): bounded in depth, and text that
SQLite and the terminal can hold. A document nested a thousand levels deep would exhaust Python's recursion
in the parser or in whatever walks it next; a lone surrogate (`"\\ud800"`, valid JSON, not valid text) would
fail the first time it is stored or printed."""

from __future__ import annotations

import json
import re
from typing import Any

from companion.errors import CompanionError

MAX_DEPTH = 64  # deeper than any card, export or conversation log is
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def loads(text: str, where: str, tail: str = "nothing was imported", *, mend: bool = True) -> Any:
    """`json.loads`, then the depth bound and (with `mend`) text clean-up; an import mends and counts its own
    (`portability.formats.repair_text`). A syntax error is raised as json raises it (the callers say it in their
    own words); too deep is one sentence: "`where` is nested … ; `tail`."."""
    try:
        data = json.loads(text)
    except RecursionError:
        data = None
        deep = True
    else:
        deep = depth(data) > MAX_DEPTH
    if deep:
        raise CompanionError(
            f"{where[:1].upper() + where[1:]} is nested more than {MAX_DEPTH} levels deep; {tail}."
        )
    return clean(data) if mend else data


def depth(value: Any) -> int:
    """How deeply lists and objects nest (without recursion: the value may be deep)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item)
    return deepest


def clean_text(text: str) -> str:
    """Text without lone surrogates (each becomes U+FFFD, the replacement character)."""
    return LONE_SURROGATE.sub("\ufffd", text)


def clean(value: Any) -> Any:
    """`value` with every string (and key) cleaned of lone surrogates; `value` itself when none has one."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean(v) for k, v in value.items()}
    return value
