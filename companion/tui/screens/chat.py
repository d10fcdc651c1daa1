"""The chat screen: the conversation (earlier sessions above it), the composer, the recall panel and a status
line with the model, tokens/s and how full the context is.

Replies stream from a thread worker into a buffer; a timer appends the new text to the Markdown widget about
twenty times a second (`Markdown.append` re-parses only the last block), so the screen keeps up with the model
without re-rendering the whole reply per token.
"""

from __future__ import annotations

import threading
import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, ProgressBar, Static

from companion import timeutil
from companion.engine import ContextUsage
from companion.errors import CompanionError
from companion.memory.tables import messages as message_table
from companion.tui.access import companion
from companion.tui.messages import EarlierLoaded, Greeted, ReplyFinished, ReplyKind, ReplyStarted
from companion.tui.widgets.chat_message import ChatMessage
from companion.tui.widgets.composer import Composer
from companion.tui.widgets.recall_panel import RecallPanel
from companion.tui.widgets.thought import Thought

EARLIER_PAGE = 40


def usage_text(usage: ContextUsage | None) -> str:
    if usage is None:
        return ""
    return (
        f"ctx {100 * usage.share:.0f}% (persona {usage.persona} profile {usage.profile} "
        f"memories {usage.memory} history {usage.history})"
    )


STOPPED = "*(stopped)*"  # the mark of a reply cut short, live and when scrolled back


