"""Import and export formats: the memory leaves and enters as files the user can read.

- json: the whole memory (sessions, messages, memories, provenance, audit log) with a schema version; lossless
  and re-importable (export -> import -> export is identical apart from `exported_at`).
- jsonl: the conversation log, one message per line: session, time, role, speaker, text, id.
- markdown: a readable journal by session, with the profile and the facts at the top (export only).
- chatgpt: a ChatGPT data export's `conversations.json` (import only).
Every import is one transaction: a bad line is reported with its number and nothing is imported. Embeddings are
computed before the transaction starts, so Ctrl+C during the long part leaves the memory file untouched.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from companion import timeutil
from companion.errors import CompanionError
from companion.memory import profile as profile_mod
from companion.memory.index import VARIANT_MESSAGE, VARIANT_MESSAGE_CONTEXT, vector_key
from companion.memory.operations import LongTermMemory, progress_counter
from companion.memory.schema import MIGRATIONS, TIME_COLUMNS, memory_uid, session_uid
from companion.memory.store import ACTIVE, SQL_ERRORS, Store, context_text, new_uid
from companion.memory.timewords import event_time

FORMAT_NAME = "companion-memory"
ROLES = ("user", "assistant", "system")
MAX_IMPORT_BYTES = 1 << 30
TABLES = ("sessions", "messages", "memories", "memory_sources", "audit", "profile_versions", "profile_vetoes")
ORDER = {"memory_sources": "memory_id, message_id", "profile_vetoes": "line"}

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LogLine:
    session: str
    time: str
    role: str
    speaker: str
    text: str
    id: str | None


@dataclass(frozen=True)
class ImportResult:
    messages: int
    sessions: int
    skipped: int
    memories: int = 0
    repaired: int = 0  # messages whose text held characters that cannot be stored (now U+FFFD)


def normalize_time(value: Any, where: str) -> str:
    """A time from an imported file in the stored form (UTC); one sentence when it is not a time."""
    if not isinstance(value, str) or not value.strip():
        raise CompanionError(
            f"{where}: 'time' must be an ISO 8601 date-time string, e.g. 2023-05-08T13:56:00."
        )
    moment = timeutil.parse(value)
    if moment is None:
        raise CompanionError(
            f"{where}: 'time' {value!r} is not an ISO 8601 date-time, e.g. 2023-05-08T13:56:00."
        )
    return timeutil.iso(moment)


def _read_text(path: Path) -> str:
    if not path.exists():
        raise CompanionError(f"{path} does not exist; check the path.")
    if path.stat().st_size > MAX_IMPORT_BYTES:
        raise CompanionError(f"{path} is larger than 1 GiB; split it into smaller files.")
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark at the start is fine
    except UnicodeDecodeError as error:
        raise CompanionError(f"{path} is not UTF-8 text (byte {error.start}); save it as UTF-8.") from None
    except OSError as error:
        raise CompanionError(f"{path} cannot be read ({error.strerror}).") from None


def parse_jsonl(text: str) -> list[LogLine]:
    lines: list[LogLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"Line {number}"
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as error:
            raise CompanionError(f"{where} is not valid JSON ({error.msg}); nothing was imported.") from None
        if not isinstance(item, dict):
            raise CompanionError(f"{where} is not a JSON object; nothing was imported.")
        try:
            lines.append(_log_line(item, where))
        except CompanionError as error:
            raise CompanionError(f"{str(error).rstrip('.')}; nothing was imported.") from None
    if not lines:
        raise CompanionError(
            "The file has no messages; each line should be a JSON object with session, time, role and text."
        )
    return lines


def _log_line(item: dict[str, Any], where: str) -> LogLine:
    for key in ("session", "time", "role", "text"):
        if key not in item:
            raise CompanionError(f"{where}: the required field '{key}' is missing.")
    session, role, text = item["session"], item["role"], item["text"]
    if not isinstance(session, str | int) or isinstance(session, bool) or not str(session).strip():
        raise CompanionError(f"{where}: 'session' must be a non-empty string.")
    if role not in ROLES:
        raise CompanionError(f"{where}: 'role' must be one of user, assistant, system; got {role!r}.")
    if not isinstance(text, str):
        raise CompanionError(f"{where}: 'text' must be a string.")
    speaker = item.get("speaker") or ""
    if not isinstance(speaker, str):
        raise CompanionError(f"{where}: 'speaker' must be a string.")
    ident = item.get("id")
    if ident is not None and (not isinstance(ident, str | int) or isinstance(ident, bool)):
        raise CompanionError(f"{where}: 'id' must be a string.")
    return LogLine(
        str(session),
        normalize_time(item["time"], where),
        role,
        speaker,
        text,
        str(ident) if ident is not None else None,
    )


def parse_chatgpt(text: str) -> list[LogLine]:
    """A ChatGPT export's conversations.json: each conversation's main branch (current node up to the root)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CompanionError(
            f"This is not a ChatGPT conversations.json (invalid JSON at line {error.lineno}); nothing was imported."
        ) from None
    if not isinstance(data, list):
        raise CompanionError("A ChatGPT conversations.json is a list of conversations; this file is not.")
    lines: list[LogLine] = []
    for number, conversation in enumerate(data, start=1):
        where = f"Conversation {number}"
        if not isinstance(conversation, dict) or not isinstance(conversation.get("mapping"), dict):
            raise CompanionError(
                f"{where} has no 'mapping' of messages; is this a ChatGPT export? Nothing was imported."
            )
        mapping: dict[str, Any] = conversation["mapping"]
        session = str(conversation.get("conversation_id") or conversation.get("id") or f"chatgpt-{number}")
        node_id = conversation.get("current_node")
        branch: list[tuple[str, dict[str, Any]]] = []
        seen: set[str] = set()
        while isinstance(node_id, str) and node_id in mapping and node_id not in seen:
            seen.add(node_id)
            node = mapping[node_id]
            if not isinstance(node, dict):
                raise CompanionError(f"{where}: node {node_id} is not an object; nothing was imported.")
            if isinstance(node.get("message"), dict):
                branch.append((node_id, node["message"]))
            node_id = node.get("parent")
        fallback = conversation.get("create_time")
        for ident, message in reversed(branch):
            author = message.get("author")
            role = author.get("role") if isinstance(author, dict) else None
            content = message.get("content") or {}
            parts = content.get("parts") if isinstance(content, dict) else None
            if role not in ("user", "assistant") or not isinstance(parts, list):
                continue
            body = "\n".join(p for p in parts if isinstance(p, str)).strip()
            if not body:
                continue
            stamp = message.get("create_time") or fallback
            if not isinstance(stamp, int | float) or isinstance(stamp, bool):
                raise CompanionError(f"{where}: a message has no create_time; nothing was imported.")
            try:
                when = datetime.fromtimestamp(stamp, UTC)
            except (OverflowError, OSError, ValueError):
                raise CompanionError(
                    f"{where}: a message has an impossible create_time ({stamp!r}); nothing was imported."
                ) from None
            lines.append(
                LogLine(
                    session,
                    timeutil.iso(when),
                    role,
                    "",
                    body,
                    str(message.get("id") or ident),
                )
            )
    if not lines:
        raise CompanionError("The ChatGPT export has no user or assistant messages; nothing was imported.")
    return lines


