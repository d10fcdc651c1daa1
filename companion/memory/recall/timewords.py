"""Time expressions in a question, turned into a window of time relative to `now`.

"yesterday", "last week", "in May", "three weeks ago", "last Tuesday", "in 2022": recall uses the window to
favour what happened then (LongMemEval's time-aware recall). No model involved: plain patterns, English only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from companion import timeutil

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "couple of": 2,
    "a couple of": 2,
    "a couple": 2,
    "couple": 2,
    "a few": 3,
    "few": 3,
}
# How many, as people say it ("a couple days ago", "a few weeks back"): the longer ways first.
NUMBER = "(" + "|".join([r"\d+", *sorted(NUMBERS, key=len, reverse=True)]) + ")"
# The day before and the day after, as people also type them.
YESTERDAY = r"yesterday|yday|last night"
TOMORROW = r"tomorrow|tmrw|2moro"
UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


@dataclass(frozen=True)
class TimeWindow:
    start: datetime
    end: datetime
    words: tuple[str, ...]  # the words of the query that said it

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_start(year: int, month: int, tz: object) -> datetime:
    return datetime(year, month, 1, tzinfo=tz)  # type: ignore[arg-type]


def _next_month(moment: datetime) -> datetime:
    return (
        moment.replace(year=moment.year + 1, month=1)
        if moment.month == 12
        else moment.replace(month=moment.month + 1)
    )


def find_window(query: str, now: datetime, ahead: bool = False) -> TimeWindow | None:
    """The first time expression in `query`, as a half-open window; None when there is none. Times ahead
    ("tomorrow", "next week", "in two weeks", "next Friday") are understood too; with `ahead` (a statement
    about plans), a bare weekday ("on Friday") is the coming one rather than the last."""
    text = query.lower()
    now = timeutil.local(now)  # people's days: the local time zone's
    today = _day(now)
    tz = now.tzinfo

    if m := re.search(r"\bthe day (before yesterday|after tomorrow)\b", text):
        day = today + timedelta(days=-2 if m.group(1).startswith("before") else 2)
        return TimeWindow(day, day + timedelta(days=1), tuple(m.group(0).split()))
    if m := re.search(rf"\b({YESTERDAY})\b", text):
        return TimeWindow(today - timedelta(days=1), today, tuple(m.group(0).split()))
    if m := re.search(rf"\b({TOMORROW})\b", text):
        return TimeWindow(today + timedelta(days=1), today + timedelta(days=2), (m.group(0),))
    if window := _dated(text, today, ahead):
        return window
    if window := _ahead(text, today, ahead):
        return window
    if m := re.search(r"\b(today|tonight|tonite|this morning|this afternoon|this evening)\b", text):
        return TimeWindow(today, today + timedelta(days=1), tuple(m.group(0).split()))
    if m := re.search(rf"\b{NUMBER} (day|week|month|year)s? (ago|back)\b", text):
        amount = int(m.group(1)) if m.group(1).isdigit() else NUMBERS[m.group(1)]
        days = amount * UNIT_DAYS[m.group(2)]
        slack = max(1, UNIT_DAYS[m.group(2)] // 2)
        center = today - timedelta(days=days)
        return TimeWindow(
            center - timedelta(days=slack), center + timedelta(days=slack + 1), tuple(m.group(0).split())
        )
    if m := re.search(r"\b(last|this|past) (week|weekend|month|year)\b", text):
        which, unit = m.group(1), m.group(2)
        words = tuple(m.group(0).split())
        week_start = today - timedelta(days=today.weekday())
        if unit == "week":
            if which == "this":
                return TimeWindow(week_start, week_start + timedelta(days=7), words)
            if which == "past":
                return TimeWindow(today - timedelta(days=7), today + timedelta(days=1), words)
            return TimeWindow(week_start - timedelta(days=7), week_start, words)
        if unit == "weekend":
            return _weekend(
                today, "last" if which == "last" else "coming" if which == "this" else "latest", words
            )
        if unit == "month":
            this_month = today.replace(day=1)
            if which == "this":
                return TimeWindow(this_month, _next_month(this_month), words)
            if which == "past":
                return TimeWindow(today - timedelta(days=30), today + timedelta(days=1), words)
            previous = (this_month - timedelta(days=1)).replace(day=1)
            return TimeWindow(previous, this_month, words)
        this_year = today.replace(month=1, day=1)
        if which == "this":
            return TimeWindow(this_year, this_year.replace(year=this_year.year + 1), words)
        if which == "past":
            return TimeWindow(today - timedelta(days=365), today + timedelta(days=1), words)
        return TimeWindow(this_year.replace(year=this_year.year - 1), this_year, words)
    if m := re.search(r"\b(over|during|at) the weekend\b", text):
        return _weekend(
            today, "coming" if ahead and FUTURE.search(text) else "latest", tuple(m.group(0).split())
        )
    if m := re.search(rf"\b(last|on|this past) ({'|'.join(WEEKDAYS)})\b", text):
        target = WEEKDAYS.index(m.group(2))
        back = (today.weekday() - target) % 7 or 7
        day = today - timedelta(days=back)
        return TimeWindow(day, day + timedelta(days=1), tuple(m.group(0).split()))
    month_names = "|".join(sorted(MONTHS, key=len, reverse=True))
    if m := re.search(rf"\b(?:in |during |of )?({month_names})\b,? ?(\d{{4}})?", text):
        name, year_text = m.group(1), m.group(2)
        if name == "may" and not year_text and not re.search(r"\b(in|during|of) may\b", text):
            return None  # "may" the verb
        month = MONTHS[name]
        year = int(year_text) if year_text else (now.year if month <= now.month else now.year - 1)
        start = _month_start(year, month, tz)
        return TimeWindow(start, _next_month(start), tuple(m.group(0).replace(",", "").split()))
    if m := re.search(r"\b(?:in |during )(19\d\d|20\d\d)\b", text):
        year = int(m.group(1))
        return TimeWindow(
            datetime(year, 1, 1, tzinfo=tz), datetime(year + 1, 1, 1, tzinfo=tz), tuple(m.group(0).split())
        )
    if m := re.search(r"\b(recently|lately)\b", text):
        return TimeWindow(today - timedelta(days=30), today + timedelta(days=1), (m.group(0),))
    return None


def _weekend(today: datetime, which: str, words: tuple[str, ...]) -> TimeWindow:
    """A weekend: the `last` one (before this week), the `coming` one (this week's, today's on a weekend) or
    the `latest` ("this past weekend", "over the weekend" told after it: today's on a weekend, else the last)."""
    week_start = today - timedelta(days=today.weekday())
    this_saturday = week_start + timedelta(days=5)
    if which == "last" or (which == "latest" and today < this_saturday):
        saturday = this_saturday - timedelta(days=7)
    else:
        saturday = this_saturday
    return TimeWindow(saturday, saturday + timedelta(days=2), words)


ORDINAL = r"(\d{1,2})(?:st|nd|rd|th)?"
FUTURE = re.compile(
    r"\b(next|tomorrow|soon|upcoming|going to|gonna|will|shall|'ll|plan|planning|getting|is on|are on|"
    r"appointment|booked|scheduled)\b"
)


def _dated(text: str, today: datetime, ahead: bool) -> TimeWindow | None:
    """A day and month ("June 14", "14 June", "the 4th of December", "Friday the 4th of December"), with or
    without a year. Without one it is the occurrence a person means: in a statement (`ahead`) about what is to
    come ("getting married on June 14", "my appointment is on …"), today or the next one, never a past date;
    in another statement the last one; in a question the nearest one."""
    months = "|".join(sorted(MONTHS, key=len, reverse=True))
    weekday = rf"(?:(?:{'|'.join(WEEKDAYS)}),? )?(?:the )?"
    year = r"(?:,? (\d{4}))?"
    found = re.search(rf"\b{weekday}{ORDINAL}(?: of)? ({months})\b{year}", text)
    if found:
        day_text, month_name, year_text = found.group(1), found.group(2), found.group(3)
    else:
        found = re.search(rf"\b{weekday}({months}) (?:the )?{ORDINAL}\b(?!:){year}", text)
        if not found:
            return None
        month_name, day_text, year_text = found.group(1), found.group(2), found.group(3)
    if month_name == "may" and not re.search(r"\d", found.group(0)):
        return None
    month, day = MONTHS[month_name], int(day_text)
    words = tuple(re.sub(r"[,]", "", found.group(0)).split())

    def on(year: int) -> datetime | None:
        try:
            return today.replace(year=year, month=month, day=day)
        except ValueError:  # 31 June, 29 February of a common year
            return None

    if year_text:
        moment = on(int(year_text))
    else:
        options = [d for d in (on(today.year - 1), on(today.year), on(today.year + 1)) if d is not None]
        if ahead:  # a statement: a plan is the coming one, anything else the last one
            future = FUTURE.search(text)
            options = [d for d in options if (d >= today if future else d <= today)]
        moment = min(options, key=lambda d: abs(d - today)) if options else None
    if moment is None:
        return None
    return TimeWindow(moment, moment + timedelta(days=1), words)


def _ahead(text: str, today: datetime, ahead: bool) -> TimeWindow | None:
    """ "next week", "next month", "next Friday", "in two weeks", and (with `ahead`) "on Friday"."""
    if m := re.search(rf"\bin {NUMBER} (day|week|month|year)s?\b", text):
        amount = int(m.group(1)) if m.group(1).isdigit() else NUMBERS[m.group(1)]
        days = amount * UNIT_DAYS[m.group(2)]
        slack = max(1, UNIT_DAYS[m.group(2)] // 2)
        center = today + timedelta(days=days)
        return TimeWindow(
            center - timedelta(days=slack), center + timedelta(days=slack + 1), tuple(m.group(0).split())
        )
    if m := re.search(r"\bnext (week|weekend|month|year)\b", text):
        words = tuple(m.group(0).split())
        week_start = today - timedelta(days=today.weekday())
        unit = m.group(1)
        if unit == "week":
            return TimeWindow(week_start + timedelta(days=7), week_start + timedelta(days=14), words)
        if unit == "weekend":
            saturday = week_start + timedelta(days=12 if today.weekday() >= 5 else 5)
            return TimeWindow(saturday, saturday + timedelta(days=2), words)
        if unit == "month":
            start = _next_month(today.replace(day=1))
            return TimeWindow(start, _next_month(start), words)
        start = today.replace(year=today.year + 1, month=1, day=1)
        return TimeWindow(start, start.replace(year=start.year + 1), words)
    weekdays = "|".join(WEEKDAYS)
    pattern = (
        rf"\b(next|this coming|this|on) ({weekdays})\b" if ahead else rf"\b(next|this coming) ({weekdays})\b"
    )
    if m := re.search(pattern, text):
        target = WEEKDAYS.index(m.group(2))
        forward = (target - today.weekday()) % 7 or 7
        day = today + timedelta(days=forward)
        return TimeWindow(day, day + timedelta(days=1), tuple(m.group(0).split()))
    return None


def spoken_of(text: str, said_at: str | None) -> str:
    """The time a message speaks of, at its own grain, for people to read: "6 May 2023" (last Saturday),
    "the week of 1 May 2023" (last week), "April 2023" (last month), "2022" (last year); "" when it names
    none or names the day it was said on."""
    moment = timeutil.parse(said_at)
    if moment is None or not text:
        return ""
    window = find_window(text, moment, ahead=True)
    if window is None or window.contains(moment):
        return ""
    start, days = window.start, (window.end - window.start).days
    if days <= 1:
        return timeutil.day_text(start)
    if days <= 7 and start.weekday() == 0:
        return f"the week of {timeutil.day_text(start)}"
    if start.day == 1 and 28 <= days <= 31:
        return start.strftime("%B %Y")
    if start.month == 1 and start.day == 1 and days in (365, 366):
        return str(start.year)
    if days <= 14:  # "three days ago", "in two weeks": a day give or take
        return f"around {timeutil.day_text(start + (window.end - start) / 2)}"
    last = window.end - timedelta(days=1)
    return f"{timeutil.day_text(start)} to {timeutil.day_text(last)}"


def event_time(text: str, said_at: str | None) -> str | None:
    """The day a message speaks of ("last Saturday", "two weeks ago", "next month"), resolved against when it
    was said, in the stored form; None when it names no time. A derived field: the text stays as it was."""
    moment = timeutil.parse(said_at)
    if moment is None or not text:
        return None
    window = find_window(text, moment, ahead=True)
    return timeutil.iso(window.start) if window is not None else None
