"""One memory (or one recalled message) in full: text, state, provenance and change history, with the same
operations as `companion memory pin|edit|forget|restore`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown


def describe_memory(app: Any, kind: str, item_id: int, now: datetime) -> str | None:
    """Markdown for one memory or message (read in a worker thread)."""
    from companion.llm.prompt import quote
    from companion.memory.forgetting import parse_time, retention

    engine = app.engine
    memory, store = engine.memory, engine.store
    if kind == "message":
        message = store.get_message(item_id)
        if message is None:
            return None
        lines = [
            f"**message:{message.id}** · session {message.session_id} · {message.created_at[:16].replace('T', ' ')}",
            "",
            f"> **{message.speaker or message.role}:** {message.text}",
            "",
            "### Around it",
        ]
        for m in memory.neighbours(message.id, 1, 1):
            lines.append(f"- {m['speaker'] or m['role']}: {quote(m['text'])[:300]}")
        derived = store.conn.execute(
            "select memory_id from memory_sources where message_id = ?", (message.id,)
        ).fetchall()
        if derived:
            lines += ["", "Memories drawn from it: " + ", ".join(str(r[0]) for r in derived)]
        return "\n".join(lines)
    item = store.get_memory(item_id)
    if item is None:
        return None
    state = "archived" if item.archived else ("superseded" if item.valid_to else "active")
    last = parse_time(item.last_recalled_at or item.created_at)
    kept = retention(item.strength, last, now, engine.settings.memory.tau_days)
    lines = [
        f"**{item.kind} {item.id}** · {state}{' · pinned' if item.pinned else ''}",
        "",
        f"> {item.text}",
        "",
        f"- created {item.created_at[:16].replace('T', ' ')}; event {(item.event_time or '-')[:16]}",
        f"- importance {item.importance:.2f}, strength {item.strength:.2f}, retention {kept:.2f}",
        f"- recalled {item.recall_count} times, last {(item.last_recalled_at or 'never')[:16]}",
        "",
        "### Where it came from",
    ]
    sources = store.memory_sources(item.id)
    if not sources:
        lines.append("- added by hand (no messages)")
    for m in sources:
        lines.append(
            f"- message:{m.id} · {m.created_at[:16].replace('T', ' ')} · {m.speaker or m.role}: {quote(m.text)[:300]}"
        )
    lines += ["", "### History"]
    for entry in store.history("memory", item.id):
        change = (
            f": {quote(entry['old_text'] or '')[:80]} → {quote(entry['new_text'] or '')[:80]}"
            if entry["old_text"]
            else ""
        )
        lines.append(
            f"- {entry['at'][:16].replace('T', ' ')} {entry['action']}{change} {entry['reason'] or ''}".rstrip()
        )
    return "\n".join(lines)


class MemoryDetail(ModalScreen[None]):
    DEFAULT_CSS = """
    MemoryDetail { align: center middle; }
    MemoryDetail > Vertical { width: 90%; height: 90%; border: thick $accent; background: $surface; }
    MemoryDetail VerticalScroll { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape,q", "close", "Close"),
        Binding("p", "pin", "Pin/unpin", id="memory.pin"),
        Binding("e", "edit", "Edit", id="memory.edit"),
        Binding("f", "forget", "Forget", id="memory.forget"),
        Binding("r", "restore", "Restore", id="memory.restore"),
    ]

    def __init__(self, kind: str, item_id: int) -> None:
        super().__init__()
        self.kind = "message" if kind == "message" else "memory"
        self.item_id = item_id

    def compose(self) -> ComposeResult:
        with Vertical():
            with VerticalScroll():
                yield Markdown("Loading…", id="detail")
            yield Footer()

    def on_mount(self) -> None:
        self.refresh_detail()

    @work(thread=True, exit_on_error=False, exclusive=True, group="detail")
    def refresh_detail(self) -> None:
        app: Any = self.app
        text = describe_memory(app, self.kind, self.item_id, app.now())
        self.app.call_from_thread(self._show, text)

    def _show(self, text: str | None) -> None:
        if text is None:
            self.dismiss(None)
            return
        self.query_one("#detail", Markdown).update(text)

    def _done(self, _: str) -> None:
        self.refresh_detail()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_pin(self) -> None:
        if self.kind == "message":
            self.app.notify("Messages cannot be pinned; they are what was said.", severity="warning")
            return
        self.app.toggle_pin(self.item_id, then=self._done)  # type: ignore[attr-defined]

    def action_edit(self) -> None:
        if self.kind == "message":
            self.app.notify("Messages cannot be edited; they are what was said.", severity="warning")
            return
        self.app.edit_memory(self.item_id, then=self._done)  # type: ignore[attr-defined]

    def action_forget(self) -> None:
        what = f"message:{self.item_id}" if self.kind == "message" else f"memory {self.item_id}"
        question = f"Forget {what} for good? Its text is removed from the file."
        self.app.confirm_forget(self.kind, self.item_id, question, then=lambda: self.dismiss(None))  # type: ignore[attr-defined]

    def action_restore(self) -> None:
        app: Any = self.app
        if self.kind == "message":
            app.memory_op(lambda m: (m.restore_message(self.item_id), "Restored.")[1], then=self._done)
        else:
            app.memory_op(lambda m: (m.restore(self.item_id), "Restored.")[1], then=self._done)
