"""The chat engine: a thin coordinator. The TUI, `companion chat` and `companion ask` all go through `send`.

One turn's way through the parts: the `ConversationLog` stores the user's message (committed) → long-term
memory recalls → the `PromptBuilder` assembles the prompt (stable prefix first, what is already in view left
out) → the model streams a `Turn` → the turn stores its reply through its `Reply` → what was recalled is
reinforced and both turns are embedded. The engine owns the model's lifetime, the persona, the session and the
upkeep schedule, and decides nothing that one of those parts can decide. Importable without Textual; the model
loads lazily on the first turn.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from companion import config as config_mod
from companion import timeutil
from companion.config import Settings
from companion.conversation import ConversationLog, MemoryLog, Reply, SavedLog
from companion.errors import CompanionError, ModelError, StorageError
from companion.llm.base import ChatMessage, ChatModel, GenerationOptions
from companion.llm.prompt import MESSAGE_OVERHEAD, echo_stops, message_room, refuse_too_long
from companion.memory import open_memory
from companion.memory.db.store import SQL_ERRORS, Store
from companion.memory.records import Hit, Message, check_length
from companion.memory.tables import memories as memory_table
from companion.memory.tables import messages as message_table
from companion.memory.tables import sessions as session_table
from companion.paths import Paths, get_paths
from companion.prompt_builder import PromptBuilder, TokenCounter, speaker_name
from companion.turn import Turn, TurnStats

if TYPE_CHECKING:
    from companion.memory.tables.checkins import Checkin
    from companion.memory.upkeep.scheduler import Scheduler, UpkeepOptions
    from companion.persona.card import Card

__all__ = ["ContextUsage", "Engine", "Turn", "TurnStats"]

FILE_ERRORS: tuple[type[Exception], ...] = (StorageError, *SQL_ERRORS)


@dataclass(frozen=True)
class ContextUsage:
    """How full the model's context is, in tokens, by part of the prompt."""

    persona: int
    profile: int
    memory: int
    history: int
    n_ctx: int

    @property
    def used(self) -> int:
        return self.persona + self.profile + self.memory + self.history

    @property
    def share(self) -> float:
        """Of the context, how much is used (0 to 1)."""
        return self.used / max(self.n_ctx, 1)


