"""The days people name, the way they type them in a chat: resolved against when they were said."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from companion.memory.recall.timewords import event_time, find_window
from companion.timeutil import iso, local_midnight

WEDNESDAY = local_midnight(date(2026, 12, 9)).replace(hour=15)
SUNDAY = local_midnight(date(2026, 12, 13)).replace(hour=15)


def days(text: str, now: datetime, ahead: bool = True) -> tuple[str, str] | None:
    window = find_window(text, now, ahead=ahead)
    if window is None:
        return None
    last = window.end.date().toordinal() - 1
    return window.start.date().isoformat(), date.fromordinal(last).isoformat()


@pytest.mark.parametrize(
    ("said", "now", "first", "last"),
    [
        # A weekend told of after it is the one just gone, never the coming one (it was the coming one).
        ("We went hiking this past weekend", WEDNESDAY, "2026-12-05", "2026-12-06"),
        ("over the weekend we cooked paella", WEDNESDAY, "2026-12-05", "2026-12-06"),
        ("we cooked paella over the weekend", SUNDAY, "2026-12-12", "2026-12-13"),
        ("I will clean the flat over the weekend", WEDNESDAY, "2026-12-12", "2026-12-13"),
        ("last weekend", WEDNESDAY, "2026-12-05", "2026-12-06"),
        ("this weekend is the fair", WEDNESDAY, "2026-12-12", "2026-12-13"),
        # The day before yesterday is not yesterday.
        ("the day before yesterday", WEDNESDAY, "2026-12-07", "2026-12-07"),
        ("the day after tomorrow", WEDNESDAY, "2026-12-11", "2026-12-11"),
        # As people say and type them.
        ("what did I do last night?", WEDNESDAY, "2026-12-08", "2026-12-08"),
        ("yday was rough", WEDNESDAY, "2026-12-08", "2026-12-08"),
        ("see you tmrw!!", WEDNESDAY, "2026-12-10", "2026-12-10"),
        ("party tonite", WEDNESDAY, "2026-12-09", "2026-12-09"),
        ("a couple days ago I saw Ana", WEDNESDAY, "2026-12-06", "2026-12-08"),
        ("saw her a few weeks back", WEDNESDAY, "2026-11-15", "2026-11-21"),
        ("two weeks back", WEDNESDAY, "2026-11-22", "2026-11-28"),
        ("in a couple weeks", WEDNESDAY, "2026-12-20", "2026-12-26"),
        # Unchanged.
        ("yesterday", WEDNESDAY, "2026-12-08", "2026-12-08"),
        ("a couple of weeks ago", WEDNESDAY, "2026-11-22", "2026-11-28"),
        ("three days ago", WEDNESDAY, "2026-12-05", "2026-12-07"),
    ],
)
def test_a_day_is_the_one_a_person_means(said: str, now: datetime, first: str, last: str) -> None:
    assert days(said, now) == (first, last)


def test_words_that_only_look_like_times_name_no_day() -> None:
    for text in ("I came back home", "we may go", "a couple of friends", "the weekend is my favourite part"):
        assert find_window(text, WEDNESDAY) is None, text


def test_a_message_keeps_the_day_it_speaks_of() -> None:
    stored = event_time("Went to a gig last night, my ears are still ringing", iso(WEDNESDAY))
    assert stored == iso(local_midnight(date(2026, 12, 8)))  # the local day, in the stored form
