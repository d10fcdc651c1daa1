"""One memory or one message seen whole: its state, where it came from and every change to it. Built once
here; `companion memory show` prints it and the app's memory detail renders it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from companion import timeutil
from companion.memory.forgetting import retention
from companion.memory.store import Memory, Message, Store


@dataclass(frozen=True)
class Change:
    at: str
    action: str
    old_text: str | None
    new_text: str | None
    reason: str


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
    memory = store.get_memory(memory_id)
    if memory is None:
        return None
    last = timeutil.parse(memory.last_recalled_at or memory.created_at)
    kept = 1.0 if memory.pinned else retention(memory.strength, last, now, tau_days)
    changes = [
        Change(row["at"], row["action"], row["old_text"], row["new_text"], row["reason"] or "")
        for row in store.history("memory", memory_id)
    ]
    return MemoryView(memory, kept, store.memory_sources(memory_id), changes)


def message_view(store: Store, message_id: int) -> MessageView | None:
    message = store.get_message(message_id)
    if message is None:
        return None
    return MessageView(message, store.neighbours(message_id, 1, 1), store.derived_from(message_id))
