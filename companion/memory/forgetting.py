"""Forgetting the way people do: an Ebbinghaus curve that recall slows (MemoryBank's idea, with the sign right).

Retention R = exp(-Δt / (τ·S)): Δt is the days since the memory was last recalled (or made), S its strength and
τ the days of memory per unit of strength (default 5). A memory starts with S = its importance, and each recall
adds 1 (spaced repetition): the more often something comes up, the longer it stays. MemoryBank's code wrote
`exp(-t / 5*S)`, which Python reads as exp(-t·S/5): there recall made memories fade *faster*.

Pinned memories never fade. A derived memory whose retention falls below the threshold is archived: out of the
index and the prompt, still in the file, listed with `--archived`, restorable, and logged in the audit log.
Forgetting never deletes; only the user's `forget` does. Messages are never archived: for them retention is only
a gentle prior in ranking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from companion import timeutil
from companion.memory.index import VARIANT_MEMORY, vector_key
from companion.memory.store import ACTIVE, Store

DEFAULT_TAU_DAYS = 5.0
DEFAULT_THRESHOLD = 0.05


def retention(
    strength: float, last: datetime | None, now: datetime, tau_days: float = DEFAULT_TAU_DAYS
) -> float:
    """R = exp(-Δt / (τ·S)), Δt in days (never negative: a clock that jumped back forgets nothing)."""
    if last is None:
        return 1.0
    days = max((now - last).total_seconds() / 86400.0, 0.0)
    return math.exp(-days / (tau_days * max(strength, 1e-3)))


@dataclass
class Sweep:
    checked: int = 0
    archived: list[int] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)
    lowest: float = 1.0


def sweep(
    store: Store,
    now: datetime,
    *,
    tau_days: float = DEFAULT_TAU_DAYS,
    threshold: float = DEFAULT_THRESHOLD,
) -> Sweep:
    """Archive every derived memory whose retention at `now` is below `threshold`, in one transaction.

    Returns what was archived; the caller removes those vectors from the FAISS index (`LongTermMemory.archive`
    does both)."""
    result = Sweep()
    rows = store.conn.execute(
        "select id, text, strength, coalesce(last_recalled_at, created_at) from memories"
        f" where {ACTIVE} and pinned = 0"
    ).fetchall()
    due: list[tuple[int, str, float]] = []
    for memory_id, text, strength, last in rows:
        result.checked += 1
        kept = retention(float(strength or 0.0), timeutil.parse(last), now, tau_days)
        result.lowest = min(result.lowest, kept)
        if kept < threshold:
            due.append((memory_id, text, kept))
    if not due:
        return result
    stamp = timeutil.iso(now)
    with store.transaction() as conn:
        for memory_id, text, kept in due:
            conn.execute(
                "update memories set archived = 1, updated_at = ? where id = ? and archived = 0",
                (stamp, memory_id),
            )
            store.audit(
                conn,
                "archive",
                "memory",
                memory_id,
                text,
                text,
                f"retention {kept:.3f} fell below {threshold:g}",
            )
            conn.execute("delete from vectors where key = ?", (vector_key(memory_id, VARIANT_MEMORY),))
    result.archived = [memory_id for memory_id, _, _ in due]
    return result


def sweep_messages(
    store: Store, now: datetime, *, tau_days: float = DEFAULT_TAU_DAYS, threshold: float = DEFAULT_THRESHOLD
) -> list[int]:
    """Opt-in (`memory.archive_messages`): archive messages whose retention (strength 1, since they were said)
    fell below `threshold`, except those a pinned memory comes from. Returns the archived message ids."""
    cutoff = now - timedelta(days=-math.log(max(threshold, 1e-9)) * tau_days)
    ids = [
        r[0]
        for r in store.conn.execute(
            "select id from messages where archived = 0 and created_at < ? and id not in (select s.message_id"
            " from memory_sources s join memories m on m.id = s.memory_id where m.pinned = 1)",
            (timeutil.iso(cutoff),),
        )
    ]
    if not ids:
        return []
    with store.transaction() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            conn.execute(f"update messages set archived = 1 where id in ({marks})", chunk)
            conn.execute(f"delete from vectors where kind = 'message' and item_id in ({marks})", chunk)
        store.audit(
            conn, "archive", "messages", None, None, None, f"{len(ids)} messages faded below {threshold:g}"
        )
    return ids
