"""One chat turn, in one place. The TUI, `companion chat` and `companion ask` all go through `Engine.send`.

The data's way: store the user message (committed) → recall memories → assemble the prompt (stable prefix
first) → stream the reply → store it (marked incomplete if it was stopped or broke) → reinforce what was
recalled. Importable without Textual; the model loads lazily on the first turn.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from companion import config as config_mod
from companion.config import Settings
from companion.errors import CompanionError, ModelError, StorageError
from companion.llm.base import ChatMessage, ChatModel, GenerationOptions, Stream
from companion.llm.prompt import Assembled, MemoryItem, assemble, memory_block, quote
from companion.memory.encryption import open_memory
from companion.memory.forgetting import parse_time
from companion.memory.retrieve import Hit
from companion.memory.store import Message, utcnow
from companion.paths import Paths, get_paths
from companion.persona.card import Card


@dataclass
class TurnStats:
    turn: int
    ttft_ms: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    gen_tok_s: float = 0.0
    retrieval_ms: float = 0.0
    assembly_ms: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "ttft_ms": round(self.ttft_ms, 2),
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "gen_tok_s": round(self.gen_tok_s, 2),
            "retrieval_ms": round(self.retrieval_ms, 2),
        }


DRAFT_EVERY = 1.0  # seconds between saves of a reply being written


@dataclass
class Turn:
    """A reply being streamed. Iterate it for text pieces; the reply is stored when iteration ends or `close()`
    is called (Ctrl+C, Esc), marked incomplete unless the model finished on its own."""

    engine: Engine
    number: int
    user_message_id: int
    stream: Stream
    started: float
    stats: TurnStats
    hits: list[Hit]
    assembled: Assembled
    pieces: list[str] = field(default_factory=list)
    reply_id: int | None = None
    incomplete: bool = False
    # The reply as saved so far, marked incomplete, so even a killed process keeps what was said.
    draft_id: int | None = None
    _draft_saved: float = field(default_factory=time.monotonic)

    def __iter__(self) -> Iterator[str]:
        completed = False
        try:
            for piece in self.stream:
                if not self.pieces:
                    self.stats.ttft_ms = (time.perf_counter() - self.started) * 1000
                self.pieces.append(piece)
                if time.monotonic() - self._draft_saved >= DRAFT_EVERY:
                    self.engine._save_draft(self)
                yield piece
            completed = True
        finally:
            if not completed:  # the reader stopped early (or the model failed): let go of the model too
                self._stop_stream()
            self._finish()

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def cancel(self) -> None:
        self.stream.cancel()

    def close(self) -> None:
        """Stop generating (if still running) and store what was said so far."""
        if (
            not self._stop_stream()
        ):  # another thread is iterating (the app's worker): it stops at the next token
            deadline = time.monotonic() + 10
            while self.reply_id is None and time.monotonic() < deadline:
                time.sleep(0.02)
        self._finish()

    def _stop_stream(self) -> bool:
        """Cancel the model's stream and close its generator, which lets go of the model. False when another
        thread is iterating it (it then stops at its next token by itself)."""
        self.stream.cancel()
        closer = getattr(iter(self.stream), "close", None)
        if closer:
            try:
                closer()
            except ValueError:
                return False
        return True

    def _finish(self) -> None:
        with self.engine._finish_lock:  # the streaming thread and a closing app may both get here
            if self.reply_id is None:
                self._store()

    def _store(self) -> None:
        s = self.stream.stats
        self.stats.prompt_tokens = s.prompt_tokens
        self.stats.cached_tokens = s.cached_tokens
        self.stats.completion_tokens = s.completion_tokens
        self.stats.gen_tok_s = s.gen_tok_s
        self.incomplete = s.finish_reason not in ("stop", "length")
        self.reply_id = self.engine._store_reply(self)


class Engine:
    """A conversation with the companion: one session of the memory file and one (lazily loaded) model."""

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
    ) -> None:
        """`ask` prompts for the memory file's passphrase when it is encrypted with one (None: only
        COMPANION_PASSPHRASE)."""
        self.paths = (paths or get_paths()).ensure()
        self.settings = settings or config_mod.load(self.paths)
        self.store, self.memory = open_memory(self.paths, self.settings.memory, ask)
        self._model = model
        self._model_name = model_name
        self._lock = threading.Lock()
        self._finish_lock = threading.Lock()
        self._persona: Card | None = None
        self.now = now or (lambda: datetime.now(UTC))
        self.current: Turn | None = None
        self.last_turn: Turn | None = None
        # Off the record: the conversation lives in this list only and never touches the memory file.
        self.off_record = off_record
        self._off_log: list[Message] = []
        self._greeting: Message | None = None
        # Why the conversation is no longer being saved (the memory file failed), for the faces to show.
        self.degraded: str | None = None
        self.session_id = 0 if off_record else (session_id or self._open_session())
        self.turns = 0
        self.fold_start = 0
        # The memory block each user turn of this session was sent with, and what it recalled (kind, id).
        self._blocks: dict[int, tuple[str, set[tuple[str, int]]]] = {}
        self._token_counts: dict[str, int] = {}
        self._upkeep: Any = None
        self._profile: str | None = None
        self._lore_shown: dict[int, list[MemoryItem]] = {}

    # -- model ----------------------------------------------------------------------------------------------
    @property
    def model_loaded(self) -> bool:
        return self._model is not None

    def load_model(self) -> ChatModel:
        with self._lock:
            if self._model is None:
                from companion.llm.models import open_model

                self._model = open_model(self.settings, self.paths, self._model_name)
            return self._model

    @property
    def model(self) -> ChatModel:
        return self.load_model()

    def reload_model(self) -> ChatModel:
        """Close the model and open the configured one (after the user switched models or their settings)."""
        if self.busy:
            raise CompanionError("A reply is still being written; stop it first (Esc).")
        with self._lock:
            if self._model is not None:
                self._model.close()
                self._model = None
            self._model_name = None
            self._token_counts.clear()
        return self.load_model()

    def settings_changed(self, keys: list[str]) -> None:
        """Apply changed settings that live in loaded objects (the model is reloaded by `reload_model`)."""
        if any(k.startswith(("persona.", "user.")) for k in keys):
            self._persona = None
        if "memory.tau_days" in keys:
            self.memory.tau_days = self.settings.memory.tau_days
            self.memory.reset_retriever()
        if self._upkeep is not None:
            self._upkeep.options.update(
                archive_below=self.settings.memory.archive_below,
                idle_minutes=self.settings.memory.session_idle_minutes,
                user=self.settings.user.name,
            )

    def encrypt_memory(self, ask: Callable[[str], str] | None = None, use_passphrase: bool = False) -> str:
        """Encrypt the memory file in place (the welcome screen's opt-in) and go on with the encrypted file."""
        from companion.memory import encryption

        if self._upkeep is not None or self.busy:
            raise CompanionError("Encrypt while nothing else runs: quit and use `companion memory encrypt`.")
        self.memory.close()
        self.store.close()
        try:
            described = encryption.encrypt(self.paths, ask, use_passphrase).describe()
        finally:
            self.store, self.memory = encryption.open_memory(self.paths, self.settings.memory, ask)
        return described

    def refresh_profile(self) -> None:
        """Read the profile again for the next prompt (after the user vetoed a line)."""
        self._profile = None

    def prepare(self) -> None:
        """Load what the first turn needs (model, embedder, index) ahead of time, e.g. while a UI starts."""
        self.load_model()
        self.memory.ready()

    def start_upkeep(self) -> None:
        """Run memory upkeep (forgetting, index) in the background while the app is open."""
        from companion.memory.scheduler import Scheduler

        if self._upkeep is None:
            self._upkeep = Scheduler(self.memory, self.upkeep_options())
            self._upkeep.start()

    def upkeep_options(self) -> dict[str, Any]:
        """What the upkeep jobs need: the shared model (a chat turn goes first), who the user is, this session."""
        return {
            "archive_below": self.settings.memory.archive_below,
            "archive_messages": self.settings.memory.archive_messages,
            "idle_minutes": self.settings.memory.session_idle_minutes,
            "model": lambda: self.model,
            "wait_turn": self._wait_for_turn,
            "user": self.settings.user.name,
            "exclude_session": self.session_id,
        }

    def _wait_for_turn(self) -> None:
        while self.current is not None and self.current.reply_id is None:
            time.sleep(0.1)

    def profile_text(self) -> str:
        """The user's profile and the open threads that are due, for the stable prefix of the prompt.

        Read once per conversation, so the prefix (and llama.cpp's KV cache) stays the same turn after turn."""
        if self._profile is None:
            from companion.memory.consolidate import current_profile, profile_text

            lines = profile_text(current_profile(self.store)[1])
            due = self.store.conn.execute(
                "select text, event_time from memories where thread = 'open' and archived = 0 and valid_to is null"
                " and event_time <= ? order by event_time limit 5",
                (self.now().isoformat(),),
            ).fetchall()
            if due:
                lines += (
                    "\n[Open threads: things that were coming up for the user; you may ask how they went:]\n"
                )
                lines += "\n".join(f"- {text} ({(when or '')[:10]})" for text, when in due)
            self._profile = lines.strip()
        return self._profile

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

    # -- a turn ---------------------------------------------------------------------------------------------
    @property
    def persona(self) -> Card:
        """The persona this conversation is with (the default companion on first use)."""
        if self._persona is None:
            from companion.persona import library

            library.ensure_default(self.store)
            self._persona = library.get(self.store, self.settings.persona.name)
        return self._persona

    def greet(self) -> str | None:
        """The persona's first message, said once at the start of a new conversation (the faces call it)."""
        from companion.persona.library import fill

        greeting = self.persona.first_mes.strip()
        if not greeting or self.messages():
            return None
        text = fill(
            greeting, self.persona.name, self.settings.user.name or "there"
        )  # "Hi there" without a name
        # Kept aside until the user answers: opening the app and leaving again leaves nothing in the file.
        self._greeting = Message(0, self.session_id, "assistant", self.persona.name, text, utcnow(), False)
        return text

    # -- the session ----------------------------------------------------------------------------------------
    def messages(self) -> list[Message]:
        """This conversation as it reads: a branch includes its parent's turns before the branch point."""
        said = list(self._off_log) if self.off_record else self.store.conversation(self.session_id)
        return [self._greeting, *said] if self._greeting is not None else said

    def _store_greeting(self) -> None:
        if self._greeting is not None:
            greeting, self._greeting = self._greeting, None
            self._add_message(
                "assistant", greeting.text, speaker=greeting.speaker, created_at=greeting.created_at
            )

    def _add_message(self, role: str, text: str, **fields: Any) -> int:
        if not self.off_record:
            return self.store.add_message(self.session_id, role, text, **fields)
        message = Message(
            id=-(len(self._off_log) + 1),
            session_id=0,
            role=role,
            speaker=fields.get("speaker", ""),
            text=text,
            created_at=utcnow(),
            incomplete=bool(fields.get("incomplete", False)),
            token_count=fields.get("token_count"),
        )
        self._off_log.append(message)
        return message.id

    def new_session(
        self, *, off_record: bool = False, parent_id: int | None = None, branch_at: int | None = None
    ) -> int:
        """End this conversation (consolidation may take it) and start another. Off the record, nothing of the
        new conversation is written to the memory file, and it is gone when it ends."""
        self._end_current()
        if self.current is not None and self.current.reply_id is None:
            self.current.close()
        self.off_record = off_record
        self._off_log = []
        self.session_id = 0 if off_record else self._open_session(parent_id, branch_at)
        self.turns = 0
        self.fold_start = 0
        self.current = self.last_turn = None
        if self._upkeep is not None:
            self._upkeep.options["exclude_session"] = self.session_id
        return self.session_id

    def _open_session(self, parent_id: int | None = None, branch_at: int | None = None) -> int:
        return self.store.new_session(
            persona=self.persona.name,
            parent_id=parent_id,
            branch_at=branch_at,
            started_at=self.now().isoformat(timespec="milliseconds"),
        )

    def _end_current(self) -> None:
        self._greeting = None
        if self.off_record:
            self._off_log = []
        elif self.turns:  # the conversation is over: consolidation may take it from here
            self.store.end_session(self.session_id)
        else:  # nothing was said: no empty session is left behind
            self.store.drop_session_if_empty(self.session_id)

    def regenerate(self, **options: Any) -> Turn:
        """Answer the last user message again. The earlier reply stays in the file, marked replaced."""
        conversation = self.messages()
        if self.busy:
            raise CompanionError("A reply is still being written; stop it first (Esc).")
        end = len(conversation)
        while (
            end
            and conversation[end - 1].role == "assistant"
            and conversation[end - 1].session_id == self.session_id
        ):
            end -= 1
        if not end or conversation[end - 1].role != "user":
            raise CompanionError("There is no reply to regenerate yet; send a message first.")
        for old in conversation[end:]:
            if self.off_record:
                self._off_log = [m for m in self._off_log if m.id != old.id]
            else:
                self.store.mark_replaced(old.id)
        question = conversation[end - 1]
        return self._respond(question.text, question.id, conversation[: end - 1], **options)

    def branch(self, message_id: int, text: str, **options: Any) -> Turn:
        """Edit an earlier user message: the conversation continues from there in a new branch (a new
        session that shares the turns before it); the old branch is kept as it was."""
        if self.busy:
            raise CompanionError("A reply is still being written; stop it first (Esc).")
        conversation = self.messages()
        target = next((m for m in conversation if m.id == message_id), None)
        if target is None or target.role != "user":
            raise CompanionError("Only your own messages in this conversation can be edited.")
        if self.off_record:
            self._off_log = self._off_log[: self._off_log.index(target)]
            self.fold_start = 0
            return self.send(text, **options)
        self.new_session(parent_id=self.session_id, branch_at=message_id)
        return self.send(text, **options)

    @property
    def busy(self) -> bool:
        return self.current is not None and self.current.reply_id is None

    def persona_text(self) -> str:
        from companion.persona.library import system_text

        return system_text(self.persona, self.settings.user.name)

    def lore(self, history: list[ChatMessage], text: str) -> list[MemoryItem]:
        """Lorebook entries the last few turns call up, within the book's budget."""
        from companion.persona.library import fill
        from companion.persona.lorebook import triggered

        recent = "\n".join([*(m.content for m in history[-4:]), text])
        entries = triggered(self.persona.character_book, recent, self._count)
        user = self.settings.user.name or "the user"
        return [MemoryItem(fill(entry, self.persona.name, user), None, "lore") for entry in entries]

    def history(self, conversation: list[Message] | None = None) -> tuple[list[int], list[ChatMessage]]:
        """This session's turns as the model saw them: a user turn keeps the memory block it was sent with, so
        the prompt of turn N starts exactly like turn N-1's prompt plus its reply (the KV cache stays warm)."""
        ids, messages = [], []
        for m in self.messages() if conversation is None else conversation:
            if m.role not in ("user", "assistant") or not m.text.strip():
                continue
            block = self._blocks.get(m.id)
            ids.append(m.id)
            messages.append(ChatMessage(m.role, f"{block[0]}\n\n{m.text}" if block else m.text))
        return ids, messages

    def _count(self, text: str) -> int:
        """Token counts are cached: the same history is measured again every turn."""
        count = self._token_counts.get(text)
        if count is None:
            count = self._token_counts[text] = self.model.count_tokens(text)
        return count

    def send(self, text: str, **options: Any) -> Turn:
        """Store the user's message (committed), then start the reply. Iterate the returned Turn."""
        text = text.strip()
        if not text:
            raise CompanionError("The message is empty; type something to say.")
        if self.busy:
            raise CompanionError("A reply is still being written; stop it first (Esc).")
        self.model  # noqa: B018 - a model that cannot load fails before the message is stored
        try:
            self._store_greeting()
            conversation = self.messages()
            user_id = self._add_message("user", text, speaker=self.settings.user.name)
        except StorageError as error:
            if self.off_record:
                raise
            # The memory file cannot take it (full disk, read-only, locked): the conversation goes on in memory
            # only, as off the record does, and the faces say so. Nothing already saved is touched.
            self.degraded = f"{error} The conversation goes on without being saved."
            self._off_log = self.messages()
            self._greeting = None
            self.off_record = True
            return self.send(text, **options)
        return self._respond(text, user_id, conversation, **options)

    def _respond(self, text: str, user_id: int, conversation: list[Message], **options: Any) -> Turn:
        """Recall, assemble and start streaming the reply to `text` (already stored as `user_id`), after the
        turns in `conversation`."""
        started = time.perf_counter()
        model = self.model
        history_ids, history = self.history(conversation)
        self.turns += 1
        stats = TurnStats(turn=self.turns)

        t0 = time.perf_counter()
        hits: list[Hit] = []
        if self.settings.memory.recall_limit > 0:
            hits = self._recall(text)
            # What an earlier turn of the visible history already recalled is in the prompt, and a turn of the
            # history itself (a branch's shared start) is there already: not again.
            shown = {
                key for mid in history_ids[self.fold_start :] for key in self._blocks.get(mid, ("", set()))[1]
            }
            shown |= {("message", mid) for mid in history_ids}
            hits = [h for h in hits if (h.kind, h.id) not in shown]
        stats.retrieval_ms = (time.perf_counter() - t0) * 1000

        t1 = time.perf_counter()
        now = self.now()
        lore = self.lore(history, text)
        shown_lore = {
            item.text for mid in history_ids[self.fold_start :] for item in self._lore_shown.get(mid, [])
        }
        lore = [item for item in lore if item.text not in shown_lore]
        hits = [h for h in hits if not (h.kind == "lore" and h.text in {item.text for item in lore})]
        items = lore + [
            MemoryItem(self._recalled_text(h), None if h.kind == "lore" else parse_time(h.time), h.kind)
            for h in hits
        ]
        block = memory_block(items, now, self._count, self.settings.memory.block_tokens)
        opts = self.options(**options)
        assembled = assemble(
            persona=self.persona_text(),
            profile=self.profile_text(),
            history=history,
            memory=block,
            user=text,
            n_ctx=model.n_ctx,
            reply_tokens=opts.max_tokens,
            count=self._count,
            fold_start=self.fold_start,
        )
        self.fold_start = assembled.fold_start
        if block and assembled.messages[-1].content.startswith(block):
            self._lore_shown[user_id] = [item for item in lore if f'"{quote(item.text)}"' in block]
            self._blocks[user_id] = (
                block,
                {
                    (h.kind, h.id)
                    for h, item in zip(hits, items[len(lore) :], strict=True)
                    if f'"{quote(item.text)}"' in block
                },
            )
        stats.assembly_ms = (time.perf_counter() - t1) * 1000
        cancel = threading.Event()
        stream = model.stream(assembled.messages, opts, cancel)
        turn = Turn(self, self.turns, user_id, stream, started, stats, hits, assembled)
        self.current = self.last_turn = turn
        return turn

    def context_usage(self) -> dict[str, int]:
        """How full the model's context is, by part (tokens): persona, profile, memories, history. From the
        last turn's prompt, or the stable prefix alone before the first turn."""
        if not self.model_loaded:
            return {}
        profile_text = self.profile_text()
        persona = self._count(self.persona_text())
        profile = self._count(profile_text) if profile_text else 0
        usage = {"persona": persona, "profile": profile, "memory": 0, "history": 0, "n_ctx": self.model.n_ctx}
        if self.last_turn is not None:
            budget = self.last_turn.assembled.budget
            usage["memory"] = budget.get("memory", 0)
            usage["history"] = (
                budget.get("history", 0) + budget.get("user", 0) + self.last_turn.stats.completion_tokens
            )
        return usage

    def _recall(self, text: str) -> list[Hit]:
        """Recalled memories for `text`; when the memory file or index fails, the chat goes on without them."""
        from companion.memory.store import SQL_ERRORS

        try:
            if not self._has_memories():
                return []
            return self.memory.search(
                text,
                now=self.now(),
                limit=self.settings.memory.recall_limit,
                # A branch does not recall its parents: their shared start is in the history, and what
                # followed the edited message is what the user chose to replace.
                exclude_session=self.store.lineage(self.session_id) if self.session_id else None,
                persona=self.persona.name,
                separate=self.settings.persona.memory == "separate",
            )
        except Exception as error:
            if isinstance(error, ModelError) or not isinstance(error, (CompanionError, *SQL_ERRORS)):
                raise
            self.degraded = f"Recall is unavailable ({error}); replies go on without memories."
            return []

    def _recalled_text(self, hit: Hit) -> str:
        """A recalled message comes with the turn before it, so the model sees what it answered."""
        if hit.kind != "message":
            return hit.text
        lines = [f"{m['speaker'] or m['role']}: {m['text']}" for m in self.memory.neighbours(hit.id, 1, 0)]
        return " / ".join([*lines, f"{hit.speaker or hit.role}: {hit.text}"])

    def _has_memories(self) -> bool:
        """Anything to recall outside this conversation? (Saves loading the embedder on a first chat.)"""
        return bool(
            self.store.scalar(
                "select exists(select 1 from messages where session_id != ? and archived = 0)"
                " or exists(select 1 from memories)",
                (self.session_id,),
            )
        )

    def ask(self, text: str, **options: Any) -> tuple[str, Turn]:
        turn = self.send(text, **options)
        return "".join(turn), turn

    def cancel(self) -> None:
        if self.current is not None:
            self.current.cancel()

    def _save_draft(self, turn: Turn) -> None:
        """Save the reply so far (marked incomplete): a crash mid-reply keeps what was already said. A draft
        that cannot be saved is no reason to stop the reply."""
        turn._draft_saved = time.monotonic()
        if self.off_record or not turn.text.strip():
            return
        with contextlib.suppress(StorageError):
            if turn.draft_id is None:
                turn.draft_id = self.store.add_message(
                    self.session_id, "assistant", turn.text.strip(), speaker="companion", incomplete=True
                )
            else:
                self.store.update_message(turn.draft_id, turn.text.strip(), incomplete=True)

    def _store_reply(self, turn: Turn) -> int:
        model = getattr(self._model, "name", None)
        tokens = turn.stats.completion_tokens
        if turn.draft_id is not None and not self.off_record:
            reply_id = turn.draft_id
            self.store.update_message(
                reply_id, turn.text.strip(), incomplete=turn.incomplete, token_count=tokens, model=model
            )
        else:
            reply_id = self._add_message(
                "assistant",
                turn.text.strip(),
                speaker="companion",
                incomplete=turn.incomplete,
                token_count=tokens,
                model=model,
            )
        if self.off_record:  # nothing reaches long-term memory, not even that something was recalled
            return reply_id
        # After the reply, off the time-to-first-token path: both turns become recallable, recall strengthens.
        # When the embedder is not loaded yet (a first conversation), `memory.ready()` embeds them later.
        if self.memory.embedder_loaded:
            self.memory.embed_messages([turn.user_message_id, reply_id])
        self.memory.reinforce(turn.hits, self.now())
        return reply_id

    def close(self) -> None:
        if self._model is not None and hasattr(self._model, "abort_jobs"):
            self._model.abort_jobs()  # a consolidation job mid-generation lets go at once
        if self._upkeep is not None:
            self._upkeep.stop()
            self._upkeep = None
        if self.current is not None and self.current.reply_id is None:
            self.current.close()
        self._end_current()
        if self._model is not None:
            self._model.close()
            self._model = None
        self.memory.close()
        self.store.close()
