"""The settings screen: model (switch, with load progress), GPU layers, context size, temperature, persona,
forgetting, theme; and the scheduler's last and next runs. Saved to the same TOML file `companion config set`
writes, with the same validation."""

from __future__ import annotations

import copy
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select

from companion import config as config_mod
from companion.errors import CompanionError
from companion.tui.access import companion
from companion.tui.messages import SettingsLoaded

# (key, label, help) of the fields typed as text.
TEXT_FIELDS = [
    ("model.n_gpu_layers", "GPU layers", "auto, -1 (all), 0 (CPU only) or a number"),
    ("model.n_ctx", "Context size", "tokens the model sees at once"),
    ("chat.temperature", "Temperature", "0 = focused … 2 = wild"),
    ("memory.tau_days", "Forgetting: τ (days)", "how fast an unrecalled memory fades"),
    ("memory.archive_below", "Forgetting: archive below", "retention under which a memory is archived"),
    ("checkins.per_week", "Check-ins per week", "at most one a day, and at most this many in seven days"),
    ("checkins.quiet_hours", "Check-ins: quiet hours", "local time, HH:MM-HH:MM: none is made or shown then"),
]
# (key, label, [(shown, value)], help) of the fields chosen from a list.
CHOICES = [
    (
        "checkins.enabled",
        "Check-ins",
        [("off", "false"), ("on", "true")],
        "on: when something you mentioned has come due (an interview, a trip), the companion asks how it went, "
        "once, in a new conversation, with a desktop notification; never while you are using the app",
    ),
    (
        "checkins.preview",
        "Check-in notification",
        [("only that there is one", "false"), ("shows the question", "true")],
        "lock screens show notifications: by default they say only that the companion would like to check in",
    ),
]


def field_id(key: str) -> str:
    return "field-" + key.replace(".", "-")


class SettingsScreen(Screen[None]):
    DEFAULT_CSS = """
    SettingsScreen VerticalScroll { height: 1fr; padding: 0 1; }
    SettingsScreen .row { height: auto; margin-bottom: 0; }
    SettingsScreen .row { margin-top: 1; }
    SettingsScreen .row Label { width: 26; padding: 0 1 0 0; }
    SettingsScreen .row Input, SettingsScreen .row Select { width: 1fr; }
    SettingsScreen .help { color: $text-muted; padding: 0 0 0 26; width: 1fr; height: auto; }
    SettingsScreen #jobs { height: auto; max-height: 8; margin-top: 1; }
    SettingsScreen #save { margin: 1 0; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+s", "save", "Save", id="settings.save", priority=True),
    ]

    def compose(self) -> ComposeResult:
        settings = companion(self).settings
        from companion.llm.models import registered

        yield Header()
        with VerticalScroll():
            with Horizontal(classes="row"):
                yield Label("Model")
                names = list(registered(settings))
                yield Select(
                    [(n, n) for n in names],
                    value=settings.model.name if settings.model.name in names else Select.BLANK,
                    id="field-model-name",
                    allow_blank=False,
                )
            for key, label, help_text in TEXT_FIELDS:
                with Horizontal(classes="row"):
                    yield Label(label)
                    yield Input(str(config_mod.get_value(settings, key)), id=field_id(key), compact=True)
                yield Label(help_text, classes="help")
            with Horizontal(classes="row"):
                yield Label("Persona")
                yield Select(
                    [], id="field-persona-name", allow_blank=True, prompt=settings.persona.name, compact=True
                )
            for key, label, options, help_text in CHOICES:
                with Horizontal(classes="row"):
                    yield Label(label)
                    yield Select(
                        options,
                        value=str(config_mod.get_value(settings, key)).lower(),
                        id=field_id(key),
                        allow_blank=False,
                        compact=True,
                    )
                yield Label(help_text, classes="help")
            with Horizontal(classes="row"):
                yield Label("Theme")
                yield Select(
                    [("dark", "dark"), ("light", "light")],
                    value=settings.ui.theme,
                    id="field-ui-theme",
                    allow_blank=False,
                )
            yield Button("Save (Ctrl+S)", id="save", variant="primary")
            yield Label("Memory upkeep (scheduler)")
            yield DataTable(id="jobs", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Settings"
        table: DataTable[Any] = self.query_one("#jobs", DataTable)
        for name in ("job", "last run", "result", "next run", "failures"):
            table.add_column(name)
        self.query_one("#field-model-name").focus()
        self.load()

    @work(thread=True, exit_on_error=False, group="settings")
    def load(self) -> None:
        from companion.memory.upkeep import scheduler
        from companion.persona import library

        engine = companion(self).engine
        library.ensure_default(engine.store)
        personas = library.names(engine.store)
        jobs = scheduler.status(engine.memory, engine.now())
        self.post_message(SettingsLoaded(personas, jobs))

    def on_settings_loaded(self, message: SettingsLoaded) -> None:
        personas, jobs = message.personas, message.jobs
        app = companion(self)
        select = self.query_one("#field-persona-name", Select)
        select.set_options([(n, n) for n in personas])
        if app.settings.persona.name in personas:
            select.value = app.settings.persona.name
        table: DataTable[Any] = self.query_one("#jobs", DataTable)
        table.clear()
        for row in jobs:
            failures = f"{row.failures}: {row.last_error}" if row.failures else "0"
            table.add_row(
                row.job,
                (row.last_run or "never")[:16].replace("T", " "),
                (row.last_result or "-")[:24],
                row.next_run[:16].replace("T", " "),
                failures[:40],
            )

    def values(self) -> dict[str, str]:
        out = {key: self.query_one(f"#{field_id(key)}", Input).value.strip() for key, _, _ in TEXT_FIELDS}
        for key in ("model.name", "persona.name", "ui.theme", *(key for key, _, _, _ in CHOICES)):
            value = self.query_one(f"#{field_id(key)}", Select).value
            if value is not Select.BLANK:
                out[key] = str(value)
        return out

    @on(Button.Pressed, "#save")
    def pressed(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        app = companion(self)
        settings = app.settings
        trial = copy.deepcopy(settings)
        changed: list[str] = []
        try:  # all or nothing: every field is checked before anything is written
            for key, raw in self.values().items():
                before = config_mod.get_value(trial, key)
                after = config_mod.set_value(trial, key, raw)
                if after != before:
                    changed.append(key)
        except CompanionError as error:
            self.notify(str(error), severity="error", timeout=8)
            return
        if not changed:
            self.notify("Nothing changed.")
            return
        app.apply_settings(trial, changed)