@dataclass
class _Plan:
    """Which lines of an import are not in the memory file yet, and where they go."""

    sessions: dict[str, int | None]  # the file's session name -> the session already holding it, if any
    fresh: list[tuple[LogLine, str]]  # (line, its text read with the turn before it)
    skipped: int

    @property
    def signature(self) -> tuple[object, ...]:
        return tuple(self.sessions.items()), tuple(id(line) for line, _ in self.fresh)


def _line_key(line: LogLine) -> tuple[str, ...]:
    """What makes a line the same line when the file is imported again: its id, else its time, role and text."""
    return ("id", line.id) if line.id is not None else ("line", line.time, line.role, line.text)


def _plan(store: Store, lines: list[LogLine]) -> _Plan:
    sessions: dict[str, int | None] = {}
    last_text: dict[str, str | None] = {}
    known: dict[str, set[tuple[str, ...]]] = {}
    for line in lines:
        if line.session in sessions:
            continue
        row = store.conn.execute(
            "select min(id) from sessions where external_id = ?", (line.session,)
        ).fetchone()
        session_id = row[0] if row else None
        sessions[line.session] = session_id
        known[line.session] = set()
        last_text[line.session] = None
        if session_id is None:
            continue
        for source_id, created_at, role, text in store.conn.execute(
            "select source_id, created_at, role, text from messages where session_id = ? order by id",
            (session_id,),
        ):
            known[line.session].add(
                ("id", source_id) if source_id is not None else ("line", created_at, role, text)
            )
            last_text[line.session] = text
    fresh: list[tuple[LogLine, str]] = []
    skipped = 0
    for line in lines:
        key = _line_key(line)
        if key in known[line.session]:
            skipped += 1
            continue
        known[line.session].add(key)
        fresh.append((line, context_text(last_text[line.session], line.text)))
        last_text[line.session] = line.text
    return _Plan(sessions, fresh, skipped)


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
        vectors = _embed_plan(memory, plan, progress)
        try:
            new_sessions, keys, picks = _write_plan(memory, lines, plan, vectors)
        except _Changed:
            continue
        if keys:
            memory.add_vectors(np.asarray(keys, dtype=np.int64), vectors[picks])
        return ImportResult(len(plan.fresh), new_sessions, plan.skipped, repaired=repaired)
    raise CompanionError("Another import kept changing the memory file; run this import again.")


