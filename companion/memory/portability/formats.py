"""The files memory enters and leaves as, read and checked before anything is written (or the embedder
loaded): the project's own json export (the whole memory, lossless, with a schema version), the JSON Lines
conversation log (one message per line: session, time, role, speaker, text, id), a ChatGPT data export's
`conversations.json`, and an export sealed with a passphrase. Every problem is one sentence naming the line."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from companion import jsontext, timeutil
from companion.errors import CompanionError
from companion.memory.db.schema import MIGRATIONS
from companion.memory.records import MAX_TEXT_CHARS
from companion.memory.tables.restore import TABLES

FORMAT_NAME = "companion-memory"


ROLES = ("user", "assistant", "system")


MAX_IMPORT_BYTES = 1 << 30
LINE_CHARS = 2 * MAX_TEXT_CHARS + 4096  # a line holding one longest message, with its JSON and some escapes


ORDER = {"memory_sources": "memory_id, message_id", "profile_vetoes": "line"}


@dataclass(frozen=True)
class LogLine:
    session: str
    time: str
    role: str
    speaker: str
    text: str
    id: str | None
    title: str = ""  # the conversation's title, where the file has one (a ChatGPT export)
    persona: str = ""  # who the other side of the conversation was (ChatGPT), where the file says


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


def read_text(path: Path) -> str:
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
    # Lines end at "\n" only (JSON Lines): U+2028, U+2029 and U+0085 are text, and a JSON string may hold them.
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            continue
        where = f"Line {number}"
        if len(raw) > LINE_CHARS:  # refused before it is parsed: a runaway line never fills the memory
            raise CompanionError(
                f"{where} is {len(raw):,} characters long; one message can be at most {MAX_TEXT_CHARS:,} "
                "characters; nothing was imported."
            )
        try:
            item = jsontext.loads(raw, where, mend=False)
        except json.JSONDecodeError as error:
            raise CompanionError(f"{where} is not valid JSON ({error.msg}); nothing was imported.") from None
        if not isinstance(item, dict):
            raise CompanionError(f"{where} is not a JSON object; nothing was imported.")
        try:
            lines.append(log_line(item, where))
        except CompanionError as error:
            raise CompanionError(f"{str(error).rstrip('.')}; nothing was imported.") from None
    if not lines:
        raise CompanionError(
            "The file has no messages; each line should be a JSON object with session, time, role and text."
        )
    return lines


def log_line(item: dict[str, Any], where: str) -> LogLine:
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
    if len(text) > MAX_TEXT_CHARS:
        raise CompanionError(
            f"{where}: the text is {len(text):,} characters long; one message can be at most {MAX_TEXT_CHARS:,}."
        )
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


CHATGPT = "ChatGPT"


def parse_chatgpt(text: str) -> list[LogLine]:
    """A ChatGPT export's conversations.json: each conversation's main branch (current node up to the root)."""
    try:
        data = jsontext.loads(text, "The file", mend=False)
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
        title = conversation.get("title")
        title = title.strip() if isinstance(title, str) else ""
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
                    CHATGPT if role == "assistant" else "",  # its replies are ChatGPT's, not the persona's
                    body,
                    str(message.get("id") or ident),
                    title,
                    CHATGPT,
                )
            )
    if not lines:
        raise CompanionError("The ChatGPT export has no user or assistant messages; nothing was imported.")
    return lines


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
    from companion.memory.portability import sealed

    fmt = fmt or guess_format(path)
    if fmt not in ("json", "jsonl", "chatgpt"):
        raise CompanionError(f"'{fmt}' is not an import format; use json, jsonl or chatgpt.")
    if sealed.is_sealed_file(path):
        secret = encryption.passphrase(
            ask, "Passphrase of the encrypted export: ", what="the encrypted export"
        )
        try:
            text = sealed.unseal(path.read_bytes(), secret).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CompanionError(
                "The encrypted export does not hold UTF-8 text; nothing was imported."
            ) from None
    else:
        text = read_text(path)
    if fmt == "json":
        try:
            data = jsontext.loads(text, "The file", mend=False)
        except json.JSONDecodeError as error:
            raise CompanionError(
                f"The file is not valid JSON (line {error.lineno}: {error.msg}); nothing was imported."
            ) from None
        data, repaired = repair(check_export(data))
        return Parsed(fmt, data=data, repaired=repaired)
    lines = parse_jsonl(text) if fmt == "jsonl" else parse_chatgpt(text)
    repaired_lines = [repair_line(line) for line in lines]
    return Parsed(fmt, lines=[line for line, _ in repaired_lines], repaired=sum(r for _, r in repaired_lines))


# Text that cannot be stored as UTF-8: a lone surrogate (JSON's "\ud800" escapes), repaired to U+FFFD.
SURROGATE = re.compile("[\ud800-\udfff]")


def repair_text(value: str) -> tuple[str, bool]:
    fixed = SURROGATE.sub("\ufffd", value)
    return fixed, fixed != value


def repair_line(line: LogLine) -> tuple[LogLine, bool]:
    fields = {}
    changed = False
    for name in ("session", "speaker", "text", "id"):
        value = getattr(line, name)
        if isinstance(value, str):
            value, was = repair_text(value)
            changed |= was
        fields[name] = value
    return (replace(line, **fields) if changed else line), changed


def repair(data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Every string of an export's rows repaired; returns how many messages were."""
    count = 0
    for table in TABLES:
        for row in data.get(table, []):
            changed = False
            for key, value in list(row.items()):
                if isinstance(value, str):
                    row[key], was = repair_text(value)
                    changed |= was
            if changed and table == "messages":
                count += 1
    return data, count


def guess_format(path: Path) -> str:
    if path.suffix == ".jsonl":
        return "jsonl"
    if path.name == "conversations.json":
        return "chatgpt"
    return "json"
