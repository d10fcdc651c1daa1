"""The sessions screen: past conversations with their summaries, each readable (read-only); start a new one
or an off-the-record one."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Markdown

from companion import timeutil
from companion.memory.tables import messages as message_table
from companion.memory.tables import sessions as session_table
from companion.tui.access import companion
from companion.tui.messages import SessionsLoaded, TranscriptLoaded
from companion.tui.text import shorten

PAGE = 200


class SessionsScreen(Screen[None]):
    DEFAULT_CSS = """
    SessionsScreen #sessions { height: 1fr; }
    SessionsScreen #hint { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("n", "new(False)", "New session", id="sessions.new"),
        Binding("o", "new(True)", "Off the record", id="sessions.off_record"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Label(
            "Enter reads a conversation · n starts a new one · o starts one off the record", id="hint"
        )
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Sessions"
        table: DataTable[Any] = self.query_one(DataTable)
        table.add_column("id", key="id", width=5)
        table.add_column("started", key="started", width=16)
        table.add_column("msgs", key="messages", width=5)
        table.add_column("summary", key="summary", width=46)
        table.focus()
        self.load()

    @work(thread=True, exit_on_error=False, exclusive=True, group="sessions")
    def load(self) -> None:
        engine = companion(self).engine
        rows = session_table.overview(engine.store, PAGE)
        self.post_message(SessionsLoaded(rows, engine.session_id))

    def on_sessions_loaded(self, message: SessionsLoaded) -> None:
        rows, current = message.rows, message.current
        table: DataTable[Any] = self.query_one(DataTable)
        table.clear()
        for row in rows:
            summary = " ".join((row.summary or "").split())
            if row.parent_id:
                summary = f"(branch of {row.parent_id}) {summary}"
            if row.id == current:
                summary = f"(this conversation) {summary}"
            if not summary:
                summary = "(no summary yet)" if row.messages else "(empty)"
            table.add_row(
                str(row.id),
                timeutil.short(row.started_at),
                str(row.messages),
                shorten(summary, 46),
                key=str(row.id),
            )

    @on(DataTable.RowSelected)
    def open_session(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(TranscriptScreen(int(event.row_key.value)))

    def action_new(self, off_record: bool) -> None:
        app = companion(self)
        app.pop_screen()
        app.new_session(off_record)


class TranscriptScreen(Screen[None]):
    """One past conversation, read-only."""

    DEFAULT_CSS = """
    TranscriptScreen VerticalScroll { height: 1fr; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, session_id: int) -> None:
        super().__init__()
        self.session_id = session_id

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Markdown("Loading…", id="transcript")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"Session {self.session_id} (read-only)"
        self.query_one(VerticalScroll).focus()
        self.load()

    @work(thread=True, exit_on_error=False, group="transcript")
    def load(self) -> None:
        engine = companion(self).engine
        user = engine.settings.user.name or "you"
        summary = session_table.summary(engine.store, self.session_id)
        lines = [f"*Summary:* {summary}", ""] if summary else []
        for m in message_table.conversation(engine.store, self.session_id):
            who = m.speaker or (user if m.role == "user" else "companion")
            mark = " *(stopped)*" if m.incomplete else ""
            lines += [f"**{who}** · {timeutil.short(m.created_at)}", "", m.text + mark, ""]
        if not lines:
            lines = ["(nothing was said in this session)"]
        self.post_message(TranscriptLoaded("\n".join(lines)))

    def on_transcript_loaded(self, message: TranscriptLoaded) -> None:
        self.query_one("#transcript", Markdown).update(message.text)
