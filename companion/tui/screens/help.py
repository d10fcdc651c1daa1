"""The help screen: every key, as the user has mapped it, and what it does."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label

from companion.tui.access import companion
from companion.tui.text import shorten

ABOUT = (
    'Keys can be remapped in the config file under [keys], e.g. regenerate = "ctrl+g" '
    "(`companion config path` shows where it is). Ctrl+P lists every command."
)


class HelpScreen(Screen[None]):
    DEFAULT_CSS = """
    HelpScreen DataTable { height: 1fr; }
    HelpScreen #about { padding: 0 1; color: $text-muted; width: 1fr; }
    """
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="keys", cursor_type="row", zebra_stripes=True)
        yield Label(ABOUT, id="about", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Help"
        app = companion(self)
        table: DataTable[Any] = self.query_one(DataTable)
        # Widths that fit 80 columns with every column on screen (the id is what [keys] remaps).
        # The id is never cut: it is what the user types under [keys].
        for title, width in (("key", 13), ("where", 13), ("what it does", 22), ("id (to remap)", 19)):
            table.add_column(title, width=width)
        for key, where, description, binding_id in app.key_table():
            table.add_row(shorten(key, 13), shorten(where, 13), shorten(description, 22), binding_id)
        table.focus()
