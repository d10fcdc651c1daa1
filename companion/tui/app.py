"""The terminal app: chat, recall, memories, profile, sessions and settings over one `Engine`.

The app holds the engine (the memory file is opened before the UI starts; the model loads in a worker). Every
model, memory and disk operation runs in a thread worker that posts typed messages back, so the interface never
freezes. Faces stay thin: screens call the same `LongTermMemory` / `Engine` functions as the CLI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from companion import config as config_mod
from companion.config import Settings
from companion.english import plural
from companion.errors import CompanionError
from companion.memory.tables import memories as memory_table
from companion.paths import Paths, get_paths
from companion.tui.commands import system_commands
from companion.tui.messages import EngineReady, MemoryChanged, ModelLoading, SessionStarted
from companion.tui.screens.chat import ChatScreen
from companion.tui.widgets.chat_message import ChatMessage
from companion.tui.widgets.dialogs import ConfirmDialog, TextDialog

if TYPE_CHECKING:
    from companion.engine import Engine
    from companion.memory.operations import LongTermMemory

THEMES = {"dark": "textual-dark", "light": "textual-light"}
PRESENCE_SECONDS = 60
FORGET_WATCH_SECONDS = 2.0
MODEL_KEYS = {"model.name", "model.n_gpu_layers", "model.n_ctx"}


class CompanionApp(App[None]):
    TITLE = "companion"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="quit"),
        Binding("f1", "help", "Help", id="help"),
        Binding("f2", "memories", "Memories", id="memories"),
        Binding("f3", "profile", "Profile", id="profile"),
        Binding("f4", "sessions", "Sessions", id="sessions"),
        Binding("f5", "settings", "Settings", id="settings"),
        Binding("ctrl+t", "toggle_theme", "Theme", id="theme", show=False),
    ]

    def __init__(
        self,
        model_name: str | None = None,
        engine: Engine | None = None,
        *,
        paths: Paths | None = None,
        welcome: bool | None = None,
        upkeep: bool = True,
    ) -> None:
        super().__init__()
        self.paths = paths or (engine.paths if engine is not None else get_paths())
        if engine is None:
            from companion.engine import Engine

            engine = Engine(config_mod.load(self.paths), self.paths, model_name=model_name)
        self.engine: Engine = engine
        self.settings: Settings = engine.settings
        self.theme = THEMES.get(self.settings.ui.theme, "textual-dark")
        self.show_welcome = (not self.settings.ui.welcomed) if welcome is None else welcome
        self._pending_ready: EngineReady | None = None
        self._memory_ready = threading.Event()
        self._memory_prepared = False
        # While the welcome screen's encryption rewrites the memory file, nothing else may touch it.
        self._encrypting = False
        if not self.show_welcome:
            self._memory_ready.set()
        self.upkeep = upkeep  # memory upkeep on its schedule while the app is open (tests may turn it off)
        self.chat = ChatScreen()

    @property
    def busy(self) -> bool:
        return self.chat.busy

    def now(self) -> datetime:
        return self.engine.now()

    def on_mount(self) -> None:
        self._apply_keymap()
        self.push_screen(self.chat)
        self.set_interval(FORGET_WATCH_SECONDS, self._watch_forgets)
        self.set_interval(PRESENCE_SECONDS, self._mark_presence)
        self._mark_presence()
        if self.show_welcome:
            from companion.tui.screens.welcome import WelcomeScreen

            self.push_screen(WelcomeScreen(), self._welcomed)
        self.load_model()

    def _watch_forgets(self) -> None:
        """A forget from another process (or this one) takes its turns off the screen within seconds; the next
        turn's prompt is rebuilt without them (`Engine.catch_up`). A check-in made while the app was not in use
        becomes the conversation on screen. Not while the welcome screen's encryption rewrites the file: it
        closes every connection, this thread's too (reading on one being closed crashed the process)."""
        if self._encrypting:
            return
        if self.engine.forgets_changed():
            self.chat.drop_forgotten()
            self.post_message(MemoryChanged("forgotten"))
        if not self.chat.busy and self.engine.take_checkin() is not None:
            self._back_to_chat()
            self.chat.session_started(False, checkin=True)

    @work(thread=True, exit_on_error=False, group="presence")
    def _mark_presence(self) -> None:
        """The app is open: `maintain` elsewhere leaves check-ins to it (see `companion.checkins`); not while the
        file is being encrypted (see `_watch_forgets`)."""
        if not self._encrypting:
            self.engine.mark_presence()

    def _apply_keymap(self) -> None:
        known = {binding_id for _, _, _, binding_id in self.key_table()}
        unknown = sorted(set(self.settings.keys) - known)
        if unknown:
            self.notify(
                f"Unknown key binding(s) in [keys]: {', '.join(unknown)}; F1 lists the ones there are.",
                severity="warning",
                timeout=10,
            )
        self.set_keymap({k: v for k, v in self.settings.keys.items() if k in known})

    # -- the model ------------------------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, exclusive=True, group="model")
    def load_model(self, reload: bool = False) -> None:
        engine = self.engine
        name = engine.settings.model.name
        self.post_message(ModelLoading(name))
        try:
            model = engine.reload_model() if reload else engine.load_model()
            self.post_message(EngineReady(model.name))
        except CompanionError as error:
            self.post_message(EngineReady(name, str(error)))
            return
        if self._memory_ready.is_set():  # else the welcome screen starts it (it may encrypt the file first)
            self.prepare_memory()

    @work(thread=True, exit_on_error=False, group="memory-ready")
    def prepare_memory(self) -> None:
        """Embed what is missing, open the index and start the upkeep schedule (once)."""
        if self._memory_prepared:
            return
        self._memory_prepared = True
        try:
            self.engine.memory.ready()
            if self.upkeep:
                self.engine.start_upkeep()
        except CompanionError as error:
            self.call_from_thread(self.notify, f"Memory recall is unavailable: {error}", severity="error")

    def on_model_loading(self, message: ModelLoading) -> None:
        self.chat.model_loading(message.name)

    def on_engine_ready(self, message: EngineReady) -> None:
        if self.show_welcome or self._encrypting:
            self._pending_ready = message  # greet after the welcome screen has the user's name
            return
        self._deliver(message)

    def _deliver(self, message: EngineReady) -> None:
        note = None
        if not message.error and message.name == config_mod.DEMO_MODEL:
            from companion.llm.models import DEMO_NOTE

            note = DEMO_NOTE
        elif not message.error and self.engine.model_loaded and self.engine.model.notice:
            note = self.engine.model.notice
        self.chat.engine_ready(message.name, message.error, note)

    def _welcomed(self, answers: dict[str, str] | None) -> None:
        self.show_welcome = False
        answers = dict(answers or {})
        encrypt, secret = answers.pop("encrypt", ""), answers.pop("passphrase", "")
        if encrypt:
            self._encrypting = True
            self._encrypt_memory(encrypt == "passphrase", secret)
        else:
            self._memory_ready.set()
            self.prepare_memory()
        trial = _copy(self.settings)
        changed = ["ui.welcomed"]
        trial.ui.welcomed = True
        for key, value in answers.items():
            if value:
                config_mod.set_value(trial, key, value)
                changed.append(key)
        self.apply_settings(trial, changed, quiet=True)
        if self._pending_ready is not None and not self._encrypting:
            self._deliver(self._pending_ready)
            self._pending_ready = None

    @work(thread=True, exit_on_error=False, group="encrypt")
    def _encrypt_memory(self, use_passphrase: bool, secret: str) -> None:
        try:
            said = self.engine.encrypt_memory(lambda prompt: secret, use_passphrase)
            self.call_from_thread(self.notify, f"Your memory file is now {said}.", timeout=8)
        except CompanionError as error:
            self.call_from_thread(self.notify, str(error), severity="error", timeout=15)
        finally:
            self._memory_ready.set()
            self.call_from_thread(self._encrypted)

    def _encrypted(self) -> None:
        """The memory file is ready again: recall, greeting and earlier messages may use it now."""
        self._encrypting = False
        self.prepare_memory()
        if self._pending_ready is not None:
            self._deliver(self._pending_ready)
            self._pending_ready = None

    # -- settings -------------------------------------------------------------------------------------------
    def apply_settings(self, trial: Settings, changed: list[str], quiet: bool = False) -> None:
        """Take validated settings: keep them, write the TOML file, and apply what changed."""
        if self.chat.busy and MODEL_KEYS & set(changed):
            self.notify("Wait for the reply to finish before switching the model.", severity="warning")
            return
        for key in changed:
            config_mod.set_value(self.settings, key, config_mod.get_value(trial, key))
        self._save_settings(changed, quiet)
        if "ui.theme" in changed:
            self.theme = THEMES[self.settings.ui.theme]
        self.engine.settings_changed(changed)
        if MODEL_KEYS & set(changed):
            self.chat.ready = False
            self.load_model(reload=True)

    @work(thread=True, exit_on_error=False, group="config")
    def _save_settings(self, changed: list[str], quiet: bool) -> None:
        try:
            path = config_mod.save(self.settings, self.paths)
        except (CompanionError, OSError) as error:
            self.call_from_thread(self.notify, f"The settings could not be saved: {error}", severity="error")
            return
        if not quiet:
            self.call_from_thread(self.notify, f"Saved to {path}: {', '.join(changed)}.")

    def action_toggle_theme(self) -> None:
        trial = _copy(self.settings)
        trial.ui.theme = "light" if self.settings.ui.theme == "dark" else "dark"
        self.apply_settings(trial, ["ui.theme"], quiet=True)

    # -- memory operations (the same functions as `companion memory …`) ------------------------------------
    def memory_op(
        self,
        op: Callable[[LongTermMemory], str | None],
        then: Callable[[str], None] | None = None,
        said: str = "Done.",
    ) -> None:
        """Run a memory operation in a worker; its sentence (or `said`) is shown, then `then(sentence)`."""
        self._memory_op(op, then, said)

    @work(thread=True, exit_on_error=False, group="memory-op")
    def _memory_op(
        self, op: Callable[[LongTermMemory], str | None], then: Callable[[str], None] | None, said: str
    ) -> None:
        try:
            said = op(self.engine.memory) or said
        except CompanionError as error:
            self.call_from_thread(self.notify, str(error), severity="error")
            return
        self.call_from_thread(self.notify, said, timeout=3)
        self.post_message(MemoryChanged(said))
        if then is not None:
            self.call_from_thread(then, said)

    def forget(self, kind: str, item_id: int) -> None:
        def op(memory: LongTermMemory) -> str:
            memory.ready()
            if kind == "message":
                done = memory.forget(messages=[item_id])
            else:
                done = memory.forget(memories=[item_id])
            return (
                f"Forgotten ({plural(done['messages'], 'message')}, "
                f"{plural(done['memories'], 'memory', 'memories')})."
            )

        self.memory_op(op)

    def confirm_forget(
        self, kind: str, item_id: int, question: str, then: Callable[[], None] | None = None
    ) -> None:
        """Ask first; forgetting is for good. `then` runs once the user said yes."""

        def answer(yes: bool | None) -> None:
            if yes:
                self.forget(kind, item_id)
                if then is not None:
                    then()

        self.push_screen(ConfirmDialog(question, "Forget"), answer)

    def toggle_pin(self, memory_id: int, then: Callable[[str], None] | None = None) -> None:
        def toggle(memory: LongTermMemory) -> str:
            pinned = memory.require_memory(memory_id).pinned
            memory.pin(memory_id, not pinned)
            return "Unpinned." if pinned else "Pinned: it will not fade."

        self.memory_op(toggle, then=then)

    def edit_memory(self, memory_id: int, then: Callable[[str], None] | None = None) -> None:
        """The memory's text in a dialog; saved (as `companion memory edit`) when it changed."""
        item = memory_table.get(self.engine.store, memory_id)
        if item is None:
            return

        def save(text: str | None) -> None:
            if text is not None and text.strip() != item.text:
                self.memory_op(lambda m: m.edit(memory_id, text.strip()), then=then, said="Edited.")

        self.push_screen(TextDialog(f"Edit {item.kind} {item.id}", item.text), save)

    def on_memory_changed(self, message: MemoryChanged) -> None:
        screen: Any = self.screen
        if screen is not self.chat and hasattr(screen, "load"):
            screen.load()

    # -- sessions -------------------------------------------------------------------------------------------
    def new_session(self, off_record: bool) -> None:
        if self.chat.busy:
            self.notify("Wait for the reply to finish (or press Esc to stop it).", severity="warning")
            return
        self._new_session(off_record)

    @work(thread=True, exit_on_error=False, exclusive=True, group="session")
    def _new_session(self, off_record: bool) -> None:
        self.engine.new_session(off_record=off_record)
        self.post_message(SessionStarted(off_record))

    def on_session_started(self, message: SessionStarted) -> None:
        self._back_to_chat()
        self.chat.session_started(message.off_record)

    # -- screens --------------------------------------------------------------------------------------------
    def _back_to_chat(self) -> None:
        while len(self.screen_stack) > 2 and self.screen is not self.chat:
            self.pop_screen()

    def _open(self, screen: Screen[Any]) -> None:
        self._back_to_chat()
        self.push_screen(screen)

    def action_memories(self) -> None:
        from companion.tui.screens.memories import MemoriesScreen

        self._open(MemoriesScreen())

    def action_profile(self) -> None:
        from companion.tui.screens.profile import ProfileScreen

        self._open(ProfileScreen())

    def action_sessions(self) -> None:
        from companion.tui.screens.sessions import SessionsScreen

        self._open(SessionsScreen())

    def action_settings(self) -> None:
        from companion.tui.screens.settings import SettingsScreen

        self._open(SettingsScreen())

    def action_help(self) -> None:
        from companion.tui.screens.help import HelpScreen

        self._open(HelpScreen())

    def run_chat_action(self, name: str) -> None:
        self._back_to_chat()
        if name == "edit_last":
            self.chat.recall_last()
        else:
            self.call_later(self.chat.run_action, name)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from system_commands(self)
        yield from super().get_system_commands(screen)

    def key_table(self) -> list[tuple[str, str, str, str]]:
        """(key, where, description, binding id) of every remappable key, as mapped now."""
        from companion.tui.screens.memories import MemoriesScreen
        from companion.tui.screens.memory_detail import MemoryDetail
        from companion.tui.screens.profile import ProfileScreen
        from companion.tui.screens.sessions import SessionsScreen
        from companion.tui.screens.settings import SettingsScreen
        from companion.tui.widgets.recall_panel import RecallPanel

        places: list[tuple[str, list[Any]]] = [
            ("everywhere", self.BINDINGS),
            ("chat", ChatScreen.BINDINGS),
            ("chat message", ChatMessage.BINDINGS),
            ("recall panel", RecallPanel.BINDINGS),
            ("memories", MemoriesScreen.BINDINGS),
            ("a memory", MemoryDetail.BINDINGS),
            ("profile", ProfileScreen.BINDINGS),
            ("sessions", SessionsScreen.BINDINGS),
            ("settings", SettingsScreen.BINDINGS),
        ]
        keymap = self.settings.keys
        rows = [
            ("Enter", "composer", "send the message", "-"),
            ("Ctrl+J", "composer", "new line (Shift+Enter)", "-"),
            ("Up", "composer", "edit your last message", "-"),
            ("Ctrl+P", "everywhere", "every action (palette)", "-"),
        ]
        for where, bindings in places:
            for binding in bindings:
                if not isinstance(binding, Binding) or not binding.id:
                    continue
                key = keymap.get(binding.id, binding.key)
                rows.append((key_name(key), where, binding.description, binding.id))
        return rows

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that failed says so in one sentence; the app keeps running (chat without memory, memory
        without chat)."""
        if event.state != WorkerState.ERROR or event.worker.error is None:
            return
        from companion.errors import storage_error
        from companion.memory.db.store import SQL_ERRORS

        error = event.worker.error
        if isinstance(error, SQL_ERRORS):
            text = str(storage_error(self.paths.database, error))
        elif isinstance(error, CompanionError):
            text = str(error)
        else:
            text = f"Something went wrong ({type(error).__name__}: {error}); the app keeps running."
        self.notify(text, severity="error", timeout=15)

    def on_unmount(self) -> None:
        self.engine.cancel()


KEY_NAMES = {"left_square_bracket": "[", "right_square_bracket": "]", "escape": "Esc", "slash": "/"}


def key_name(key: str) -> str:
    """A key as people write it (`Ctrl+Q`, `F1`, `[`), for the help screen; several keys joined by `, `."""

    def one(key: str) -> str:
        parts = key.split("+")
        *mods, last = parts
        if last in KEY_NAMES:
            last = KEY_NAMES[last]
        elif len(last) == 1:
            last = last.upper() if mods else last  # Ctrl+G; a plain letter key stays as typed
        elif last[:1] == "f" and last[1:].isdigit():
            last = last.upper()
        else:
            last = last.capitalize()
        return "+".join([*(m.capitalize() for m in mods), last])

    return ", ".join(one(k.strip()) for k in key.split(","))


def _copy(settings: Settings) -> Settings:
    import copy

    return copy.deepcopy(settings)


def run_app(model_name: str | None = None, ask: Callable[[str], str] | None = None) -> None:
    """Open the memory file (asking for its passphrase on the terminal first, if it has one) and run the app."""
    from companion.engine import Engine

    paths = get_paths()
    engine = Engine(config_mod.load(paths), paths, model_name=model_name, ask=ask)
    app = CompanionApp(engine=engine)
    try:
        app.run()
    finally:
        close_saying_so(app.engine)


def close_saying_so(engine: Engine) -> None:
    """Close the engine after the screen is gone. Saving can take a few seconds (a background job stopping at
    its next step, the vector index written): the terminal then says so instead of staying blank."""
    import sys

    done = threading.Event()

    def say() -> None:
        if not done.wait(0.5):
            sys.stderr.write("companion: saving your memory and closing…")
            sys.stderr.flush()
            done.wait()
            sys.stderr.write(" done.\n")
            sys.stderr.flush()

    speaker = threading.Thread(target=say, daemon=True)
    speaker.start()
    try:
        engine.close()
    finally:
        done.set()
        speaker.join(timeout=1)
