"""First run: what companion is, what the demo model can and cannot do, the user's name and a persona."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from companion.tui.access import companion
from companion.tui.messages import PersonasLoaded

WELCOME = """\
[b]Welcome to companion[/b], a companion that talks with you over weeks and months
and [b]remembers you[/b], privately: it all runs on this machine, and your memory is
one file you can inspect, export or delete. The tiny offline [i]demo model[/i] gives
simple replies; for real conversations get a chat model (companion model pull)
and choose it in Settings (F5).
Enter sends · Ctrl+J new line · Esc stops · Ctrl+B what was recalled · F1 help"""


ENCRYPT_OFF = "Encrypt my memory file: OFF (Space turns it on)"
ENCRYPT_ON = "Encrypt my memory file: ON (SQLCipher, when you start)"
CHECKINS_OFF = "Check in with me now and then: OFF (Space turns it on)"
CHECKINS_ON = "Check in with me now and then: ON"
CHECKINS_HELP = (
    "When something you mentioned has come due (an interview, a trip), the companion asks how it went: once, "
    "at most one a day, never at night, with a notification that shows only that it would like to check in."
)


class Choice(Checkbox):
    """A checkbox where Space toggles and Enter starts, as the screen says (a plain Checkbox toggles on both)."""

    BINDINGS = [Binding("enter", "start", "Start", show=False)]

    def action_start(self) -> None:
        self.post_message(Input.Submitted(Input(), ""))


class WelcomeScreen(Screen[dict[str, str] | None]):
    DEFAULT_CSS = """
    WelcomeScreen VerticalScroll { padding: 0 1; }
    WelcomeScreen #form { height: auto; }
    WelcomeScreen .row { height: 1; }
    WelcomeScreen .row Label { width: 37; }
    WelcomeScreen .row Input, WelcomeScreen .row Select { width: 1fr; max-width: 40; }
    WelcomeScreen #intro { margin: 0 0 1 0; }
    WelcomeScreen #secret { height: auto; display: none; }
    WelcomeScreen #secret.shown { display: block; }
    WelcomeScreen #checkins-help { color: $text-muted; padding: 0 0 0 4; width: 1fr; }
    WelcomeScreen #start { margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "skip", "Skip")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(WELCOME, id="intro")
            with Vertical(id="form"):
                yield Label("Enter starts with these choices; Tab moves between them.")
                with Horizontal(classes="row"):
                    yield Label("What should the companion call you?")
                    yield Input(placeholder="your name (optional)", id="name", compact=True)
                with Horizontal(classes="row"):
                    yield Label("Who would you like to talk with?")
                    yield Select([], id="persona", allow_blank=True, prompt="Sam (the default)", compact=True)
                yield Choice(ENCRYPT_OFF, id="encrypt", compact=True)
                with Vertical(id="secret"):
                    yield Label("No OS keyring here: choose a passphrase (you type it each time you start).")
                    with Horizontal(classes="row"):
                        yield Label("Passphrase (8+ characters)")
                        yield Input(
                            placeholder="at least 8 characters", password=True, id="passphrase", compact=True
                        )
                    with Horizontal(classes="row"):
                        yield Label("The passphrase again")
                        yield Input(placeholder="the same again", password=True, id="again", compact=True)
                yield Choice(CHECKINS_OFF, id="checkins", compact=True)
                yield Label(CHECKINS_HELP, id="checkins-help")
                yield Button("Start", id="start", variant="primary", compact=True)

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

    @on(Checkbox.Changed, "#checkins")
    def checkins_changed(self, event: Checkbox.Changed) -> None:
        event.checkbox.label = CHECKINS_ON if event.value else CHECKINS_OFF

    @on(Button.Pressed, "#start")
    def start(self) -> None:
        from companion.memory.encryption import MIN_PASSPHRASE

        persona = self.query_one("#persona", Select).value
        answers = {
            "user.name": self.query_one("#name", Input).value.strip(),
            "persona.name": "" if persona is Select.BLANK else str(persona),
            "checkins.enabled": "true" if self.query_one("#checkins", Checkbox).value else "",
        }
        if self.query_one("#encrypt", Checkbox).value:
            answers["encrypt"] = "keyring"
            if self.query_one("#secret").has_class("shown"):
                secret = self.query_one("#passphrase", Input).value
                if len(secret) < MIN_PASSPHRASE:
                    self.query_one("#passphrase", Input).focus()
                    self.notify(
                        f"The passphrase is too short; use at least {MIN_PASSPHRASE} characters.",
                        severity="error",
                    )
                    return
                if secret != self.query_one("#again", Input).value:
                    self.query_one("#again", Input).focus()
                    self.notify("The two passphrases differ; type them again.", severity="error")
                    return
                answers["encrypt"] = "passphrase"
                answers["passphrase"] = secret
        self.dismiss(answers)

    def action_skip(self) -> None:
        self.dismiss({})
