"""One memory (or one recalled message) in full: text, state, provenance and change history, with the same
operations as `companion memory pin|edit|forget|restore`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown

from companion import timeutil
from companion.tui.access import companion
from companion.tui.messages import DetailLoaded

if TYPE_CHECKING:
    from companion.tui.app import CompanionApp


def describe(app: CompanionApp, kind: str, item_id: int, now: datetime) -> str | None:
    """Markdown for one memory or message, from the same view `companion memory show` prints (read in a
    worker thread)."""
    from companion.llm.prompt import quote
    from companion.memory.view import memory_view, message_view

    engine = app.engine
    if kind == "message":
        seen = message_view(engine.store, item_id)
        if seen is None:
            return None
        message = seen.message
        lines = [
            f"**message:{message.id}** · session {message.session_id} · {timeutil.short(message.created_at)}",
            "",
            f"> **{message.who}:** {message.text}",
            "",
            "### Around it",
            *(f"- {m.who}: {quote(m.text)[:300]}" for m in seen.around),
        ]
        if seen.derived:
            lines += ["", "Memories drawn from it: " + ", ".join(str(i) for i in seen.derived)]
        return "\n".join(lines)
    view = memory_view(engine.store, item_id, now, engine.settings.memory.tau_days)
    if view is None:
        return None
    item = view.memory
    lines = [
        f"**{item.kind} {item.id}** · {item.state}{' · pinned' if item.pinned else ''}",
        "",
        f"> {item.text}",
        "",
        f"- created {timeutil.short(item.created_at)}; event {timeutil.short(item.event_time) or '-'}",
        f"- importance {item.importance:.2f}, strength {item.strength:.2f}, retention {view.retention:.2f}",
        f"- recalled {item.recall_count} times, last {timeutil.short(item.last_recalled_at) or 'never'}",
        "",
        "### Where it came from",
    ]
    if not view.sources:
        lines.append("- added by hand (no messages)")
    for m in view.sources:
        lines.append(f"- message:{m.id} · {timeutil.short(m.created_at)} · {m.who}: {quote(m.text)[:300]}")
    lines += ["", "### History"]
    for change in view.history:
        moved = (
            f": {quote(change.old_text or '')[:80]} → {quote(change.new_text or '')[:80]}"
            if change.old_text
            else ""
        )
        lines.append(f"- {timeutil.short(change.at)} {change.action}{moved} {change.reason}".rstrip())
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
        app = companion(self)
        text = describe(app, self.kind, self.item_id, app.now())
        self.post_message(DetailLoaded(text))

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        text = message.text
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
        companion(self).toggle_pin(self.item_id, then=self._done)

    def action_edit(self) -> None:
        if self.kind == "message":
            self.app.notify("Messages cannot be edited; they are what was said.", severity="warning")
            return
        companion(self).edit_memory(self.item_id, then=self._done)

    def action_forget(self) -> None:
        what = f"message:{self.item_id}" if self.kind == "message" else f"memory {self.item_id}"
        question = f"Forget {what} for good? Its text is removed from the file."
        companion(self).confirm_forget(self.kind, self.item_id, question, then=self._gone)

    def _gone(self) -> None:
        self.dismiss(None)

    def action_restore(self) -> None:
        app = companion(self)
        if self.kind == "message":
            app.memory_op(lambda m: m.restore_message(self.item_id), said="Restored.", then=self._done)
        else:
            app.memory_op(lambda m: m.restore(self.item_id), said="Restored.", then=self._done)
