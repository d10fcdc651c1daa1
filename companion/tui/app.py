"""The terminal app: a chat screen over `Engine` (the full TUI grows from here).

All model work runs in thread workers that post typed messages back; the UI never blocks. Streaming updates
are batched (a timer flushes the new text about twenty times a second) instead of re-rendering per token.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Input, Markdown, Static

from companion.errors import CompanionError
from companion.tui.messages import ModelFailed, ModelLoaded, ReplyFinished


class ChatMessage(Markdown):
    DEFAULT_CSS = """
    ChatMessage { margin: 0 1 1 1; padding: 0 1; }
    ChatMessage.user { background: $boost; border-left: thick $accent; }
    ChatMessage.assistant { border-left: thick $success; }
    ChatMessage.incomplete { border-left: thick $warning; }
    ChatMessage.notice { color: $text-muted; border-left: thick $secondary; }
    """


class CompanionApp(App[None]):
    TITLE = "companion"
    CSS = """
    #log { height: 1fr; }
    #status { height: 1; padding: 0 1; color: $text-muted; }
    #composer { dock: bottom; }
    """
    BINDINGS = [
        Binding("escape", "stop", "Stop reply"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, model_name: str | None = None, engine: Any = None) -> None:
        super().__init__()
        self._model_name = model_name
        self.engine = engine
        self._pending: list[str] = []
        self._pending_lock = threading.Lock()
        self._reply: ChatMessage | None = None
        self._reply_text = ""
        self.busy = False
        self.greeting: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield VerticalScroll(id="log")
        yield Static("Loading the model…", id="status")
        yield Input(placeholder="Say something… (Enter sends, Esc stops, Ctrl+Q quits)", id="composer")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#composer", Input).disabled = True
        self.set_interval(0.05, self._flush_reply)
        self.load_engine()

    # -- workers --------------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="model")
    def load_engine(self) -> None:
        try:
            if self.engine is None:
                from companion.engine import Engine

                self.engine = Engine(model_name=self._model_name)
            self.engine.load_model()
            self.greeting = self.engine.greet()
            self.post_message(ModelLoaded(self.engine.model.name))
            self.engine.memory.ready()
            self.engine.start_upkeep()
        except CompanionError as error:
            self.post_message(ModelFailed(str(error)))

    @work(thread=True, exclusive=True, group="reply")
    def generate(self, text: str) -> None:
        started = time.perf_counter()
        try:
            turn = self.engine.send(text)
            for piece in turn:
                with self._pending_lock:
                    self._pending.append(piece)
            stats = turn.stats
            self.post_message(
                ReplyFinished(
                    turn.incomplete,
                    stats.completion_tokens,
                    stats.gen_tok_s,
                    time.perf_counter() - started,
                    "",
                )
            )
        except CompanionError as error:
            self.post_message(ReplyFinished(True, 0, 0.0, 0.0, str(error)))

    # -- events ---------------------------------------------------------------------------------------------
    def on_model_loaded(self, message: ModelLoaded) -> None:
        composer = self.query_one("#composer", Input)
        composer.disabled = False
        composer.focus()
        note = ""
        if (
            self.engine is not None
            and self.engine.settings.model.name == "demo"
            and self.engine.settings.model.backend == "local"
        ):
            from companion.llm.models import DEMO_NOTE

            note = DEMO_NOTE
            self._add("notice", note)
        if self.greeting:
            self._add("assistant", self.greeting)
        self._status(f"model: {message.name}")

    def on_model_failed(self, message: ModelFailed) -> None:
        self._add("notice", f"**The model could not be loaded.** {message.error}")
        self._status("no model")

    @on(Input.Submitted, "#composer")
    def send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self.busy or self.engine is None:
            return
        event.input.value = ""
        self.busy = True
        self._add("user", text)
        self._reply = self._add("assistant", "…")
        self._reply_text = ""
        self._status("thinking…")
        self.generate(text)

    def _flush_reply(self) -> None:
        with self._pending_lock:
            pieces, self._pending = self._pending, []
        if pieces and self._reply is not None:
            self._reply_text += "".join(pieces)
            self._reply.update(self._reply_text)
            self.query_one("#log", VerticalScroll).scroll_end(animate=False)

    def on_reply_finished(self, message: ReplyFinished) -> None:
        self._flush_reply()
        self.busy = False
        if self._reply is not None:
            if message.error:
                self._reply.update(self._reply_text + f"\n\n*{message.error}*")
                self._reply.add_class("incomplete")
            elif message.incomplete:
                self._reply.update((self._reply_text or "") + "\n\n*(stopped)*")
                self._reply.add_class("incomplete")
        self._status(f"{message.tokens} tokens · {message.tok_s:.1f} tok/s")

    def action_stop(self) -> None:
        if self.busy and self.engine is not None:
            self.engine.cancel()

    def _add(self, role: str, text: str) -> ChatMessage:
        widget = ChatMessage(text, classes=role)
        log = self.query_one("#log", VerticalScroll)
        log.mount(widget)
        log.scroll_end(animate=False)
        return widget

    def _status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def on_unmount(self) -> None:
        if self.engine is not None:
            self.engine.cancel()


def run_app(model_name: str | None = None) -> None:
    app = CompanionApp(model_name=model_name)
    try:
        app.run()
    finally:
        if app.engine is not None:
            app.engine.close()
