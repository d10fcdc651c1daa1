"""The memories screen: a searchable, filterable, paged table of derived memories (facts, summaries, digests,
notes…), the archived ones on a key, and each memory's detail with its provenance and history.

Pages are read with LIMIT/OFFSET in a worker, so the screen opens as fast with 100k memories as with ten.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Select

from companion import timeutil
from companion.english import plural
from companion.memory.records import MEMORY_KINDS
from companion.tui.access import companion
from companion.tui.messages import MemoriesLoaded, MemoryRow
from companion.tui.screens.memory_detail import MemoryDetail
from companion.tui.text import shorten
from companion.tui.widgets.dialogs import TextDialog

PAGE = 100


def retention_bar(value: float, width: int = 8) -> Text:
    filled = round(max(0.0, min(value, 1.0)) * width)
    colour = "green" if value >= 0.5 else ("yellow" if value >= 0.15 else "red")
    return Text.assemble(("█" * filled, colour), ("░" * (width - filled), "dim"), f" {value:.2f}")


class MemoriesScreen(Screen[None]):
    DEFAULT_CSS = """
    MemoriesScreen #filters { height: auto; }
    MemoriesScreen #search { width: 1fr; }
    MemoriesScreen #kind { width: 20; }
    MemoriesScreen #table { height: 1fr; }
    MemoriesScreen #preview { width: 1fr; height: auto; max-height: 3; padding: 0 1; border-top: solid $primary-darken-2; }
    MemoriesScreen #pager { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("a", "toggle_archived", "Archived", id="memories.archived"),
        Binding("p", "pin", "Pin/unpin", id="memories.pin"),
        Binding("e", "edit", "Edit", id="memories.edit"),
        Binding("f", "forget", "Forget", id="memories.forget"),
        Binding("r", "restore", "Restore", id="memories.restore"),
        Binding("n", "add_note", "Note", id="memories.note"),
        Binding("right_square_bracket", "page(1)", "Next page", id="memories.next"),
        Binding("left_square_bracket", "page(-1)", "Prev page", id="memories.prev"),
        Binding("slash", "search", "Search", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.archived = False
        self.page = 0
        self.total = 0
        self.kind: str | None = None
        self.text_width = 36
        self.matching = ""
        self.texts: dict[str, str] = {}  # row key -> the memory's whole text

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filters"):
            yield Input(placeholder="Search memories (/)", id="search")
            yield Select([(k, k) for k in MEMORY_KINDS], prompt="all kinds", id="kind", allow_blank=True)
        table: DataTable[Any] = DataTable(id="table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Label("", id="preview", markup=False)  # the highlighted memory whole (its row is shortened)
        yield Label("", id="pager")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Memories"
        table = self.query_one(DataTable)
        # The text takes what the other columns leave (80 columns still show every column).
        self.text_width = max(20, self.app.size.width - 53)
        table.add_column("id", key="id", width=5)
        table.add_column("kind", key="kind", width=7)
        table.add_column("memory", key="text", width=self.text_width)
        table.add_column("date", key="date", width=10)
        table.add_column("retention", key="retention", width=13)
        table.add_column("pin", key="pinned", width=3)
        table.focus()
        self.load()

    @work(thread=True, exit_on_error=False, exclusive=True, group="memories")
    def load(self) -> None:
        from companion.memory.recall.retention import retention

        app = companion(self)
        memory = app.engine.memory
        tau = app.engine.settings.memory.tau_days
        now: datetime = app.now()
        total = memory.count_memories(self.kind, self.archived, self.matching)
        page = min(self.page, max((total - 1) // PAGE, 0))
        items = memory.list_memories(
            self.kind, self.archived, limit=PAGE, offset=page * PAGE, matching=self.matching
        )
        rows = [
            MemoryRow(
                m.id,
                m.kind,
                m.text,
                timeutil.day(m.event_time or m.created_at),
                1.0
                if m.pinned
                else retention(m.strength, timeutil.parse(m.last_recalled_at or m.created_at), now, tau),
                m.pinned,
            )
            for m in items
        ]
        self.post_message(MemoriesLoaded(rows, total, page))

    def on_memories_loaded(self, message: MemoriesLoaded) -> None:
        rows, total, page = message.rows, message.total, message.page
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        self.texts = {str(row.id): row.text for row in rows}
        if not rows:
            self.query_one("#preview", Label).update("")
        for row in rows:
            table.add_row(
                str(row.id),
                row.kind,
                shorten(row.text, self.text_width),
                row.day,
                retention_bar(row.kept),
                "yes" if row.pinned else "",
                key=str(row.id),
            )
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))
        self.total, self.page = total, page
        pages = max((total + PAGE - 1) // PAGE, 1)
        view = "archived" if self.archived else "active"
        empty = ""
        if not total:
            empty = (
                " · nothing here yet: memories are drawn from conversations after they end"
                if not self.matching
                else " · no match"
            )
        self.query_one("#pager", Label).update(
            f"{plural(total, view + ' memory', view + ' memories')} · page {page + 1} of {pages} "
            f"(\\[ and ] turn pages){empty}"
        )

    @on(Input.Changed, "#search")
    def search_changed(self, event: Input.Changed) -> None:
        self.matching = event.value
        self.page = 0
        self.load()

    @on(Input.Submitted, "#search")
    def search_done(self) -> None:
        self.query_one(DataTable).focus()

    @on(Select.Changed, "#kind")
    def kind_changed(self, event: Select.Changed) -> None:
        self.kind = None if event.value is Select.BLANK else str(event.value)
        self.page = 0
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    def _selected(self) -> int | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return int(key) if key is not None else None

    @on(DataTable.RowHighlighted)
    def preview(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key is not None else None
        text = self.texts.get(str(key), "")
        self.query_one("#preview", Label).update(f"{key}: {text}" if text else "")

    @on(DataTable.RowSelected)
    def open_detail(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(MemoryDetail("memory", int(event.row_key.value)))

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_page(self, step: int) -> None:
        pages = max((self.total + PAGE - 1) // PAGE, 1)
        new = min(max(self.page + step, 0), pages - 1)
        if new != self.page:
            self.page = new
            self.load()

    def action_toggle_archived(self) -> None:
        self.archived = not self.archived
        self.page = 0
        self.title = "Memories · archived (faded; r restores)" if self.archived else "Memories"
        self.load()

    def action_pin(self) -> None:
        item_id = self._selected()
        if item_id is not None:
            companion(self).toggle_pin(item_id)

    def action_edit(self) -> None:
        item_id = self._selected()
        if item_id is not None:
            companion(self).edit_memory(item_id)

    def action_forget(self) -> None:
        item_id = self._selected()
        if item_id is not None:
            question = f"Forget memory {item_id} for good? Its text is removed from the file."
            companion(self).confirm_forget("memory", item_id, question)

    def action_restore(self) -> None:
        item_id = self._selected()
        if item_id is None:
            return
        if not self.archived:
            self.notify(
                "Only archived memories can be restored; press a for the archived view.", severity="warning"
            )
            return
        companion(self).memory_op(lambda m: m.restore(item_id), said="Restored: it is back in recall.")

    def action_add_note(self) -> None:
        app = companion(self)

        def save(text: str | None) -> None:
            if text and text.strip():
                app.memory_op(lambda m: f"Noted (memory {m.add_note(text.strip())}).")

        self.app.push_screen(TextDialog("A note for the companion to remember"), save)
