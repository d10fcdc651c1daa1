"""First run: what companion is, what the demo model can and cannot do, the user's name and a persona."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Input, Label, Markdown, Select

WELCOME = """\
# Welcome to companion

A companion that talks with you over weeks and months and **remembers you**, privately: it all runs on this
machine, and your memory is one file you can inspect, export or delete (`companion memory …`).

**The model.** You start with the built-in *demo model* (Gemma 3 270M, tiny and offline): it shows how it all
fits together, but its replies are simple. For real conversations get a chat model with
`companion model pull REPO FILE.gguf` (or `model add PATH`) and choose it in Settings (F5).

**Keys.** Enter sends · Ctrl+J new line · Esc stops · Ctrl+B what was recalled · F1 help · Ctrl+P commands
"""


class WelcomeScreen(Screen[dict[str, str] | None]):
    DEFAULT_CSS = """
    WelcomeScreen VerticalScroll { padding: 0 2; }
    WelcomeScreen #form { height: auto; }
    WelcomeScreen Input, WelcomeScreen Select { width: 40; margin-bottom: 1; }
    WelcomeScreen Markdown { margin: 0; }
    """
    BINDINGS = [Binding("escape", "skip", "Skip")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(WELCOME)
            with Vertical(id="form"):
                yield Label("What should the companion call you?")
                yield Input(placeholder="your name (optional)", id="name", compact=True)
                yield Label("Who would you like to talk with?")
                yield Select([], id="persona", allow_blank=True, prompt="Sam (the default)", compact=True)
                yield Button("Start", id="start", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()
        self.load()

    @work(thread=True, exit_on_error=False, group="welcome")
    def load(self) -> None:
        from companion.persona import library

        store = self.app.engine.store  # type: ignore[attr-defined]
        library.ensure_default(store)
        names = library.names(store)
        self.app.call_from_thread(self._personas, names)

    def _personas(self, names: list[str]) -> None:
        app: Any = self.app
        select = self.query_one("#persona", Select)
        select.set_options([(n, n) for n in names])
        if app.settings.persona.name in names:
            select.value = app.settings.persona.name

    @on(Input.Submitted, "#name")
    def name_done(self) -> None:
        self.query_one("#persona", Select).focus()

    @on(Button.Pressed, "#start")
    def start(self) -> None:
        persona = self.query_one("#persona", Select).value
        self.dismiss(
            {
                "user.name": self.query_one("#name", Input).value.strip(),
                "persona.name": "" if persona is Select.BLANK else str(persona),
            }
        )

    def action_skip(self) -> None:
        self.dismiss({})