def _embed_plan(memory: LongTermMemory, plan: _Plan, progress: Progress | None) -> np.ndarray:
    """Vectors for the new lines: each alone (the first half), then read with the turn before it."""
    tick = progress_counter(progress, "Embedding messages", len(plan.fresh))
    # Temporary session keys for the vectors: existing sessions continue from their last stored message.
    session_keys = {name: index for index, name in enumerate(plan.sessions)}
    stored = memory.previous_vectors({sid: 1 << 62 for sid in plan.sessions.values() if sid is not None})
    previous = {
        session_keys[n]: stored[sid] for n, sid in plan.sessions.items() if sid is not None and sid in stored
    }
    _, vectors = memory.message_vectors(
        [(i, session_keys[line.session], line.text) for i, (line, _) in enumerate(plan.fresh)], tick, previous
    )
    return vectors


def _write_plan(
    memory: LongTermMemory, lines: list[LogLine], plan: _Plan, vectors: np.ndarray
) -> tuple[int, list[int], list[int]]:
    """Write the plan in one transaction, unless another process changed what is new meanwhile. Returns the
    new sessions, and the vector keys with which row of `vectors` each one is."""
    store = memory.store
    keys: list[int] = []
    picks: list[int] = []
    sessions = dict(plan.sessions)
    half = len(plan.fresh)
    new_sessions = 0
    with store.transaction() as conn:
        if _plan(store, lines).signature != plan.signature:
            raise _Changed
        for session, session_id in sessions.items():
            if session_id is None:
                times = [line.time for line, _ in plan.fresh if line.session == session]
                if not times:
                    continue
                cursor = conn.execute(
                    "insert into sessions (title, started_at, ended_at, external_id, uid) values (?, ?, ?, ?, ?)",
                    (session, min(times), max(times), session, new_uid()),
                )
                sessions[session] = int(cursor.lastrowid or 0)
                new_sessions += 1
        rows = []
        for position, (line, context) in enumerate(plan.fresh):
            cursor = conn.execute(
                "insert into messages (session_id, role, speaker, text, created_at, source_id, context, event_time)"
                " values (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sessions[line.session],
                    line.role,
                    line.speaker,
                    line.text,
                    line.time,
                    line.id,
                    context,
                    event_time(line.text, line.time),
                ),
            )
            message_id = int(cursor.lastrowid or 0)
            for variant, offset in ((VARIANT_MESSAGE, 0), (VARIANT_MESSAGE_CONTEXT, half)):
                key = vector_key(message_id, variant)
                keys.append(key)
                picks.append(position + offset)
                rows.append(
                    (
                        key,
                        "message",
                        message_id,
                        variant,
                        memory.embed_model,
                        vectors[position + offset].tobytes(),
                    )
                )
        store.put_vectors(conn, rows)
        touched = [sid for sid in sessions.values() if sid is not None]
        conn.executemany(
            "update sessions set ended_at = (select max(created_at) from messages m where m.session_id = sessions.id)"
            " where id = ?",
            [(sid,) for sid in touched],
        )
    return new_sessions, keys, picks


