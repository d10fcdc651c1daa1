"""What `forget --matching` was given, and where it is found: whole words by default, in any case of any script
("élodie" finds "Élodie", "Rui" does not find "ruin"); `substring` finds it inside words too. The same test
runs in SQL (`forget_words(column, text, substring)`, registered on every connection) and in Python, so what
is selected and what is redacted never disagree."""

from __future__ import annotations

import functools
import re
import sqlite3
import unicodedata
from dataclasses import dataclass

FORGOTTEN = "[forgotten]"  # what is left in a text that stays
SOMEONE = "someone"  # a forgotten speaker's name
COMPANION = "Companion"  # a forgotten persona's name


def normal(text: str) -> str:
    """One spelling for one text: composed accents ("é" as one character, whatever the keyboard sent)."""
    return unicodedata.normalize("NFC", text)


@functools.lru_cache(maxsize=32)
def pattern(text: str, substring: bool) -> re.Pattern[str]:
    words = re.escape(normal(text.strip()))
    if not substring:
        # A word boundary where the words begin or end with a letter or digit: "Rui" is not in "ruin".
        if re.match(r"\w", text.strip()):
            words = r"(?<!\w)" + words
        if re.search(r"\w$", text.strip()):
            words += r"(?!\w)"
    return re.compile(words, re.IGNORECASE)


@dataclass(frozen=True)
class Words:
    text: str
    substring: bool = False

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("forget needs words to match")

    def found(self, value: str | None) -> bool:
        return bool(value) and pattern(self.text, self.substring).search(normal(value or "")) is not None

    def redact(self, value: str, neutral: str = FORGOTTEN) -> str:
        """`value` with the words replaced by `neutral`."""
        return pattern(self.text, self.substring).sub(neutral, normal(value))

    def sql(self, column: str) -> tuple[str, tuple[str, int]]:
        """A where-clause that holds where `column` contains the words, and its parameters."""
        return f"forget_words({column}, ?, ?)", (self.text, int(self.substring))


def _found(value: str | None, text: str, substring: int) -> int:
    return int(Words(text, bool(substring)).found(value))


def register(conn: sqlite3.Connection) -> None:
    conn.create_function("forget_words", 3, _found, deterministic=True)
