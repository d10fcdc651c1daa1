"""Text that has to fit a cell or a line of the screen."""

from __future__ import annotations


def shorten(text: str, width: int) -> str:
    """`text` on one line within `width` characters, cut at a word boundary with an ellipsis, never mid-word
    (unless a single word is longer than the room)."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: max(width - 1, 1)]
    space = cut.rfind(" ")
    if space >= width // 3:
        cut = cut[:space]
    return cut.rstrip(" ,;:.—-") + "…"
