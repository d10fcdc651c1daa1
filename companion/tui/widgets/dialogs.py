"""Small modal dialogs: confirm a destructive action, or ask for one line of text."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, TextArea


class ConfirmDialog(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmDialog { align: center middle; }
    ConfirmDialog > Vertical {
        width: 64; max-width: 100%; height: auto; max-height: 100%; border: thick $warning; background: $surface;
        padding: 1 2;
    }
    ConfirmDialog Label { width: 1fr; }  /* the whole question, wrapped: it says what goes */
    ConfirmDialog Horizontal { height: auto; margin-top: 1; }
    ConfirmDialog Button { margin-right: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            with Horizontal():
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class TextDialog(ModalScreen[str | None]):
    """Edit text: Ctrl+S saves, Esc cancels."""

    DEFAULT_CSS = """
    TextDialog { align: center middle; }
    TextDialog > Vertical { width: 70; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    TextDialog TextArea { height: 6; }
    TextDialog Input { margin-top: 1; }
    """
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, title: str, text: str = "", multiline: bool = True) -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.multiline = multiline

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            if self.multiline:
                area = TextArea(self.text, soft_wrap=True, id="text")
                area.cursor_blink = False
                yield area
            else:
                yield Input(self.text, id="text")
            yield Label("Ctrl+S saves · Esc cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#text").focus()

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        widget = self.query_one("#text")
        value = widget.text if isinstance(widget, TextArea) else widget.value  # type: ignore[attr-defined]
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PromptDialog(ModalScreen[None]):
    """The last reply's prompt exactly as the model got it (read-only; Esc closes)."""

    DEFAULT_CSS = """
    PromptDialog { align: center middle; }
    PromptDialog > Vertical { width: 90%; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    PromptDialog TextArea { height: 1fr; }
    """
    BINDINGS = [Binding("escape,f6", "close", "Close")]

    def __init__(self, prompt: str) -> None:
        super().__init__()
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("The prompt of the last reply, exactly as the model got it")
            area = TextArea(self.prompt, read_only=True, soft_wrap=True, id="prompt")
            area.cursor_blink = False
            yield area
            yield Label("Esc closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