# -- the project's own json ---------------------------------------------------------------------------------------
def export_json(memory: LongTermMemory) -> dict[str, Any]:
    store = memory.store
    out: dict[str, Any] = {
        "format": FORMAT_NAME,
        "schema_version": store.version,
        "exported_at": timeutil.now().isoformat(timespec="seconds"),
        "embedding_model": memory.embed_model,
    }
    for table in TABLES:
        order = ORDER.get(table, "id")
        out[table] = list(store.db.query(f"select * from [{table}] order by {order}"))
    for message in out["messages"]:
        message.pop("context", None)  # derived from the previous message on import
        message.pop("event_time", None)  # derived from the text and its time on import
        if message.get("reasoning") is None:
            message.pop("reasoning", None)  # a reasoning model's reasoning is exported only when it was kept
    return out


def check_export(data: Any) -> dict[str, Any]:
    """A companion json export, checked before anything is written (a sentence for what is wrong)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise CompanionError(
            'This is not a companion memory export (no "format": "companion-memory"); for a conversation log use --format jsonl.'
        )
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > len(MIGRATIONS):
        raise CompanionError(
            f"The export has schema version {version!r}, newer than this companion understands; upgrade companion."
        )
    for table in TABLES:
        rows = data.get(table, [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise CompanionError(f"The export's '{table}' must be a list of objects; nothing was imported.")
    return data


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
        with store.transaction() as conn:
            counts = _JsonImport(store, conn, data).run()
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

    def __init__(self, store: Store, conn: sqlite3.Connection, data: dict[str, Any]) -> None:
        self.store, self.conn, self.data = store, conn, data
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
        names = [k for k in row if k != "id"]
        cursor = self.conn.execute(
            f"insert into [{table}] ({', '.join(names)}) values ({', '.join('?' * len(names))})",
            [row[k] for k in names],
        )
        return int(cursor.lastrowid or 0)

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
        previous: dict[int, str] = {}
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
            context = context_text(previous.get(session_id), row["text"])
            previous[session_id] = row["text"]
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
            conn.execute(
                "update sessions set parent_id = ?, branch_at = ? where id = ?", (parent, branch_at, new_id)
            )
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
            conn.execute(
                "update memories set superseded_by = ? where id = ?", (self.memories.get(old_target), new_id)
            )
        for row in self.data.get("memory_sources", []):
            memory_id = self.memories.get(row["memory_id"])
            message_id = self.messages.get(row["message_id"])
            if memory_id in self.new_memories and message_id is not None:
                conn.execute(
                    "insert or ignore into memory_sources (memory_id, message_id) values (?, ?)",
                    (memory_id, message_id),
                )
        have_versions = set(conn.execute("select created_at, sections from profile_versions").fetchall())
        for row in self.rows("profile_versions"):
            if (row["created_at"], row["sections"]) not in have_versions:
                self.insert("profile_versions", row)
        for row in self.rows("profile_vetoes"):
            conn.execute(
                "insert or ignore into profile_vetoes (line, created_at) values (?, ?)",
                (row["line"], row.get("created_at")),
            )
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


@dataclass(frozen=True)
class Parsed:
    """An import file read and checked, before the memory file is touched (or the embedder loaded)."""

    fmt: str  # json | jsonl | chatgpt
    lines: list[LogLine] = field(default_factory=list)  # jsonl, chatgpt
    data: dict[str, Any] = field(default_factory=dict)  # json
    repaired: int = 0  # how many messages had text that cannot be stored (lone surrogates), repaired


def read_import(path: Path, fmt: str | None, ask: Callable[[str], str] | None = None) -> Parsed:
    """Read, decode and check an import file; an export sealed with `export --encrypt` is opened with its
    passphrase (`ask`). Every problem is one sentence, and nothing is written."""
    from companion.memory import encryption

    fmt = fmt or _guess_format(path)
    if fmt not in ("json", "jsonl", "chatgpt"):
        raise CompanionError(f"'{fmt}' is not an import format; use json, jsonl or chatgpt.")
    if encryption.is_sealed_file(path):
        secret = encryption.passphrase(ask, "Passphrase of the encrypted export: ")
        try:
            text = encryption.unseal(path.read_bytes(), secret).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CompanionError(
                "The encrypted export does not hold UTF-8 text; nothing was imported."
            ) from None
    else:
        text = _read_text(path)
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CompanionError(
                f"The file is not valid JSON (line {error.lineno}: {error.msg}); nothing was imported."
            ) from None
        data, repaired = _repair(check_export(data))
        return Parsed(fmt, data=data, repaired=repaired)
    lines = parse_jsonl(text) if fmt == "jsonl" else parse_chatgpt(text)
    repaired_lines = [_repair_line(line) for line in lines]
    return Parsed(fmt, lines=[line for line, _ in repaired_lines], repaired=sum(r for _, r in repaired_lines))


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


# Text that cannot be stored as UTF-8: a lone surrogate (JSON's "\ud800" escapes), repaired to U+FFFD.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _repair_text(value: str) -> tuple[str, bool]:
    fixed = _SURROGATE.sub("\ufffd", value)
    return fixed, fixed != value


def _repair_line(line: LogLine) -> tuple[LogLine, bool]:
    fields = {}
    changed = False
    for name in ("session", "speaker", "text", "id"):
        value = getattr(line, name)
        if isinstance(value, str):
            value, was = _repair_text(value)
            changed |= was
        fields[name] = value
    return (replace(line, **fields) if changed else line), changed


def _repair(data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Every string of an export's rows repaired; returns how many messages were."""
    count = 0
    for table in TABLES:
        for row in data.get(table, []):
            changed = False
            for key, value in list(row.items()):
                if isinstance(value, str):
                    row[key], was = _repair_text(value)
                    changed |= was
            if changed and table == "messages":
                count += 1
    return data, count