class Engine:
    """A conversation with the companion: one conversation log, one prompt builder and one (lazily loaded)
    model over the memory file."""

    def __init__(
        self,
        settings: Settings | None = None,
        paths: Paths | None = None,
        *,
        model: ChatModel | None = None,
        model_name: str | None = None,
        session_id: int | None = None,
        now: Callable[[], datetime] | None = None,
        off_record: bool = False,
        ask: Callable[[str], str] | None = None,
        checkins: bool = True,
    ) -> None:
        """`ask` prompts for the memory file's passphrase when it is encrypted with one (None: only
        COMPANION_PASSPHRASE). `model` is used instead of the configured one (tests give a scripted model). A new
        conversation opens on a check-in the user has not answered yet, unless `checkins` is False (a one-off
        `ask`)."""
        self.paths = (paths or get_paths()).ensure()
        self.settings = settings or config_mod.load(self.paths)
        self.memory = open_memory(self.paths, self.settings.memory, ask)
        self.now = now or timeutil.now
        self._model = model
        self._owns_model = model is None  # a model handed in is the caller's to close
        self._model_name = model_name
        self._model_lock = threading.Lock()
        self._counter: TokenCounter | None = None
        self._persona: Card | None = None
        self._profile: str | None = None
        self._upkeep: Scheduler | None = None
        # Why the conversation is no longer being saved (the memory file failed), for the faces to show.
        self.degraded: str | None = None
        self.last_turn: Turn | None = None
        self.last_prompt: list[ChatMessage] = []  # what the last turn sent the model (`prompt_text`)
        self.turns = 0
        # The file's forget counter as this conversation last saw it; `stale` once it moved (see `catch_up`).
        self._forgets = self._read_forgets()
        self._stale = False
        # The check-in this conversation answers (a new conversation opens on one not answered yet).
        self.checkin: Checkin | None = None
        # A check-in made in the background while the app was open, for the app to switch to (`take_checkin`).
        self._made_checkin: Checkin | None = None
        if off_record:
            self.log: ConversationLog = MemoryLog()
        elif session_id is not None:
            self.log = SavedLog(self.store, session_id)
        else:
            self.checkin = self._waiting_checkin() if checkins else None
            if self.checkin is not None:
                self.log = SavedLog(self.store, self.checkin.session_id)
            else:
                self.log = self._open_log()
        self.builder = self._new_builder()

    @property
    def store(self) -> Store:
        return self.memory.store

    @property
    def session_id(self) -> int:
        return self.log.session_id

    @property
    def off_record(self) -> bool:
        """Nothing of this conversation reaches the memory file (off the record, or the unsaved fallback)."""
        return not self.log.saved

    @property
    def busy(self) -> bool:
        return self.last_turn is not None and not self.last_turn.done

    # -- the model ------------------------------------------------------------------------------------------
    @property
    def model_loaded(self) -> bool:
        return self._model is not None

    def load_model(self) -> ChatModel:
        with self._model_lock:
            if self._model is None:
                from companion.llm.models import open_model

                self._model = open_model(self.settings, self.paths, self._model_name)
            return self._model

    @property
    def model(self) -> ChatModel:
        return self.load_model()

    def reload_model(self) -> ChatModel:
        """Close the model and open the configured one (after the user switched models or their settings)."""
        self._refuse_while_busy()
        with self._model_lock:
            if self._model is not None and self._owns_model:
                self._model.close()
            self._model = None
            self._owns_model = True
            self._model_name = None
            self._counter = None
        return self.load_model()

    def count(self, text: str) -> int:
        if self._counter is None or self._counter.model is not self.model:
            self._counter = TokenCounter(self.model)
        return self._counter(text)

    def options(self, **overrides: Any) -> GenerationOptions:
        chat = self.settings.chat
        values: dict[str, Any] = {
            "max_tokens": chat.max_tokens,
            "temperature": chat.temperature,
            "top_p": chat.top_p,
            "repeat_penalty": chat.repeat_penalty,
            "seed": chat.seed,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return GenerationOptions(**values)

    # -- settings, memory file, upkeep ---------------------------------------------------------------------
    def settings_changed(self, keys: list[str]) -> None:
        """Apply changed settings that live in loaded objects (the model is reloaded by `reload_model`)."""
        if any(k.startswith(("persona.", "user.")) for k in keys):
            self._persona = None
        if "persona.name" in keys and self.log.saved and self.persona.name != self.log.persona:
            # The conversation goes on with the new persona: it is filed under it, and what consolidation
            # learns from it is that persona's.
            self.log.switch_persona(self.persona.name)
        if "memory.tau_days" in keys:
            self.memory.tau_days = self.settings.memory.tau_days
            self.memory.reset_retriever()
        if self._upkeep is not None:
            self._upkeep.options = self.upkeep_options()

    def encrypt_memory(self, ask: Callable[[str], str] | None = None, use_passphrase: bool = False) -> str:
        """Encrypt the memory file in place (the welcome screen's opt-in) and go on with the encrypted file."""
        from companion.memory import encryption

        if self._upkeep is not None or self.busy:
            raise CompanionError("Encrypt while nothing else runs: quit and use `companion memory encrypt`.")
        self.memory.close()
        try:
            described = encryption.encrypt(self.paths, ask, use_passphrase).describe()
        finally:
            session = self.session_id
            self.memory = open_memory(self.paths, self.settings.memory, ask)
            if self.log.saved:
                self.log = SavedLog(self.store, session)
        return described

    def prepare(self) -> None:
        """Load what the first turn needs (model, embedder, index) ahead of time, e.g. while a UI starts."""
        self.load_model()
        self.memory.ready()

    def upkeep_options(self) -> UpkeepOptions:
        """What the upkeep jobs need: the shared model (a chat turn goes first), who the user and the
        companion are, and the conversation going on now (not consolidated while it lasts)."""
        from companion.memory.upkeep.scheduler import UpkeepOptions

        return UpkeepOptions.from_settings(
            self.settings,
            model=lambda: self.model.for_jobs(),
            wait_turn=self._wait_for_turn,
            exclude_session=self.session_id if self.log.saved else None,
        )

    def start_upkeep(self) -> None:
        """Run memory upkeep (forgetting, consolidation, digests, index) in the background while open, and
        check-ins while the app is not in use."""
        from companion.memory.upkeep.scheduler import Scheduler

        if self._upkeep is None:
            self._upkeep = Scheduler(
                self.memory, self.upkeep_options(), after=self._checkin_in_background, now=self.now
            )
            self._upkeep.start()

    def upkeep_now(self) -> None:
        """Run what the schedule would run now (the due jobs, then a check-in), in this thread."""
        if self._upkeep is not None:
            self._upkeep.run_due(wait=True)

    # -- check-ins ----------------------------------------------------------------------------------------------
    def _waiting_checkin(self) -> Checkin | None:
        from companion import checkins

        try:
            return checkins.waiting(self.memory, self.now())
        except FILE_ERRORS:
            return None

    def mark_presence(self, typed: bool = False) -> None:
        """The app is open (and, with `typed`, in use): upkeep elsewhere makes no check-in meanwhile."""
        from companion import checkins

        with contextlib.suppress(*FILE_ERRORS):
            checkins.mark_presence(self.memory, self.now(), typed)

    def _checkin_in_background(self) -> None:
        """Upkeep inside the app: a check-in when one is due and the app has not been used for a while; the
        desktop is told (without "Open": the app is open) and the app switches to it (`take_checkin`)."""
        from companion import checkins

        if not self.settings.checkins.enabled or self.busy:
            return
        outcome = checkins.run(
            self.memory,
            self.settings,
            self.now(),
            model=(lambda: self.model.for_jobs()) if self.model_loaded else None,
        )
        if outcome.made is None:
            return
        self._made_checkin = outcome.made
        if checkins.tell_the_desktop(self.persona.name, outcome.text, self.settings.checkins.preview).ok:
            from companion.memory.tables import checkins as checkin_table

            checkin_table.mark_notified(self.store, outcome.made.id, timeutil.now_iso())

    def take_checkin(self) -> Checkin | None:
        """A check-in made in the background, once: the conversation moves to it (the faces show it)."""
        made, self._made_checkin = self._made_checkin, None
        if made is None or self.busy:
            self._made_checkin = made
            return None
        self.open_checkin(made)
        return made

    def open_checkin(self, checkin: Checkin) -> None:
        """Go on in a check-in's session (the current conversation ends, as with a new one)."""
        self._go_on_in(lambda: SavedLog(self.store, checkin.session_id), checkin)

    def _answer_checkin(self, text: str, action: str) -> Turn:
        """The user asked not to be asked about this again, or for no more check-ins: done, and said so,
        without the model."""
        import threading as _threading

        from companion.llm.base import Stream, StreamStats
        from companion.llm.prompt import Assembled

        assert self.checkin is not None
        if action == "off":
            self.settings.checkins.enabled = False
            config_mod.save(self.settings, self.paths)
            said = (
                "All right, no more check-ins. You can turn them on again in Settings (F5) or with "
                "`companion config set checkins.enabled true`."
            )
        else:
            if self.checkin.memory_id is not None:
                # Forgotten or closed meanwhile: nothing is left to ask about.
                with contextlib.suppress(CompanionError):
                    self.memory.close_thread(
                        self.checkin.memory_id, "the user asked not to be asked about it"
                    )
            said = "All right, I won't ask about that again."
        conversation, user_id = self.log.add_user(text, self.settings.user.name)
        self.turns += 1
        reply = Reply(self.log, self.persona.name, None, self._after_reply(user_id, []), [])
        self.last_turn = Turn(
            self.turns,
            user_id,
            Stream(iter([said]), StreamStats(finish_reason="stop"), _threading.Event()),
            time.perf_counter(),
            TurnStats(turn=self.turns),
            [],
            Assembled(messages=[], fold_start=0, folded=0),
            reply,
        )
        return self.last_turn

    def _wait_for_turn(self) -> None:
        while self.busy:
            time.sleep(0.1)

    # -- the persona and the stable prefix ------------------------------------------------------------------
    @property
    def persona(self) -> Card:
        """The persona this conversation is with (the default companion on first use)."""
        if self._persona is None:
            from companion.memory.tables import personas
            from companion.persona import library

            name = self.settings.persona.name
            library.ensure_default(self.store, name)
            log = getattr(self, "log", None)
            if not personas.exists(self.store, name) and log is not None and log.saved:
                # Renamed since the settings named it (`persona edit … name`, or a forget of its name): the
                # conversation's own persona followed the rename.
                own = log.persona
                name = own if own and personas.exists(self.store, own) else name
            self._persona = library.get(self.store, name)
        return self._persona

    def persona_text(self) -> str:
        """The persona part of the stable prefix: instructions for a chat model, a scene for a base model."""
        from companion.persona.library import scene_text, system_text

        if self.model.prompt_style == "transcript":
            return scene_text(self.persona, speaker_name(self.settings.user.name, "user"))
        return system_text(self.persona, self.settings.user.name)

    def profile_text(self) -> str:
        """The user's profile and the open threads that are due, for the stable prefix of the prompt.

        Read once per conversation, so the prefix (and llama.cpp's KV cache) stays the same turn after turn."""
        if self._profile is None:
            from companion.llm.prompt import profile_text
            from companion.memory.tables import profile

            due = memory_table.threads(self.store, "open", due_before=timeutil.iso(self.now()), limit=5)
            lines = profile_text(
                profile.current(self.store).sections,
                [(item.text, timeutil.day(item.event_time)) for item in due],
            )
            self._profile = lines.strip()
        return self._profile

    def refresh_profile(self) -> None:
        """Read the profile again for the next prompt (after the user vetoed a line)."""
        self._profile = None

    def greet(self) -> str | None:
        """The persona's first message, said once at the start of a new conversation (the faces call it)."""
        from companion.persona.library import fill

        greeting = self.persona.first_mes.strip()
        if not greeting or self.messages():
            return None
        text = fill(
            greeting, self.persona.name, self.settings.user.name or "there"
        )  # "Hi there" without a name
        self.log.greet(self.persona.name, text)
        return text

    # -- the conversation -----------------------------------------------------------------------------------
    def messages(self) -> list[Message]:
        """This conversation as it reads: a branch includes its parent's turns before the branch point."""
        return self.log.messages()

    def _open_log(self, parent_id: int | None = None, branch_at: int | None = None) -> SavedLog:
        return SavedLog.open(self.store, self.persona.name, timeutil.iso(self.now()), parent_id, branch_at)

    def _new_builder(self) -> PromptBuilder:
        return PromptBuilder(
            self.count, lambda message_id: message_table.neighbours(self.store, message_id, 1, 0)
        )

    def new_session(self, *, off_record: bool = False) -> int:
        """End this conversation (consolidation may take it) and start another. Off the record, nothing of the
        new one is written to the memory file."""
        if self.busy:
            assert self.last_turn is not None
            self.last_turn.close()
        self._go_on_in(MemoryLog if off_record else self._open_log)
        return self.session_id

    def _go_on_in(self, open_log: Callable[[], ConversationLog], checkin: Checkin | None = None) -> None:
        """This conversation ends (consolidation may take it) and the next turns go to the log `open_log`
        opens, from a fresh start: a new prompt builder, no turns yet, upkeep told which one is going on."""
        self.log.end()
        self.log = open_log()
        self.checkin = checkin
        self.builder = self._new_builder()
        self.turns = 0
        self.last_turn = None
        if self._upkeep is not None:
            self._upkeep.options = self.upkeep_options()

    # -- forgets made elsewhere ---------------------------------------------------------------------------------
    def _read_forgets(self) -> int:
        try:
            return self.memory.forgets()
        except FILE_ERRORS:
            return 0

    def forgets_changed(self) -> bool:
        """Whether something was forgotten (by this process or another: `memory forget` from a shell) since this
        conversation last looked. Cheap (one meta read): the app asks every few seconds to take forgotten turns
        off the screen; the next turn then starts clean of it (`catch_up`)."""
        now = self._read_forgets()
        if now == self._forgets:
            return False
        self._forgets, self._stale = now, True
        return True

    def catch_up(self) -> None:
        """Before a turn: after a forget, nothing cached may carry what was forgotten — the memory blocks earlier
        turns were sent with, the persona card, the profile and open threads, the index and recall's caches. A
        conversation whose session was forgotten goes on in a new one."""
        self.forgets_changed()
        if not self._stale:
            return
        self._stale = False
        self.builder = self._new_builder()
        self._persona = None
        self._profile = None
        self.memory.catch_up()
        if self.log.saved and not session_table.exists(self.store, self.log.session_id):
            self.log = self._open_log()

    def send(self, text: str, **options: Any) -> Turn:
        """Store the user's message (committed), then start the reply. Iterate the returned Turn."""
        text = text.strip()
        if not text:
            raise CompanionError("The message is empty; type something to say.")
        self._refuse_while_busy()
        self.catch_up()
        check_length(text)  # before anything reads it whole: nothing is stored, counted or embedded
        model = self.model  # a model that cannot load fails before the message is stored
        room = message_room(
            self.persona_text(),
            self.profile_text(),
            model.n_ctx,
            self.options(**options).max_tokens,
            self.count,
        )
        refuse_too_long(self.count(text) + MESSAGE_OVERHEAD, room)  # refused before it is stored
        if self.checkin is not None and self.log.saved:
            from companion import checkins

            action = checkins.understood(text)
            if action is not None:
                return self._answer_checkin(text, action)
        try:
            conversation, user_id = self.log.add_user(text, self.settings.user.name)
        except StorageError as error:
            if not self.log.saved:
                raise
            self._go_on_unsaved(error)
            return self.send(text, **options)
        return self._respond(text, user_id, conversation, **options)

    def _reply_lost(self, error: StorageError) -> ConversationLog:
        """The file refused a reply: the conversation goes on unsaved, in the log the reply is kept in."""
        self._go_on_unsaved(error)
        return self.log

    def _go_on_unsaved(self, error: StorageError) -> None:
        """The memory file cannot take a write (full disk, read-only, locked): the conversation goes on in
        memory, as off the record does, and the faces say so. Nothing already saved is touched."""
        self.degraded = f"{error} The conversation goes on without being saved."
        try:
            said, excluded = self.log.said(), self.log.recall_excluded()
        except FILE_ERRORS:
            said, excluded = [], [self.session_id]
        fallback = MemoryLog(said, self.session_id, excluded)
        fallback.greeting = self.log.greeting
        self.log = fallback

    def regenerate(self, **options: Any) -> Turn:
        """Answer the last user message again. The earlier reply stays in the file, marked replaced."""
        self._refuse_while_busy()
        self.catch_up()
        conversation = self.messages()
        end = len(conversation)
        while end and conversation[end - 1].role == "assistant" and self.log.owns(conversation[end - 1]):
            end -= 1
        if not end or conversation[end - 1].role != "user":
            raise CompanionError("There is no reply to regenerate yet; send a message first.")
        for old in conversation[end:]:
            self.log.replace(old.id)
        question = conversation[end - 1]
        return self._respond(question.text, question.id, conversation[: end - 1], **options)

    def branch(self, message_id: int, text: str, **options: Any) -> Turn:
        """Edit an earlier user message: the conversation continues from there in a new branch (a new
        session that shares the turns before it); the old branch is kept as it was."""
        self._refuse_while_busy()
        target = next((m for m in self.messages() if m.id == message_id), None)
        if target is None or target.role != "user":
            raise CompanionError("Only your own messages in this conversation can be edited.")
        self.log = self.log.branch(target, self.persona.name, timeutil.iso(self.now()))
        self.builder.fold_start = 0
        self.turns = 0
        if self._upkeep is not None:
            self._upkeep.options = self.upkeep_options()
        return self.send(text, **options)

    def _refuse_while_busy(self) -> None:
        if self.busy:
            raise CompanionError("A reply is still being written; stop it first (Esc).")

    def _respond(self, text: str, user_id: int, conversation: list[Message], **options: Any) -> Turn:
        """Recall, assemble and start streaming the reply to `text` (already stored as `user_id`), after the
        turns in `conversation`."""
        started = time.perf_counter()
        model = self.model
        release = model.chat_turn()  # background jobs pause from here: the recall gets the cores
        try:
            self.turns += 1
            stats = TurnStats(turn=self.turns)
            hits = self.recall(text) if self.settings.memory.recall_limit > 0 else []
            stats.retrieval_ms = (time.perf_counter() - started) * 1000
            t1 = time.perf_counter()
            opts = self.options(**options)
            persona = self.persona_text()
            built = self.builder.build(
                text=text,
                user_id=user_id,
                conversation=conversation,
                hits=hits,
                card=self.persona,
                user=self.settings.user.name,
                persona=persona,
                profile=self.profile_text(),
                now=self.now(),
                n_ctx=model.n_ctx,
                reply_tokens=opts.max_tokens,
                block_tokens=self.settings.memory.block_tokens,
            )
            stats.assembly_ms = (time.perf_counter() - t1) * 1000
            # Every answer stops where the model starts a turn (a new line with a speaker's name) or starts to
            # write the prompt's furniture (the memory block, the persona's text): what it wrote is kept.
            names = [speaker_name(self.settings.user.name, "user"), self.persona.name]
            opts.stop = [*opts.stop, *echo_stops(persona, *names)]
            self.last_prompt = built.assembled.messages
            stream = model.stream(built.assembled.messages, opts, threading.Event())
            reply = Reply(
                self.log,
                self.persona.name,
                model.name,
                self._after_reply(user_id, built.shown),
                names,
                keep_reasoning=self.settings.model.keep_reasoning,
                on_lost=self._reply_lost,
            )
            self.last_turn = Turn(
                self.turns,
                user_id,
                stream,
                started,
                stats,
                built.hits,
                built.assembled,
                reply,
                built.recall,
                release=release,
            )
            return self.last_turn
        except BaseException:  # no turn to end it: let the jobs go on now
            release()
            raise

    def _after_reply(self, user_id: int, hits: list[Hit]) -> Callable[[int | None], None]:
        """After the reply, off the time-to-first-token path: both turns become recallable and recall
        strengthens what the prompt held (not what the memory block left out). Off the record nothing reaches long-term memory, not even that something
        was recalled. When the embedder is not loaded yet (a first conversation), `memory.ready()` embeds
        them later."""

        def saved(reply_id: int | None) -> None:
            if not self.log.saved:
                return
            self.mark_presence(typed=True)  # in use: no check-in from upkeep elsewhere meanwhile
            if self.memory.embedder_loaded:
                self.memory.embed_messages([user_id] if reply_id is None else [user_id, reply_id])
            self.memory.reinforce(hits, self.now())

        return saved

    def recall(self, text: str) -> list[Hit]:
        """Recalled memories for `text`; when the memory file or index fails, the chat goes on without them."""
        try:
            if not message_table.has_recallable(self.store, self.session_id):
                return []
            return self.memory.search(
                text,
                now=self.now(),
                limit=self.settings.memory.recall_limit,
                # A branch does not recall its parents: their shared start is in the history, and what
                # followed the edited message is what the user chose to replace.
                exclude_session=self.log.recall_excluded(),
                persona=self.persona.name,
                separate=self.settings.persona.memory == "separate",
            )
        except Exception as error:
            if isinstance(error, ModelError) or not isinstance(error, (CompanionError, *SQL_ERRORS)):
                raise
            self.degraded = f"Recall is unavailable ({error}); replies go on without memories."
            return []

    def prompt_text(self) -> str:
        """The last turn's prompt exactly as the model got it (the prompt inspector: `--show-prompt`, and the
        app's key for it): persona, profile and threads, the memory block, the history, the message."""
        if not self.last_prompt:
            return ""
        return self.model.prompt_text(self.last_prompt)

    def context_usage(self) -> ContextUsage | None:
        """How full the model's context is, by part (tokens): persona, profile, memories, history. From the
        last turn's prompt, or the stable prefix alone before the first turn; None before the model loads."""
        if not self.model_loaded:
            return None
        profile_text = self.profile_text()
        memory = history = 0
        if self.last_turn is not None:
            budget = self.last_turn.assembled.budget
            memory = budget.memory
            history = budget.history + budget.user + self.last_turn.stats.completion_tokens
        return ContextUsage(
            persona=self.count(self.persona_text()),
            profile=self.count(profile_text) if profile_text else 0,
            memory=memory,
            history=history,
            n_ctx=self.model.n_ctx,
        )

    def ask(self, text: str, **options: Any) -> tuple[str, Turn]:
        turn = self.send(text, **options)
        return "".join(turn), turn

    def cancel(self) -> None:
        if self.last_turn is not None:
            self.last_turn.cancel()

    def close(self) -> None:
        if self._model is not None and self._owns_model:
            self._model.abort_jobs()  # a consolidation job mid-generation lets go at once
        if self._upkeep is not None:
            self._upkeep.stop()
            self._upkeep = None
        if self.busy:
            assert self.last_turn is not None
            self.last_turn.close()
        self.log.end()
        if self._model is not None and self._owns_model:
            self._model.close()
        self._model = None
        self.memory.close()
