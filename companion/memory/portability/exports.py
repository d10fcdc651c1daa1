"""Exports: the memory as files the user can read and take elsewhere — the project's json (the whole memory,
re-importable: export → import → export is identical apart from `exported_at`), the JSON Lines conversation
log, and a readable Markdown journal by session with the profile and the facts at the top."""

from __future__ import annotations

import json
from typing import Any

from companion import timeutil
from companion.memory.operations import LongTermMemory
from companion.memory.portability.formats import FORMAT_NAME, ORDER, TABLES
from companion.memory.tables import profile as profile_mod
from companion.memory.tables.memories import ACTIVE


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


# -- exports --------------------------------------------------------------------------------------------------
def export_jsonl(memory: LongTermMemory) -> str:
    rows = memory.store.conn.execute(
        "select coalesce(s.external_id, 'companion-' || s.uid, 'session-' || s.id), m.created_at, m.role, m.speaker, m.text, m.source_id, m.id"
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