class ChatScreen(Screen[None]):
    DEFAULT_CSS = """
    ChatScreen #main { height: 1fr; }
    ChatScreen #log { height: 1fr; }
    ChatScreen #bottom { height: auto; }
    ChatScreen #status { height: 1; padding: 0 1; color: $text-muted; background: $panel; }
    ChatScreen #status.off-record { color: $warning; text-style: bold; }
    """
    BINDINGS = [
        Binding("escape", "stop", "Stop", id="stop"),
        Binding("ctrl+r", "regenerate", "Regenerate", id="regenerate"),
        Binding("ctrl+b", "toggle_recall", "Recall", id="recall"),
        Binding("ctrl+y", "copy_last", "Copy reply", id="copy_last", show=False),
        Binding("ctrl+n", "new_session", "New session", id="new_session", show=False),
        Binding("ctrl+o", "off_record", "Off the record", id="off_record", show=False),
        Binding("ctrl+l", "toggle_thought", "Show thinking", id="thinking", show=False),
        Binding("f6", "show_prompt", "Show the prompt", id="show_prompt", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[tuple[float, str]] = []
        self._pending_lock = threading.Lock()
        self._reply: ChatMessage | None = None
        self._thought: Thought | None = None  # a reasoning model's thoughts above the reply being written
        self._thinking_since: float | None = None
        self._last_user: ChatMessage | None = None
        self.busy = False
        self.ready = False
        self._queued: str | None = None  # typed while the model was still loading
        self.model_name = ""
        self.tok_s = 0.0
        self.usage: ContextUsage | None = None
        self.earlier_before: int | None = None  # load earlier messages with ids below this
        self.earlier_more = False
        self._loading_earlier = False
        # Set by benchmarks/tui_stream.py: (time a piece left the engine, time it was on screen, characters).
        self.probe: list[tuple[float, float, int]] | None = None
        self._degraded_shown: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield VerticalScroll(id="log")
            yield RecallPanel(id="recall")
        with Vertical(id="bottom", classes="bottom"):
            yield ProgressBar(id="loading", show_eta=False, show_percentage=False)
            yield Composer(id="composer")
            yield Static("Loading the model…", id="status")
        yield Footer()

    def on_mount(self) -> None:
        # Typing works from the first frame; a message sent before the model is ready waits for it, visibly.
        self.query_one(Composer).focus()
        self.set_interval(0.05, self._flush_reply)
        self.watch(self.query_one("#log", VerticalScroll), "scroll_y", self._scrolled, init=False)

    # -- the engine is ready ---------------------------------------------------------------------------------
    def model_loading(self, name: str) -> None:
        self.ready = False
        self.query_one("#loading", ProgressBar).add_class("shown")
        self._status(f"Loading the model {name}…")

    def engine_ready(self, name: str, error: str, demo_note: str | None) -> None:
        self.query_one("#loading", ProgressBar).remove_class("shown")
        first = not self.model_name and not self.earlier_before
        self.model_name = name
        composer = self.query_one(Composer)
        if error:
            self.add(
                "notice",
                f"**The model could not be loaded.** {error} Memories, profile and sessions "
                "still work (F2–F4); choose another model in Settings (F5).",
            )
            if self._queued is not None:
                self.add("notice", "Your message was not sent: there is no model to answer it.")
                self._queued = None
            composer.disabled = True
            self._status("no model")
        else:
            self.ready = True
            composer.disabled = False
            if self.app.focused is None or not isinstance(self.app.focused, Composer):
                composer.focus()
            if demo_note:
                self.add("notice", demo_note, before=self._queued_widget())
            self._status("")
        if first:
            self.load_earlier()
            if not error:
                self.greet()  # a message that waited is sent once the greeting is on screen
                return
        self._send_queued()

    @work(thread=True, exit_on_error=False, group="greet")
    def greet(self) -> None:
        engine = companion(self).engine
        try:
            text = engine.greet()
        except CompanionError:
            text = None
        checkin = None
        if text is None and engine.checkin is not None:
            checkin = next((m.text for m in engine.messages() if m.role == "assistant"), None)
        self.post_message(Greeted(text, checkin))

    def on_greeted(self, message: Greeted) -> None:
        if message.text:
            self.add("assistant", message.text, before=self._queued_widget())
        if message.checkin:
            self.add(
                "notice",
                "**A check-in.** Answer here. Say “don't ask me about that” and it is not brought up again, or "
                "“stop checking in” to turn check-ins off.",
                before=self._queued_widget(),
            )
            self.add("assistant", message.checkin, before=self._queued_widget())
        self._status("")
        self._send_queued()

    def _queued_widget(self) -> ChatMessage | None:
        return self._last_user if self._queued is not None else None

    def _send_queued(self) -> None:
        """Send the message typed while the model was loading."""
        if self._queued is None or not self.ready:
            return
        text, self._queued = self._queued, None
        self._start_reply()
        self.generate("send", text, None)

    # -- earlier sessions ---------------------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="earlier")
    def load_earlier(self) -> None:
        engine = companion(self).engine
        before = self.earlier_before
        if before is None:
            before = min((m.id for m in engine.messages() if m.id > 0), default=None)
        page = message_table.earlier(engine.store, engine.session_id, before, EARLIER_PAGE + 1)
        more = len(page) > EARLIER_PAGE
        self.post_message(EarlierLoaded(page[1:] if more else page, more))

    async def on_earlier_loaded(self, message: EarlierLoaded) -> None:
        self._loading_earlier = False
        self.earlier_more = message.more
        if not message.messages:
            return
        self.earlier_before = message.messages[0].id
        log = self.query_one("#log", VerticalScroll)
        first_load = not log.children or not any(c.has_class("earlier") for c in log.children)
        widgets: list[ChatMessage] = []
        session = None
        user = companion(self).engine.settings.user.name or "you"
        for said in message.messages:
            if said.session_id != session:
                session = said.session_id
                widgets.append(
                    ChatMessage(
                        f"— conversation of {timeutil.day(said.created_at)} —", "divider", classes="earlier"
                    )
                )
            who = said.speaker or (user if said.role == "user" else "companion")
            # A reply cut short (stopped, or the app was killed mid-reply) reads as it did live.
            stopped = f"\n\n{STOPPED}" if said.incomplete and said.role == "assistant" else ""
            classes = "earlier incomplete" if stopped else "earlier"
            widgets.append(
                ChatMessage(f"**{who}:** {said.text}{stopped}", said.role, said.id, classes=classes)
            )
        old_height = log.virtual_size.height
        anchor = log.children[0] if log.children else None
        if anchor is not None:
            await log.mount_all(widgets, before=anchor)
        else:
            await log.mount_all(widgets)
        if first_load:
            log.scroll_end(animate=False)
        else:
            log.call_after_refresh(
                lambda: log.scroll_to(y=log.virtual_size.height - old_height, animate=False)
            )

    def _scrolled(self, value: float) -> None:
        log = self.query_one("#log", VerticalScroll)
        if value <= 0 and self.earlier_more and not self._loading_earlier and log.max_scroll_y > 0:
            self._loading_earlier = True
            self.load_earlier()

    # -- sending ------------------------------------------------------------------------------------------------
    @on(Composer.Submitted)
    def submitted(self, event: Composer.Submitted) -> None:
        text = event.text.strip()
        if not text:
            return
        if self.busy:
            self.notify("Wait for the reply to finish (or press Esc to stop it).", severity="warning")
            return
        if not self.ready:
            if self._queued is not None or event.editing is not None:
                self.notify(
                    "Your message waits for the model to load; send this one after it.", severity="warning"
                )
                return
            event.composer.text = ""
            self._queued = text
            self._last_user = self.add("user", text)
            self._status("loading the model… your message goes as soon as it is ready")
            return
        composer = event.composer
        editing = event.editing
        composer.text = ""
        composer.stop_editing()
        if editing is not None:
            self._cut_from(editing)
            self.add(
                "notice",
                "Branched: the conversation goes on from your edit; the earlier version is kept "
                "(Sessions, F4).",
            )
        self._last_user = self.add("user", text)
        self._start_reply()
        self.generate("branch" if editing is not None else "send", text, editing)

    def drop_forgotten(self) -> None:
        """Take what was forgotten (here, or by `memory forget` from a shell) off the screen: the turns whose
        messages are gone, and the recall panel's list, which may name them."""
        engine = companion(self).engine
        log = self.query_one("#log", VerticalScroll)
        shown = [
            child
            for child in log.children
            if isinstance(child, ChatMessage) and child.message_id is not None and child.message_id > 0
        ]
        alive = message_table.existing(
            engine.store, [child.message_id for child in shown if child.message_id]
        )
        for child in shown:
            if child.message_id not in alive:
                child.remove()
        self.query_one(RecallPanel).show_hits([], companion(self).now())

    def _cut_from(self, message_id: int) -> None:
        """Remove the edited message and everything after it from the screen (the old branch stays in the file)."""
        log = self.query_one("#log", VerticalScroll)
        cut = False
        for child in list(log.children):
            if (
                isinstance(child, ChatMessage)
                and child.message_id == message_id
                and not child.has_class("earlier")
            ):
                cut = True
            if cut:
                child.remove()

    def _start_reply(self) -> None:
        self.busy = True
        self._thought = None
        self._thinking_since = None
        self._reply = self.add("assistant", "")
        self._status("thinking…")

    @work(thread=True, exit_on_error=False, exclusive=True, group="reply")
    def generate(self, kind: ReplyKind, text: str, message_id: int | None) -> None:
        engine = companion(self).engine
        try:
            if kind == "regenerate":
                turn = engine.regenerate()
            elif kind == "branch" and message_id is not None:
                turn = engine.branch(message_id, text)
            else:
                turn = engine.send(text)
            self.post_message(ReplyStarted(turn.user_message_id, turn.recall, engine.context_usage()))
            for piece in turn:
                with self._pending_lock:
                    self._pending.append((time.perf_counter(), piece))
            self.post_message(
                ReplyFinished(
                    incomplete=turn.incomplete,
                    tok_s=turn.stats.gen_tok_s,
                    reply_id=turn.reply_id,
                    usage=engine.context_usage(),
                    text=turn.reply_text,
                    unanswered=turn.unanswered_note() if turn.unanswered else "",
                )
            )
        except CompanionError as error:
            self.post_message(ReplyFinished(incomplete=True, error=str(error)))
        except Exception as error:  # the model died mid-reply: say so, keep the app running
            self.post_message(
                ReplyFinished(incomplete=True, error=f"The model stopped with an error ({error}).")
            )

    def on_reply_started(self, message: ReplyStarted) -> None:
        engine = companion(self).engine
        if engine.degraded and engine.degraded != self._degraded_shown:
            self._degraded_shown = engine.degraded
            self.notify(engine.degraded, severity="error", timeout=15)
            self._status("")
        if self._last_user is not None and self._last_user.message_id is None:
            self._last_user.message_id = message.user_id
        self.query_one(RecallPanel).show_hits(message.recall, companion(self).now())
        self.usage = message.usage

    def _show_thinking(self) -> None:
        """A reasoning model's thoughts, folded above its reply while it writes them ("thinking… 4 s")."""
        turn = companion(self).engine.last_turn
        if self._reply is None or turn is None or (turn.done and self._thought is None):
            return
        reasoning = turn.reasoning
        if not reasoning.strip() and self._thought is None:
            return
        now = time.perf_counter()
        if self._thinking_since is None:
            self._thinking_since = now
        if self._thought is None:
            self._thought = Thought()
            self.query_one("#log", VerticalScroll).mount(self._thought, before=self._reply)
        thinking = turn.thinking and not turn.done
        seconds = (now - self._thinking_since) if thinking else turn.stats.reasoning_ms / 1000
        self._thought.show(reasoning, seconds, thinking)
        if thinking:
            self._status(f"thinking… {seconds:.0f} s")

    async def _flush_reply(self) -> None:
        if self.busy:
            self._show_thinking()
        with self._pending_lock:
            pieces, self._pending = self._pending, []
        if not pieces or self._reply is None:
            return
        new = "".join(p for _, p in pieces)
        if not self._reply.text:
            self._status("writing…")  # no longer thinking: the reply is on its way
        self._reply.text += new
        await self._reply.append(new)
        self.query_one("#log", VerticalScroll).scroll_end(animate=False)
        if self.probe is not None:
            shown = time.perf_counter()
            self.probe.extend((t, shown, len(p)) for t, p in pieces)

    async def on_reply_finished(self, message: ReplyFinished) -> None:
        await self._flush_reply()
        self._show_thinking()
        self.busy = False
        reply = self._reply
        self._reply = None
        if reply is not None:
            reply.message_id = message.reply_id
            if message.text is not None and message.text != reply.text:
                await reply.set_text(message.text)
            if message.error:
                if reply.text:
                    await reply.append(f"\n\n*{message.error}*")
                else:
                    await reply.set_text(f"*{message.error}*")
                reply.add_class("incomplete")
            elif message.unanswered:
                await reply.set_text(f"*({message.unanswered})*")
                reply.add_class("incomplete")
            elif message.incomplete:
                await reply.append(f"\n\n{STOPPED}")
                reply.add_class("incomplete")
        self.tok_s = message.tok_s
        if message.usage:
            self.usage = message.usage
        self._status("")
        for delay in (0.1, 0.5):
            self.set_timer(delay, self._repaint)

    def _repaint(self) -> None:
        """Paint the whole screen again, a second line of defence: frames written while llama-cpp-python had
        the process's stdout/stderr pointed at /dev/null were lost and the terminal kept an earlier one (see
        `llm/llama.py`, `_route_llama_logs`, which now stops that)."""
        self.refresh(layout=True)
        self.app.refresh(repaint=True)

    # -- actions ------------------------------------------------------------------------------------------------
    def action_stop(self) -> None:
        if self.busy:
            companion(self).engine.cancel()

    def action_regenerate(self) -> None:
        if self.busy or not self.ready:
            self.notify("Wait for the reply to finish (or press Esc to stop it).", severity="warning")
            return
        log = self.query_one("#log", VerticalScroll)
        mine = [c for c in log.children if isinstance(c, ChatMessage) and not c.has_class("earlier")]
        users = [n for n, c in enumerate(mine) if c.role == "user"]
        if not users:
            self.notify("There is no reply to regenerate yet; send a message first.", severity="warning")
            return
        replies = [c for c in mine[users[-1] + 1 :] if c.role == "assistant"]
        if replies:  # the reply being replaced leaves the screen (it stays in the file, marked replaced)
            children = list(log.children)
            at = children.index(replies[-1])
            if at and isinstance(children[at - 1], Thought):
                children[at - 1].remove()
            replies[-1].remove()
        self._start_reply()
        self.generate("regenerate", "", None)

    def action_toggle_recall(self) -> None:
        panel = self.query_one(RecallPanel)
        log = self.query_one("#log", VerticalScroll)
        at_end = log.scroll_y >= log.max_scroll_y - 1
        panel.toggle_class("shown")
        if at_end:  # the log narrows or widens and wraps anew: it stays at the latest message
            log.call_after_refresh(lambda: log.scroll_end(animate=False))
        if panel.has_class("shown"):
            panel.query_one("ListView").focus()
        else:
            self.query_one(Composer).focus()

    def action_toggle_thought(self) -> None:
        thoughts = list(self.query(Thought))
        if not thoughts:
            self.notify("There is no thinking to show: the model answered without it.", timeout=3)
            return
        thoughts[-1].action_fold()

    def action_show_prompt(self) -> None:
        """The prompt inspector: the last reply's prompt exactly as the model got it."""
        from companion.tui.widgets.dialogs import PromptDialog

        prompt = companion(self).engine.prompt_text()
        if not prompt:
            self.notify("No reply yet: the prompt is shown once a message has been sent.", timeout=4)
            return
        self.app.push_screen(PromptDialog(prompt))

    def action_copy_last(self) -> None:
        replies = [c for c in self.query(ChatMessage) if c.role == "assistant" and c.text]
        if replies:
            replies[-1].action_copy()

    def action_new_session(self) -> None:
        companion(self).new_session(False)

    def action_off_record(self) -> None:
        companion(self).new_session(True)

    def session_started(self, off_record: bool, checkin: bool = False) -> None:
        """The app started a new conversation (or moved to a check-in made while it was not in use): the old
        one moves up as an earlier one."""
        for child in self.query_one("#log", VerticalScroll).children:
            child.add_class("earlier")
        self.query_one(RecallPanel).show_hits([], companion(self).now())
        self.usage = None
        if off_record:
            self.add(
                "notice",
                "**Off the record.** Nothing of this conversation is written to your memory "
                "file, and it is gone when it ends (Ctrl+N starts a normal one).",
            )
        elif not checkin:
            self.add("notice", "A new conversation.")
        self.query_one("#status", Static).set_class(off_record, "off-record")
        self.greet()

    @on(Composer.RecallLast)
    def recall_last(self) -> None:
        if self._last_user is not None and self._last_user.message_id is not None and not self.busy:
            self.query_one(Composer).start_editing(self._last_user.message_id, self._last_user.text)

    @on(ChatMessage.EditRequested)
    def edit_message(self, event: ChatMessage.EditRequested) -> None:
        if self.busy:
            self.notify("Wait for the reply to finish (or press Esc to stop it).", severity="warning")
            return
        if event.message.message_id is not None:
            self.query_one(Composer).start_editing(event.message.message_id, event.message.text)

    # -- helpers ------------------------------------------------------------------------------------------------
    def add(self, role: str, text: str, before: ChatMessage | None = None) -> ChatMessage:
        widget = ChatMessage(text, role)
        log = self.query_one("#log", VerticalScroll)
        log.mount(widget, before=before)
        log.scroll_end(animate=False)
        return widget

    def _status(self, override: str) -> None:
        engine = getattr(self.app, "engine", None)
        parts = []
        if engine is not None and engine.degraded:
            parts.append("NOT SAVING")
        elif engine is not None and engine.off_record:
            parts.append("OFF THE RECORD")
        if override:
            parts.append(override)
        else:
            parts.append(self.model_name or "no model")
            if self.tok_s:
                parts.append(f"{self.tok_s:.1f} tok/s")
            usage = self.usage or (engine.context_usage() if engine is not None and self.ready else None)
            if usage:
                parts.append(usage_text(usage))
        line = " · ".join(parts)
        width = self.app.size.width - 2
        if len(line) > width and parts and parts[-1].startswith("ctx "):
            parts[-1] = parts[-1].split(" (", 1)[0]  # narrow: the share of the context, not its parts
            line = " · ".join(parts)
        self.query_one("#status", Static).update(line)
