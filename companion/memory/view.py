"""One memory or one message seen whole: its state, where it came from and every change to it. Built once
here; `companion memory show` prints it and the app's memory detail renders it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from companion import timeutil
from companion.memory.db.store import Store
from companion.memory.recall.retention import retention
from companion.memory.records import Memory, Message
from companion.memory.tables import audit, memories, messages
from companion.memory.tables.audit import Change


@dataclass(frozen=True)
class MemoryView:
    memory: Memory
    retention: float  # 1.0 for a pinned memory
    sources: list[Message]
    history: list[Change]


@dataclass(frozen=True)
class MessageView:
    message: Message
    around: list[Message]  # the turn before and the turn after, in order
    derived: list[int]  # the memories drawn from it


def memory_view(store: Store, memory_id: int, now: datetime, tau_days: float) -> MemoryView | None:
    memory = memories.get(store, memory_id)
    if memory is None:
        return None
    last = timeutil.parse(memory.last_recalled_at or memory.created_at)
    kept = 1.0 if memory.pinned else retention(memory.strength, last, now, tau_days)
    return MemoryView(
        memory, kept, memories.sources(store, memory_id), audit.history(store, "memory", memory_id)
    )


def message_view(store: Store, message_id: int) -> MessageView | None:
    message = messages.get(store, message_id)
    if message is None:
        return None
    return MessageView(
        message, messages.neighbours(store, message_id, 1, 1), messages.derived_from(store, message_id)
    )