def _guess_format(path: Path) -> str:
    if path.suffix == ".jsonl":
        return "jsonl"
    if path.name == "conversations.json":
        return "chatgpt"
    return "json"


# -- exports --------------------------------------------------------------------------------------------------
def export_jsonl(memory: LongTermMemory) -> str:
    rows = memory.store.conn.execute(
        "select coalesce(s.external_id, 'session-' || s.id), m.created_at, m.role, m.speaker, m.text, m.source_id, m.id"
        " from messages m join sessions s on s.id = m.session_id where s.off_record = 0 order by m.session_id, m.id"
    ).fetchall()
    out = []
    for session, time, role, speaker, text, source_id, message_id in rows:
        item = {
            "session": session,
            "time": time,
            "role": role,
            "speaker": speaker or None,
            "text": text,
            "id": source_id or str(message_id),
        }
        out.append(json.dumps({k: v for k, v in item.items() if v is not None}, ensure_ascii=False))
    return "\n".join(out) + ("\n" if out else "")


def export_markdown(memory: LongTermMemory) -> str:
    store = memory.store
    lines = ["# companion memory", "", f"Exported {timeutil.now().strftime('%d %B %Y')}.", ""]
    # The profile lives in its versions (and older files may hold profile memories too).
    profile = profile_mod.current(store).lines + [
        r[0]
        for r in store.conn.execute(
            f"select text from memories where kind = 'profile' and {ACTIVE} order by id"
        )
    ]
    if profile:
        lines += ["## Who you are (profile)", "", *[f"- {p}" for p in profile], ""]
    facts = list(
        store.conn.execute(
            f"select text, event_time from memories where kind in ('fact', 'note') and {ACTIVE}"
            " order by coalesce(event_time, created_at)"
        )
    )
    if facts:
        lines += ["## What I remember", "", *[f"- {t}" + (f" ({e[:10]})" if e else "") for t, e in facts], ""]
    sessions = store.conn.execute(
        "select id, coalesce(external_id, title, ''), started_at from sessions where off_record = 0 order by started_at, id"
    ).fetchall()
    for session_id, title, started in sessions:
        day = started[:10] if started else ""
        lines += [f"## {day} — {title}".rstrip(" —") if title else f"## {day}", ""]
        summary = store.conn.execute(
            "select text from memories where kind = 'summary' and session_id = ? and archived = 0 order by id desc limit 1",
            (session_id,),
        ).fetchone()
        if summary:
            lines += [f"*{summary[0]}*", ""]
        for role, speaker, text, created in store.conn.execute(
            "select role, speaker, text, created_at from messages where session_id = ? order by id",
            (session_id,),
        ):
            who = speaker or ("You" if role == "user" else "Companion")
            lines += [f"**{who}** ({created[11:16]}): {text}", ""]
    return "\n".join(lines)
