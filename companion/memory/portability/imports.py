"""Imports: a conversation log (JSON Lines, ChatGPT) or a companion json export added to the memory.

Every import is one transaction: a bad line is reported with its number and nothing is imported (files are read
and checked first, `formats.py`). Embeddings are computed before the transaction starts, so Ctrl+C during the
long part leaves the memory file untouched; what is new is decided again inside the transaction, so the same
file imported twice, even at once, is added once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from companion import timeutil
from companion.errors import CompanionError
from companion.memory.db.schema import TIME_COLUMNS, memory_uid, session_uid
from companion.memory.db.store import SQL_ERRORS, Store
from companion.memory.operations import LongTermMemory, progress_counter
from companion.memory.portability.formats import TABLES, LogLine, Parsed, read_import
from companion.memory.recall.timewords import event_time
from companion.memory.records import (
    VARIANT_MESSAGE,
    VARIANT_MESSAGE_CONTEXT,
    MessageText,
    Sent,
    TurnBefore,
    context_text,
    keep_turn,
    vector_key,
)
from companion.memory.tables import Write, restore, vectors
from companion.memory.tables import messages as message_table
from companion.memory.tables import sessions as session_table

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ImportResult:
    messages: int
    sessions: int
    skipped: int
    memories: int = 0
    repaired: int = 0  # messages whose text held characters that cannot be stored (now U+FFFD)


@dataclass(frozen=True)
class _NewLine:
    """A line not in the memory file yet, with its text read with the turn before it."""

    line: LogLine
    context: str


@dataclass
class _Plan:
    """Which lines of an import are not in the memory file yet, and where they go."""

    sessions: dict[str, int | None]  # the file's session name -> the session already holding it, if any
    fresh: list[_NewLine]
    skipped: int

    @property
    def signature(self) -> tuple[object, ...]:
        return tuple(self.sessions.items()), tuple(id(new.line) for new in self.fresh)


def _line_key(line: LogLine) -> tuple[str, ...]:
    """What makes a line the same line when the file is imported again: its id, else its time, role and text."""
    return ("id", line.id) if line.id is not None else ("line", line.time, line.role, line.text)


def _plan(store: Store, lines: list[LogLine]) -> _Plan:
    found: dict[str, int | None] = {}
    history: dict[str, list[Sent]] = {}  # each session's last turns: what a new line is read with
    known: dict[str, set[tuple[str, ...]]] = {}
    for line in lines:
        if line.session in found:
            continue
        session_id = session_table.for_import(store, line.session)
        found[line.session] = session_id
        known[line.session] = set()
        history[line.session] = []
        if session_id is None:
            continue
        for message in message_table.page(store, session_id, limit=-1):
            known[line.session].add(("line", message.created_at, message.role, message.text))
            if message.source_id is not None:
                known[line.session].add(("id", message.source_id))
        history[line.session] = list(message_table.turns_before(store.conn, session_id))
    fresh: list[_NewLine] = []
    skipped = 0
    for line in lines:
        key = _line_key(line)
        if key in known[line.session] or ("line", line.time, line.role, line.text) in known[line.session]:
            skipped += 1
            continue
        known[line.session].add(key)
        fresh.append(_NewLine(line, context_text(history[line.session], line)))
        keep_turn(history[line.session], line)
    return _Plan(found, fresh, skipped)


class _Changed(Exception):
    """Another process imported into the file between planning and writing: plan again."""


def import_log(
    memory: LongTermMemory, lines: list[LogLine], progress: Progress | None = None, repaired: int = 0
) -> ImportResult:
    """Add conversation lines (JSON Lines or ChatGPT) to the memory in one transaction. A line already in the
    file (the same id in the same session, or the same time, role and text) is skipped, so importing a file
    twice — one after the other or both at once — adds it once. What is new is decided again inside the
    write transaction, which other writers wait for; embeddings are computed before it."""
    store = memory.store
    for _ in range(5):
        plan = _plan(store, lines)
        found = _embed_plan(memory, plan, progress)
        try:
            with memory.write() as w:
                if _plan(store, lines).signature != plan.signature:
                    raise _Changed
                new_sessions = _write_plan(w, memory.embed_model, plan, found)
        except _Changed:
            continue
        return ImportResult(len(plan.fresh), new_sessions, plan.skipped, repaired=repaired)
    raise CompanionError("Another import kept changing the memory file; run this import again.")


def _embed_plan(memory: LongTermMemory, plan: _Plan, progress: Progress | None) -> np.ndarray:
    """Vectors for the new lines: each alone (the first half), then read with the turn before it."""
    tick = progress_counter(progress, "Embedding messages", len(plan.fresh))
    # Temporary session keys for the vectors: existing sessions continue from their last stored message.
    session_keys = {name: index for index, name in enumerate(plan.sessions)}
    # The first new line of each session that goes on -> (that session, after all its stored messages).
    firsts: dict[int, tuple[int, int]] = {}
    for position, new in enumerate(plan.fresh):
        session_id = plan.sessions[new.line.session]
        if session_id is not None and not any(s == session_id for s, _ in firsts.values()):
            firsts[position] = (session_id, 1 << 62)
    rows = [
        MessageText(i, session_keys[line.session], line.text, line.role, line.speaker, line.time)
        for i, line in enumerate(new.line for new in plan.fresh)
    ]
    _, found = memory.message_vectors(rows, tick, memory.turns_before(firsts))
    return found


def _write_plan(w: Write, model: str, plan: _Plan, found: np.ndarray) -> int:
    """Write the plan's sessions, messages and their vectors in the caller's transaction. Returns how many
    sessions are new."""
    ids = dict(plan.sessions)
    half = len(plan.fresh)
    new_sessions = 0
    for name, session_id in ids.items():
        if session_id is None:
            lines = [new.line for new in plan.fresh if new.line.session == name]
            if not lines:
                continue
            times = [line.time for line in lines]
            first = lines[0]
            ids[name] = session_table.add_imported(
                w, name, min(times), max(times), title=first.title, persona=first.persona
            )
            new_sessions += 1
    keys: list[int] = []
    picks: list[int] = []
    for position, new in enumerate(plan.fresh):
        line = new.line
        session_id = ids[line.session]
        assert session_id is not None
        message_id = message_table.add_imported(
            w, session_id, line.role, line.speaker, line.text, line.time, line.id, new.context
        )
        for variant, offset in ((VARIANT_MESSAGE, 0), (VARIANT_MESSAGE_CONTEXT, half)):
            keys.append(vector_key(message_id, variant))
            picks.append(position + offset)
    if keys:
        vectors.put(w, "message", keys, found[picks], model)
    session_table.end_at_last_message(w, [sid for sid in ids.values() if sid is not None])
    return new_sessions


def import_json(
    memory: LongTermMemory, data: dict[str, Any], progress: Progress | None = None
) -> ImportResult:
    """Add a companion json export to the memory in one transaction. Sessions and memories carry identities
    (`uid`; exports from before identities get one from their content), so what is already in the file is
    skipped: importing the same export twice adds it once. What is there is decided inside the transaction."""
    store = memory.store
    columns = {t: [r[1] for r in store.conn.execute(f"pragma table_info([{t}])")] for t in TABLES}
    for table in TABLES:
        for number, row in enumerate(data.get(table, []), start=1):
            unknown = set(row) - set(columns[table])
            if unknown:
                raise CompanionError(
                    f"The export's {table} #{number} has unknown fields {sorted(unknown)}; nothing was imported."
                )
    try:
        with memory.write() as w:
            counts = _JsonImport(w, data).run()
    except (KeyError, TypeError, ValueError) as error:
        raise CompanionError(
            f"The export is missing a required field ({error}); nothing was imported."
        ) from None
    except Exception as error:
        if isinstance(error, SQL_ERRORS):
            raise CompanionError(
                f"The export does not fit the memory file ({error}); nothing was imported."
            ) from None
        raise
    memory.embed_missing(progress)
    memory.reopen_index()
    return counts


class _JsonImport:
    """One json import inside its transaction: ids are remapped past what the file holds, rows already there
    (by identity) are skipped and what points at them points at the rows in the file."""

    def __init__(self, w: Write, data: dict[str, Any]) -> None:
        self.w, self.conn, self.data = w, w.conn, data
        self.sessions: dict[int, int] = {}  # export id -> id in the file
        self.messages: dict[int, int] = {}
        self.memories: dict[int, int] = {}
        self.new_sessions: set[int] = set()
        self.new_messages: set[int] = set()
        self.new_memories: set[int] = set()

    def rows(self, table: str) -> list[dict[str, Any]]:
        out = []
        for row in self.data.get(table, []):
            row = dict(row)
            for column in TIME_COLUMNS.get(table, ()):
                if isinstance(row.get(column), str):
                    row[column] = timeutil.normalize(row[column]) or row[column]
            out.append(row)
        return out

    def insert(self, table: str, row: dict[str, Any]) -> int:
        return restore.insert(self.w, table, row)

    def run(self) -> ImportResult:
        conn = self.conn
        have_sessions = dict(conn.execute("select uid, id from sessions where uid is not null").fetchall())
        have_memories = dict(conn.execute("select uid, id from memories where uid is not null").fetchall())
        branches: list[tuple[int, dict[str, Any]]] = []
        for row in self.rows("sessions"):
            uid = row.get("uid") or session_uid(row.get("started_at"), row.get("external_id"))
            if uid in have_sessions:
                self.sessions[row["id"]] = have_sessions[uid]
                continue
            new_id = self.insert("sessions", row | {"uid": uid, "parent_id": None, "branch_at": None})
            self.sessions[row["id"]] = new_id
            self.new_sessions.add(new_id)
            have_sessions[uid] = new_id
            branches.append((new_id, row))
        previous: dict[int, list[TurnBefore]] = {}  # each new session's last turns
        existing: dict[int, dict[tuple[str, str, str], int]] = {}
        for row in self.rows("messages"):
            session_id = self.sessions[row["session_id"]]
            if session_id not in self.new_sessions:  # the session is there: so are its messages
                if session_id not in existing:
                    existing[session_id] = {
                        (c, r, t): i
                        for i, c, r, t in conn.execute(
                            "select id, created_at, role, text from messages where session_id = ?",
                            (session_id,),
                        )
                    }
                found = existing[session_id].get((row["created_at"], row["role"], row["text"]))
                if found is not None:
                    self.messages[row["id"]] = found
                continue
            turn = TurnBefore(0, row["text"], None, row["role"], row.get("speaker") or "", row["created_at"])
            earlier = previous.setdefault(session_id, [])
            context = context_text(earlier, turn)
            if not row.get("replaced"):  # a regenerated reply is not part of the conversation
                keep_turn(earlier, turn)
            new_id = self.insert(
                "messages",
                row
                | {
                    "session_id": session_id,
                    "context": context,
                    "event_time": event_time(row["text"], row["created_at"]),
                },
            )
            self.messages[row["id"]] = new_id
            self.new_messages.add(new_id)
        for new_id, row in branches:  # a branch points at its parent and its branch point, once all are in
            parent = self.sessions.get(row.get("parent_id") or -1)
            branch_at = self.messages.get(row.get("branch_at") or -1)
            restore.link_branch(self.w, new_id, parent, branch_at)
        superseded: list[tuple[int, int]] = []
        for row in self.rows("memories"):
            uid = row.get("uid") or memory_uid(row.get("kind"), row.get("text"), row.get("created_at"))
            if uid in have_memories:
                self.memories[row["id"]] = have_memories[uid]
                continue
            session = self.sessions.get(row["session_id"]) if row.get("session_id") is not None else None
            new_id = self.insert("memories", row | {"uid": uid, "superseded_by": None, "session_id": session})
            self.memories[row["id"]] = new_id
            self.new_memories.add(new_id)
            have_memories[uid] = new_id
            if row.get("superseded_by") is not None:
                superseded.append((new_id, row["superseded_by"]))
        for new_id, old_target in superseded:
            restore.link_superseded(self.w, new_id, self.memories.get(old_target))
        for row in self.data.get("memory_sources", []):
            memory_id = self.memories.get(row["memory_id"])
            message_id = self.messages.get(row["message_id"])
            if memory_id in self.new_memories and message_id is not None:
                restore.link_source(self.w, memory_id, message_id)
        have_versions = set(conn.execute("select created_at, sections from profile_versions").fetchall())
        for row in self.rows("profile_versions"):
            if (row["created_at"], row["sections"]) not in have_versions:
                self.insert("profile_versions", row)
        for row in self.rows("profile_vetoes"):
            restore.veto(self.w, row["line"], row.get("created_at"))
        have_personas = {name.lower() for (name,) in conn.execute("select name from personas")}
        for row in self.rows("personas"):  # a persona already here (by name) keeps its card
            if str(row.get("name", "")).lower() not in have_personas:
                self.insert("personas", row)
                have_personas.add(str(row["name"]).lower())
        for row in self.rows("audit"):
            target, target_id = row.get("target"), row.get("target_id")
            if target == "memory" and target_id is not None:
                mapped = self.memories.get(target_id)
                if mapped not in self.new_memories:
                    continue
                self.insert("audit", row | {"target_id": mapped})
            elif target == "message" and target_id is not None:
                mapped = self.messages.get(target_id)
                if mapped not in self.new_messages:
                    continue
                self.insert("audit", row | {"target_id": mapped})
            elif self.new_messages or self.new_memories:  # file-wide entries come with what they are about
                self.insert("audit", row)
        return ImportResult(
            messages=len(self.new_messages),
            sessions=len(self.new_sessions),
            skipped=len(self.data.get("messages", [])) - len(self.new_messages),
            memories=len(self.new_memories),
        )


def import_parsed(memory: LongTermMemory, parsed: Parsed, progress: Progress | None = None) -> ImportResult:
    if parsed.fmt == "json":
        result = import_json(memory, parsed.data, progress)
        return ImportResult(
            result.messages, result.sessions, result.skipped, result.memories, parsed.repaired
        )
    return import_log(memory, parsed.lines, progress, parsed.repaired)


def import_file(
    memory: LongTermMemory,
    path: Path,
    fmt: str | None,
    progress: Progress | None = None,
    ask: Callable[[str], str] | None = None,
) -> ImportResult:
    """Import a file: read and check it first, then write it in one transaction."""
    return import_parsed(memory, read_import(path, fmt, ask), progress)
