"""The user's profile (MemoryBank's user portrait): traits, preferences, relationships, concerns, style.

Each change is a new version (`profile_versions`) with its diff against the one before and the memories it was
built from. A line the user vetoes is removed in a new version and kept in `profile_vetoes`, so it is never
inferred again; the veto and its version are written in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime

from companion import timeutil
from companion.errors import CompanionError
from companion.memory.db.store import Store
from companion.memory.tables.words import Words, register

SECTIONS = ("traits", "preferences", "relationships", "concerns", "style")


@dataclass(frozen=True)
class Profile:
    version: int | None  # None: no profile yet
    sections: dict[str, list[str]]
    created_at: str | None = None
    # Where each line comes from, where it is known: "section: line" -> the memories (facts, notes) it says.
    sources: dict[str, list[int]] = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        """`section: line`, in section order."""
        return [f"{name}: {line}" for name, items in self.sections.items() for line in items]


@dataclass(frozen=True)
class Version:
    id: int
    created_at: str
    reason: str
    diff: dict[str, list[str]] = field(default_factory=dict)


def empty_sections() -> dict[str, list[str]]:
    return {name: [] for name in SECTIONS}


def current(store: Store) -> Profile:
    """The newest version of the profile."""
    row = store.conn.execute(
        "select id, sections, created_at, sources from profile_versions order by id desc limit 1"
    ).fetchone()
    if not row:
        return Profile(None, empty_sections())
    sources = json.loads(row[3] or "[]")
    by_line = sources if isinstance(sources, dict) else {}  # a list: the version's memories, not per line
    return Profile(row[0], json.loads(row[1]), row[2], by_line)


def history(store: Store) -> list[Version]:
    rows = store.conn.execute("select id, created_at, diff, reason from profile_versions order by id")
    return [Version(r[0], r[1], r[3] or "", json.loads(r[2] or "{}")) for r in rows]


def vetoed_lines(store: Store) -> list[str]:
    return [r[0] for r in store.conn.execute("select line from profile_vetoes order by line")]


def is_vetoed(line: str, vetoed: list[str]) -> bool:
    lowered = line.lower()
    return any(v.lower() in lowered or lowered in v.lower() for v in vetoed)


def diff(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, list[str]]:
    added = [
        f"{name}: {line}"
        for name in SECTIONS
        for line in after.get(name, [])
        if line not in before.get(name, [])
    ]
    removed = [
        f"{name}: {line}"
        for name in SECTIONS
        for line in before.get(name, [])
        if line not in after.get(name, [])
    ]
    return {"added": added, "removed": removed}


def save(
    store: Store,
    sections: dict[str, list[str]],
    sources: list[int] | dict[str, list[int]],
    reason: str,
    now: datetime,
    conn: sqlite3.Connection | None = None,
) -> int | None:
    """A new version with its diff against the previous one; None when nothing changed. `sources`: the
    memories the version was built from, or for each line ("section: line") the memories it says."""
    with store.writing(conn) as c:
        previous = current(store).sections
        change = diff(previous, sections)
        if not change["added"] and not change["removed"]:
            return None
        cursor = c.execute(
            "insert into profile_versions (created_at, sections, diff, sources, reason) values (?, ?, ?, ?, ?)",
            (timeutil.iso(now), json.dumps(sections), json.dumps(change), json.dumps(sources), reason),
        )
        return int(cursor.lastrowid or 0)


def veto(store: Store, line: str, now: datetime | None = None) -> int:
    """Remove a profile line and keep the inference from being made again; returns the new version id."""
    now = now or timeutil.now()
    before = current(store)
    sections = before.sections
    wanted = line.strip().lower()
    found = False
    fresh = {}
    for name, lines in sections.items():
        kept = [item for item in lines if item.lower() != wanted and f"{name}: {item}".lower() != wanted]
        found |= len(kept) != len(lines)
        fresh[name] = kept
    if not found:
        raise CompanionError(f"'{line}' is not a line of the profile; see `companion profile` for its lines.")
    head, _, tail = line.partition(":")
    text = tail.strip() if head.strip() in SECTIONS and tail.strip() else line.strip()
    with store.transaction() as conn:
        conn.execute(
            "insert or ignore into profile_vetoes (line, created_at) values (?, ?)", (text, timeutil.iso(now))
        )
        remaining = {f"{name}: {item}" for name, items in fresh.items() for item in items}
        sources = {key: ids for key, ids in before.sources.items() if key in remaining}
        version = save(store, fresh, sources, "vetoed by the user", now, conn)
    assert version is not None  # a line was removed, so the profile changed
    return version


def scrub(conn: sqlite3.Connection, words: Words) -> None:
    """Take `words` out of the profile: every version's lines that hold them, its diff, the lines' sources,
    and vetoes."""
    register(conn)
    clause, args = words.sql(
        "sections || char(10) || coalesce(diff, '') || char(10) || coalesce(sources, '')"
    )
    rows = conn.execute(
        f"select id, sections, diff, sources from profile_versions where {clause}", args
    ).fetchall()
    for version_id, sections, change, sources in rows:
        kept = {
            name: [line for line in lines if not words.found(line)]
            for name, lines in json.loads(sections).items()
        }
        moved = {
            name: [line for line in lines if not words.found(line)]
            for name, lines in json.loads(change or "{}").items()
        }
        found = json.loads(sources or "[]")
        if isinstance(found, dict):
            found = {line: ids for line, ids in found.items() if not words.found(line)}
        conn.execute(
            "update profile_versions set sections = ?, diff = ?, sources = ? where id = ?",
            (json.dumps(kept), json.dumps(moved), json.dumps(found), version_id),
        )
    clause, args = words.sql("line")
    conn.execute(f"delete from profile_vetoes where {clause}", args)


def drop_sources(conn: sqlite3.Connection, memory_ids: list[int]) -> None:
    """Forgotten memories take with them the profile lines that said only them: a new version without those
    lines (inside the forget's transaction). Lines without recorded sources stay."""
    if not memory_ids:
        return
    gone = set(memory_ids)
    row = conn.execute("select sections, sources from profile_versions order by id desc limit 1").fetchone()
    if row is None:
        return
    by_line = json.loads(row[1] or "[]")
    if not isinstance(by_line, dict):
        return
    dropped = {line for line, ids in by_line.items() if ids and set(ids) <= gone}
    if not dropped:
        return
    before = json.loads(row[0])
    after = {
        name: [line for line in lines if f"{name}: {line}" not in dropped] for name, lines in before.items()
    }
    sources = {line: ids for line, ids in by_line.items() if line not in dropped}
    conn.execute(
        "insert into profile_versions (created_at, sections, diff, sources, reason) values (?, ?, ?, ?, ?)",
        (
            timeutil.now_iso(),
            json.dumps(after),
            json.dumps(diff(before, after)),
            json.dumps(sources),
            "its memories were forgotten",
        ),
    )
