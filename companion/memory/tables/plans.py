"""Upkeep's plans, applied: a session's summary and facts, a digest — each in the caller's transaction with
its progress marker, which is claimed there: a plan another process already wrote (the app's scheduler and
`maintain` from cron at once) is not written twice."""

from __future__ import annotations

import json
from datetime import date

from companion import timeutil
from companion.memory.db.store import Store
from companion.memory.records import DigestPlan, SessionPlan
from companion.memory.tables import Write, memories, meta


def session_marker(session_id: int) -> str:
    return f"consolidated.session.{session_id}"


def consolidated_up_to(store: Store, session_id: int) -> int:
    """The last message of a session consolidation has written (0: none)."""
    return _last_message(meta.get(store, session_marker(session_id)))


def _last_message(marker: str | None) -> int:
    return int(json.loads(marker).get("last_message", 0)) if marker else 0


def digest_marker(period: str, day: str) -> str:
    return f"digest.{period}.{day}"


def apply_session(w: Write, plan: SessionPlan, model: str) -> dict[str, int] | None:
    """Write a session's plan. None when the marker says it is written already (by another process since the
    plan was made); else what was written, by kind of change."""
    if _last_message(meta.read(w.conn, session_marker(plan.session_id))) >= plan.last_message:
        return None
    counts = {"summaries": 0, "added": 0, "updated": 0, "superseded": 0, "unchanged": 0}
    vector = plan.vectors.get
    if plan.summary:
        for old in memories.session_summaries(w, plan.session_id):
            memories.supersede(w, old, "the session went on; summarized anew")
        memories.add(
            w,
            "summary",
            plan.summary,
            sources=plan.summary_sources,
            event_time=plan.summary_time,
            importance=0.6,
            reason="session summary",
            session_id=plan.session_id,
            vector=vector(plan.summary),
            model=model,
        )
        counts["summaries"] += 1
    for decision in plan.decisions:
        fact, target, text = decision.fact, decision.target, decision.text
        if decision.action == "ADD" or (decision.action == "SUPERSEDE" and target is not None):
            new_id = memories.add(
                w,
                "fact",
                text,
                sources=fact.sources,
                event_time=fact.when,
                importance=fact.importance,
                reason="learned in conversation" if decision.action == "ADD" else "replaces an older fact",
                session_id=plan.session_id,
                thread="open" if fact.future and decision.action == "ADD" else None,
                vector=vector(text),
                model=model,
            )
            if decision.action == "ADD":
                counts["added"] += 1
            else:
                assert target is not None
                memories.supersede(w, target, "contradicted by a newer fact", by=new_id, text=text)
                counts["superseded"] += 1
        elif decision.action == "UPDATE" and target is not None:
            memories.update_text(
                w, target, text, "more detail learned", sources=fact.sources, vector=vector(text), model=model
            )
            counts["updated"] += 1
        elif target is not None:
            memories.add_sources(w, target, fact.sources)
            counts["unchanged"] += 1
    memories.claim_for_persona(w, plan.session_id)
    meta.write(
        w.conn,
        session_marker(plan.session_id),
        json.dumps({"last_message": plan.last_message, "at": timeutil.now_iso()}),
    )
    return counts


def apply_digest(w: Write, plan: DigestPlan, model: str) -> int | None:
    """Write a digest and its marker; None when another process wrote it already."""
    key = digest_marker(plan.period, plan.day)
    if meta.read(w.conn, key):
        return None
    new_id = memories.add(
        w,
        "digest",
        f"Week of {plan.day}: {plan.text}" if plan.period == "week" else plan.text,
        sources=plan.sources,
        event_time=timeutil.iso(timeutil.local_midnight(date.fromisoformat(plan.day))),
        importance=0.6,
        reason=f"{plan.period} digest",
        period=plan.period,
        vector=plan.vector,
        model=model,
    )
    meta.write(w.conn, key, timeutil.now_iso())
    return new_id
