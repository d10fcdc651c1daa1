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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from companion import timeutil
from companion.errors import CompanionError
from companion.memory import profile as profile_mod
from companion.memory.index import VARIANT_MESSAGE, VARIANT_MESSAGE_CONTEXT, vector_key
from companion.memory.operations import LongTermMemory, progress_counter
from companion.memory.store import ACTIVE, SQL_ERRORS, context_text

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
        return path.read_text(encoding="utf-8")
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


def import_log(
    memory: LongTermMemory, lines: list[LogLine], progress: Progress | None = None
) -> ImportResult:
    """Add conversation lines (JSON Lines or ChatGPT) to the memory in one transaction; lines whose `id` is
    already in the same session are skipped, so importing a file twice adds nothing the second time."""
    store = memory.store
    sessions: dict[str, int | None] = {}
    last_text: dict[str, str | None] = {}
    known: dict[str, set[str]] = {}
    for line in lines:
        if line.session in sessions:
            continue
        row = store.conn.execute("select id from sessions where external_id = ?", (line.session,)).fetchone()
        sessions[line.session] = row[0] if row else None
        if row:
            last = store.conn.execute(
                "select text from messages where session_id = ? order by id desc limit 1", (row[0],)
            ).fetchone()
            last_text[line.session] = last[0] if last else None
            known[line.session] = {
                r[0]
                for r in store.conn.execute(
                    "select source_id from messages where session_id = ? and source_id is not null", (row[0],)
                )
            }
        else:
            last_text[line.session] = None
            known[line.session] = set()
    fresh: list[tuple[LogLine, str]] = []
    skipped = 0
    for line in lines:
        if line.id is not None and line.id in known[line.session]:
            skipped += 1
            continue
        if line.id is not None:
            known[line.session].add(line.id)
        context = context_text(last_text[line.session], line.text)
        last_text[line.session] = line.text
        fresh.append((line, context))
    tick = progress_counter(progress, "Embedding messages", len(fresh))

    # Temporary session keys for the vectors: existing sessions continue from their last stored message.
    session_keys = {name: index for index, name in enumerate(sessions)}
    stored = memory.previous_vectors({sid: 1 << 62 for sid in sessions.values() if sid is not None})
    previous = {
        session_keys[n]: stored[sid] for n, sid in sessions.items() if sid is not None and sid in stored
    }
    _, vectors = memory.message_vectors(
        [(i, session_keys[line.session], line.text) for i, (line, _) in enumerate(fresh)], tick, previous
    )
    half = len(fresh)
    new_sessions = 0
    keys: list[int] = []
    with store.transaction() as conn:
        for session, session_id in sessions.items():
            if session_id is None:
                times = [line.time for line, _ in fresh if line.session == session]
                if not times:
                    continue
                cursor = conn.execute(
                    "insert into sessions (title, started_at, ended_at, external_id) values (?, ?, ?, ?)",
                    (session, min(times), max(times), session),
                )
                sessions[session] = int(cursor.lastrowid or 0)
                new_sessions += 1
        rows = []
        picks: list[int] = []  # which row of `vectors` goes with each key
        for position, (line, context) in enumerate(fresh):
            cursor = conn.execute(
                "insert into messages (session_id, role, speaker, text, created_at, source_id, context)"
                " values (?, ?, ?, ?, ?, ?, ?)",
                (sessions[line.session], line.role, line.speaker, line.text, line.time, line.id, context),
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
        conn.execute(
            "update sessions set ended_at = (select max(created_at) from messages m where m.session_id = sessions.id) where external_id is not null"
        )
    if keys:
        memory.add_vectors(np.asarray(keys, dtype=np.int64), vectors[picks])
    return ImportResult(messages=len(fresh), sessions=new_sessions, skipped=skipped)


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
    return out


def import_json(memory: LongTermMemory, text: str, progress: Progress | None = None) -> ImportResult:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CompanionError(
            f"The file is not valid JSON (line {error.lineno}: {error.msg}); nothing was imported."
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise CompanionError(
            'This is not a companion memory export (no "format": "companion-memory"); for a conversation log use --format jsonl.'
        )
    version = data.get("schema_version")
    if not isinstance(version, int) or version > memory.store.version:
        raise CompanionError(
            f"The export has schema version {version!r}, newer than this companion understands; upgrade companion."
        )
    store = memory.store
    columns = {t: [r[1] for r in store.conn.execute(f"pragma table_info([{t}])")] for t in TABLES}
    for table in TABLES:
        rows = data.get(table, [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise CompanionError(f"The export's '{table}' must be a list of objects; nothing was imported.")
        for number, row in enumerate(rows, start=1):
            unknown = set(row) - set(columns[table])
            if unknown:
                raise CompanionError(
                    f"The export's {table} #{number} has unknown fields {sorted(unknown)}; nothing was imported."
                )
    offsets = {
        t: int(store.scalar(f"select coalesce(max(id), 0) from [{t}]") or 0)
        for t in ("sessions", "messages", "memories", "audit", "profile_versions")
    }
    try:
        with store.transaction() as conn:

            def insert(table: str, row: dict[str, Any]) -> None:
                keys = list(row)
                conn.execute(
                    f"insert into [{table}] ({', '.join(keys)}) values ({', '.join('?' * len(keys))})",
                    [row[k] for k in keys],
                )

            for row in data.get("sessions", []):
                moved = row | {"id": row["id"] + offsets["sessions"]}
                if row.get("parent_id") is not None:  # a branch points at its parent and its branch point
                    moved["parent_id"] = row["parent_id"] + offsets["sessions"]
                if row.get("branch_at") is not None:
                    moved["branch_at"] = row["branch_at"] + offsets["messages"]
                insert("sessions", moved)
            previous: dict[int, str] = {}
            for row in data.get("messages", []):
                session_id = row["session_id"] + offsets["sessions"]
                context = context_text(previous.get(session_id), row["text"])
                previous[session_id] = row["text"]
                insert(
                    "messages",
                    row
                    | {"id": row["id"] + offsets["messages"], "session_id": session_id, "context": context},
                )
            for row in data.get("memories", []):
                moved = row | {"id": row["id"] + offsets["memories"]}
                if row.get("superseded_by") is not None:
                    moved["superseded_by"] = row["superseded_by"] + offsets["memories"]
                if row.get("session_id") is not None:
                    moved["session_id"] = row["session_id"] + offsets["sessions"]
                insert("memories", moved)
            for row in data.get("memory_sources", []):
                insert(
                    "memory_sources",
                    {
                        "memory_id": row["memory_id"] + offsets["memories"],
                        "message_id": row["message_id"] + offsets["messages"],
                    },
                )
            for row in data.get("profile_versions", []):
                insert("profile_versions", row | {"id": row["id"] + offsets["profile_versions"]})
            for row in data.get("profile_vetoes", []):
                conn.execute(
                    "insert or ignore into profile_vetoes (line, created_at) values (?, ?)",
                    (row["line"], row.get("created_at")),
                )
            for row in data.get("audit", []):
                moved = row | {"id": row["id"] + offsets["audit"]}
                if row.get("target") == "memory" and row.get("target_id") is not None:
                    moved["target_id"] = row["target_id"] + offsets["memories"]
                insert("audit", moved)
    except (KeyError, TypeError) as error:
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
    return ImportResult(
        messages=len(data.get("messages", [])),
        sessions=len(data.get("sessions", [])),
        skipped=0,
        memories=len(data.get("memories", [])),
    )


def import_file(
    memory: LongTermMemory,
    path: Path,
    fmt: str | None,
    progress: Progress | None = None,
    ask: Callable[[str], str] | None = None,
) -> ImportResult:
    """Import a file; an export sealed with `export --encrypt` is opened with its passphrase (`ask`)."""
    from companion.memory import encryption

    fmt = fmt or _guess_format(path)
    if encryption.is_sealed_file(path):
        secret = encryption.passphrase(ask, "Passphrase of the encrypted export: ")
        try:
            text = encryption.unseal(path.read_bytes(), secret).decode("utf-8")
        except UnicodeDecodeError:
            raise CompanionError(
                "The encrypted export does not hold UTF-8 text; nothing was imported."
            ) from None
    else:
        text = _read_text(path)
    if fmt == "json":
        return import_json(memory, text, progress)
    if fmt == "jsonl":
        return import_log(memory, parse_jsonl(text), progress)
    if fmt == "chatgpt":
        return import_log(memory, parse_chatgpt(text), progress)
    raise CompanionError(f"'{fmt}' is not an import format; use json, jsonl or chatgpt.")


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
