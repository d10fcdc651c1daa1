"""One message in the chat log: Markdown (code highlighted), focusable so it can be copied or edited."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Markdown


class ChatMessage(Markdown):
    DEFAULT_CSS = """
    ChatMessage { margin: 0 1 1 1; padding: 0 1; }
    ChatMessage:focus { background: $boost; }
    ChatMessage.user { background: $boost; border-left: thick $accent; }
    ChatMessage.assistant { border-left: thick $success; }
    ChatMessage.incomplete { border-left: thick $warning; }
    ChatMessage.notice { color: $text-muted; border-left: thick $secondary; }
    ChatMessage.earlier { color: $text-muted; }
    ChatMessage.divider { color: $text-muted; text-style: italic; margin: 0 1; border-left: none; }
    """
    can_focus = True
    BINDINGS = [
        Binding("c", "copy", "Copy", id="message.copy"),
        Binding("e", "edit", "Edit (branch)", id="message.edit"),
    ]

    class EditRequested(Message):
        def __init__(self, message: ChatMessage) -> None:
            super().__init__()
            self.message = message

    def __init__(self, text: str, role: str, message_id: int | None = None, classes: str = "") -> None:
        super().__init__(text, classes=f"{role} {classes}".strip())
        self.role = role
        self.message_id = message_id
        self.text = text

    async def set_text(self, text: str) -> None:
        """Show `text` instead of what is there, and wait until the Markdown holds it (so the repaint that
        follows a reply paints the final text)."""
        self.text = text
        await self.update(text)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.app.notify("Copied to the clipboard.", timeout=2)

    def action_edit(self) -> None:
        if self.role != "user" or self.message_id is None or self.has_class("earlier"):
            self.app.notify("Only your own messages in this conversation can be edited.", severity="warning")
            return
        self.post_message(self.EditRequested(self))
