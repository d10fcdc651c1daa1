"""Time, in one place: now, parsing, the one form times are stored in, and the human "when".

Every time in the memory file is stored in one normalised form, UTC with milliseconds
(`2023-05-08T13:56:00.000+00:00`). One form means a comparison of two stored times as text is a comparison of
the times themselves, so SQL can filter and sort by time with plain `<` and `order by`; times read from
outside (imports, `--before`, a model's "2023-05-30") are normalised on the way in.

Days are people's: "today", "yesterday", "this morning", a daily digest, a day shown on screen are days of
the local time zone (the system's, or `TZ`), never UTC days — at 9 pm in New York "this morning" is that
morning, not the one five hours later.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo

from companion.errors import CompanionError


def now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """The stored form of a time: UTC, milliseconds (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def now_iso() -> str:
    return iso(now())


def parse(value: str | None) -> datetime | None:
    """An ISO 8601 time or date (with or without an offset, `Z` too) as an aware datetime; a naive one is UTC.
    None for nothing or for what is not a time."""
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def normalize(value: str | None) -> str | None:
    """`value` in the stored form, or None when it is empty or not a time."""
    moment = parse(value)
    return iso(moment) if moment is not None else None


def parse_user(value: str, what: str) -> datetime:
    """A time the user typed (a command-line option, an import field); a sentence when it is not one."""
    moment = parse(value)
    if moment is None:
        raise CompanionError(f"{what} {value!r} is not an ISO date, e.g. 2023-05-08 or 2023-05-08T13:56:00.")
    return moment


def local(moment: datetime) -> datetime:
    """A time in the local time zone (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone()


def local_midnight(day: date) -> datetime:
    """The start of a local day, as an aware time."""
    return datetime.combine(day, time()).astimezone()


def day(value: str | None) -> str:
    """The local day of a stored time, `2023-05-08` ("" for none)."""
    moment = parse(value)
    return local(moment).date().isoformat() if moment is not None else ""


def day_text(when: datetime) -> str:
    """`8 May 2023` (of the local day)."""
    when = local(when)
    return f"{when.day} {when.strftime('%B %Y')}"


def relative(when: datetime, now: datetime) -> str:
    """How long ago, with the date: `3 days ago, on 8 May 2023` (in local days)."""
    days = (local(now).date() - local(when).date()).days
    absolute = day_text(when)
    if days < 0:
        return f"on {absolute}"
    if days == 0:
        return f"today, {absolute}"
    if days == 1:
        return f"yesterday, {absolute}"
    if days < 14:
        return f"{days} days ago, on {absolute}"
    if days < 60:
        return f"{days // 7} weeks ago, on {absolute}"
    if days < 730:
        return f"{days // 30} months ago, on {absolute}"
    return f"{days // 365} years ago, on {absolute}"


def short(value: str | None, length: int = 16) -> str:
    """A stored time for a table cell, in local time: `2023-05-08 13:56` (or its first `length` characters)."""
    moment = parse(value)
    if moment is None:
        return (value or "")[:length].replace("T", " ")
    return local(moment).isoformat(sep=" ", timespec="minutes")[:length]


# -- a person's hours (check-ins) ------------------------------------------------------------------------------
def zone(name: str) -> tzinfo:
    """A time zone by its IANA name (`Europe/Lisbon`); "" is the system's. A sentence when there is none."""
    if not name:
        return datetime.now().astimezone().tzinfo or UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CompanionError(
            f"There is no time zone called {name!r} on this machine; use a name such as Europe/Lisbon or "
            "America/New_York, or leave it empty for the system's."
        ) from None


def hours(span: str) -> tuple[time, time]:
    """`"22:00-08:00"` as (start, end); the span may run past midnight. A sentence when it is not one."""
    import re

    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", span or "")
    if m:
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60:
            return time(h1, m1), time(h2, m2)
    raise CompanionError(
        f"Quiet hours {span!r} are not a span of the day; write them as HH:MM-HH:MM, e.g. 22:00-08:00."
    )


def within(moment: time, span: tuple[time, time]) -> bool:
    """Whether a time of day falls in a span (one that runs past midnight included; an empty span: never)."""
    start, end = span
    if start == end:
        return False
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end
