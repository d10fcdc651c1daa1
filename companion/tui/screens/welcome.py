"""First run: what companion is, what the demo model can and cannot do, the user's name and a persona."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Input, Label, Markdown, Select

from companion.tui.access import companion
from companion.tui.messages import PersonasLoaded

WELCOME = """\
# Welcome to companion

A companion that talks with you over weeks and months and **remembers you**, privately: it all runs on this
machine, and your memory is one file you can inspect, export or delete (`companion memory …`).

**The model.** You start with the built-in *demo model* (Gemma 3 270M, tiny and offline): it shows how it all
fits together, but its replies are simple. For real conversations get a chat model with
`companion model pull REPO FILE.gguf` (or `model add PATH`) and choose it in Settings (F5).

**Keys.** Enter sends · Ctrl+J new line · Esc stops · Ctrl+B what was recalled · F1 help · Ctrl+P commands
"""


ENCRYPT_OFF = "Encrypt my memory file: OFF (Space turns it on)"
ENCRYPT_ON = "Encrypt my memory file: ON (SQLCipher, when you start)"


class WelcomeScreen(Screen[dict[str, str] | None]):
    DEFAULT_CSS = """
    WelcomeScreen VerticalScroll { padding: 0 2; }
    WelcomeScreen #form { height: auto; }
    WelcomeScreen Input, WelcomeScreen Select { width: 40; margin-bottom: 1; }
    WelcomeScreen Markdown { margin: 0; }
    WelcomeScreen #secret { height: auto; display: none; }
    WelcomeScreen #secret.shown { display: block; }
    WelcomeScreen Checkbox { margin-bottom: 1; }
    """
    BINDINGS = [Binding("escape", "skip", "Skip")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(WELCOME)
            with Vertical(id="form"):
                yield Label("What should the companion call you? (Enter starts; Tab for more choices)")
                yield Input(placeholder="your name (optional)", id="name", compact=True)
                yield Label("Who would you like to talk with?")
                yield Select([], id="persona", allow_blank=True, prompt="Sam (the default)", compact=True)
                yield Checkbox(ENCRYPT_OFF, id="encrypt", compact=True)
                with Vertical(id="secret"):
                    yield Label("No OS keyring here: choose a passphrase (you type it each time you start).")
                    yield Input(
                        placeholder="passphrase (8+ characters)", password=True, id="passphrase", compact=True
                    )
                    yield Input(placeholder="the passphrase again", password=True, id="again", compact=True)
                yield Button("Start", id="start", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()
        self.load()

    @work(thread=True, exit_on_error=False, group="welcome")
    def load(self) -> None:
        from companion.persona import library

        store = companion(self).engine.store
        library.ensure_default(store)
        names = library.names(store)
        self.post_message(PersonasLoaded(names))

    def on_personas_loaded(self, message: PersonasLoaded) -> None:
        names = message.names
        app = companion(self)
        select = self.query_one("#persona", Select)
        select.set_options([(n, n) for n in names])
        if app.settings.persona.name in names:
            select.value = app.settings.persona.name

    @on(Input.Submitted)
    def submitted(self) -> None:
        """Enter in any field starts, with the choices shown (the defaults unless changed)."""
        self.start()

    @on(Checkbox.Changed, "#encrypt")
    def encrypt_changed(self, event: Checkbox.Changed) -> None:
        from companion.secrets import keyring_usable

        event.checkbox.label = ENCRYPT_ON if event.value else ENCRYPT_OFF
        self.query_one("#secret").set_class(event.value and not keyring_usable(), "shown")

    @on(Button.Pressed, "#start")
    def start(self) -> None:
        from companion.memory.encryption import MIN_PASSPHRASE

        persona = self.query_one("#persona", Select).value
        answers = {
            "user.name": self.query_one("#name", Input).value.strip(),
            "persona.name": "" if persona is Select.BLANK else str(persona),
        }
        if self.query_one("#encrypt", Checkbox).value:
            answers["encrypt"] = "keyring"
            if self.query_one("#secret").has_class("shown"):
                secret = self.query_one("#passphrase", Input).value
                if len(secret) < MIN_PASSPHRASE:
                    self.notify(
                        f"The passphrase is too short; use at least {MIN_PASSPHRASE} characters.",
                        severity="error",
                    )
                    return
                if secret != self.query_one("#again", Input).value:
                    self.notify("The two passphrases differ; type them again.", severity="error")
                    return
                answers["encrypt"] = "passphrase"
                answers["passphrase"] = secret
        self.dismiss(answers)

    def action_skip(self) -> None:
        self.dismiss({})
