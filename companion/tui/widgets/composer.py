"""The message composer: multiline, Enter sends, Ctrl+J or Shift+Enter inserts a newline, Up on the first line
recalls the last message for editing."""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea


class Composer(TextArea):
    DEFAULT_CSS = """
    Composer { height: auto; min-height: 3; max-height: 8; border: round $accent 50%; }
    Composer:focus { border: round $accent; }
    Composer.editing { border: round $warning; }
    """

    class Submitted(Message):
        def __init__(self, composer: Composer, text: str, editing: int | None) -> None:
            super().__init__()
            self.composer = composer
            self.text = text
            self.editing = editing

    class RecallLast(Message):
        """Up on an empty composer: bring back the last message to edit it."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(
            soft_wrap=True,
            show_line_numbers=False,
            tab_behavior="focus",
            compact=False,
            **kwargs,  # type: ignore[arg-type]
        )
        self.cursor_blink = False
        self.editing: int | None = None  # the id of the message being edited (a new branch on send)

    def start_editing(self, message_id: int, text: str) -> None:
        self.editing = message_id
        self.text = text
        self.add_class("editing")
        self.border_title = "editing: Enter sends a new branch, Esc cancels"
        self.move_cursor(self.document.end)
        self.focus()

    def stop_editing(self) -> None:
        self.editing = None
        self.remove_class("editing")
        self.border_title = None

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.prevent_default()
            event.stop()
            self.post_message(self.Submitted(self, self.text, self.editing))
            return
        if event.key in ("ctrl+j", "shift+enter"):
            event.prevent_default()
            event.stop()
            self.insert("\n")
            return
        if event.key == "up" and not self.text.strip():
            event.prevent_default()
            event.stop()
            self.post_message(self.RecallLast())
            return
        if event.key == "escape" and self.editing is not None:
            event.prevent_default()
            event.stop()
            self.stop_editing()
            self.text = ""
            return
        await super()._on_key(event)
