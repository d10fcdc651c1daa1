"""Nothing ungrounded enters memory: a summary, a fact or a profile line is kept only when what it says is in
the messages it comes from.

A small model writes plausible nonsense: a "summary" that is only a date, a profile line that is only the
user's name ("traits: Ana"), a fact about a person nobody mentioned. The checks are plain word overlap, no
model: the content words of the text (stopwords, numbers, dates and the speakers' own names left aside) must
mostly occur in the source messages, and every name it mentions must occur there too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from companion.memory.recall.retrieve import STOPWORDS

MONTHS_AND_DAYS = frozenset(
    """january february march april may june july august september october november december jan feb mar apr
    jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday today yesterday
    tomorrow am pm user users""".split()
)
SHARE = 0.5  # of a text's content words that must occur in its sources
MIN_SUMMARY_WORDS = 3


def _stem(word: str) -> str:
    """A light plural/verb stem, so `cats` meets `cat` and `adopted` meets `adopt`."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str, ignore: Iterable[str] = ()) -> set[str]:
    """The words that carry what a text says (stemmed), without stopwords, numbers, dates or `ignore`."""
    skip = {w.lower() for w in ignore}
    words = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", text.lower())
    return {
        _stem(re.sub(r"'s$", "", w))
        for w in words
        if len(w) > 2 and w not in STOPWORDS and w not in MONTHS_AND_DAYS and w not in skip
    }


def names(text: str) -> set[str]:
    """Capitalised words that are not the first word of a sentence: people and places the text names."""
    found = set()
    for sentence in re.split(r"(?<=[.!?:;])\s+|\n", text):
        for word in re.findall(r"[^\W\d_]+", sentence)[1:]:
            if word[0].isupper() and word.lower() not in STOPWORDS and word.lower() not in MONTHS_AND_DAYS:
                found.add(word.lower())
    return found


def grounded(text: str, sources: str, speakers: Iterable[str] = (), least: int = 1) -> bool:
    """Whether `text` says what `sources` say: at least `least` content words (the speakers' names aside),
    most of them in the sources, and every name it mentions there too."""
    speakers = [s for s in speakers if s]
    words = content_words(text, speakers)
    if len(words) < least:
        return False
    said = content_words(sources)
    if len(words & said) < SHARE * len(words):
        return False
    mentioned = names(text) - {s.lower() for s in speakers}
    return mentioned <= {w.lower() for w in re.findall(r"[^\W\d_]+", sources)}


def grounded_summary(text: str, sources: str, speakers: Iterable[str] = ()) -> bool:
    """A summary says more than a date: a few content words of its own, grounded in the session."""
    return grounded(text, sources, speakers, least=MIN_SUMMARY_WORDS)
