"""The help screen: every key, as the user has mapped it, and what it does."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label

from companion.tui.access import companion

ABOUT = (
    'Keys can be remapped in the config file under [keys], e.g. regenerate = "ctrl+g" '
    "(`companion config path` shows where it is). Ctrl+P lists every command."
)


class HelpScreen(Screen[None]):
    DEFAULT_CSS = """
    HelpScreen DataTable { height: 1fr; }
    HelpScreen #about { padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="keys", cursor_type="row", zebra_stripes=True)
        yield Label(ABOUT, id="about")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Help"
        app = companion(self)
        table: DataTable[Any] = self.query_one(DataTable)
        table.add_columns("key", "where", "what it does", "id (for [keys])")
        for key, where, description, binding_id in app.key_table():
            table.add_row(key, where, description, binding_id)
        table.focus()
