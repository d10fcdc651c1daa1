"""A reasoning model's thoughts above its reply: one folded line while it thinks ("thinking… 4 s"), the
whole reasoning when expanded (Ctrl+L, or Enter on it). The reasoning is never the reply: it is not stored
(unless `model.keep_reasoning`), recalled or sent back, and a new start of the app shows only the answers."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Static


class Thought(Static):
    DEFAULT_CSS = """
    Thought { margin: 0 1 0 1; padding: 0 1; color: $text-muted; border-left: thick $secondary; }
    Thought:focus { background: $boost; }
    """
    can_focus = True
    BINDINGS = [Binding("enter", "fold", "Show thinking", id="thought.toggle")]

    expanded: reactive[bool] = reactive(False)

    def __init__(self) -> None:
        super().__init__("", classes="thought")
        self.reasoning = ""
        self.seconds = 0.0
        self.thinking = True

    def show(self, reasoning: str, seconds: float, thinking: bool) -> None:
        """What the model thought so far, for how long, and whether it still is."""
        self.reasoning, self.seconds, self.thinking = reasoning, seconds, thinking
        self._paint()

    def watch_expanded(self) -> None:
        self._paint()

    def action_fold(self) -> None:
        self.expanded = not self.expanded

    def _paint(self) -> None:
        mark = "▾" if self.expanded else "▸"
        label = (
            f"{mark} thinking… {self.seconds:.0f} s"
            if self.thinking
            else f"{mark} thought for {self.seconds:.0f} s"
        )
        if not self.expanded:
            label += "  (Ctrl+L shows it)"
        text = Text(label, style="italic")
        if self.expanded and self.reasoning.strip():
            text.append("\n" + self.reasoning.strip(), style="")
        self.update(text)
