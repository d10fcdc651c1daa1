"""One reply being streamed (llm's `Response`): iterate it for text pieces. It stores itself through its
`Reply` — a draft every second while it is written, the reply when iteration ends or `close()` is called
(Esc, Ctrl+C), marked incomplete unless the model finished on its own."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from companion.conversation import Reply
from companion.errors import StorageError
from companion.llm.base import Stream, no_hold
from companion.llm.prompt import Assembled
from companion.memory.records import Hit
from companion.prompt_builder import Recalled

DRAFT_EVERY = 1.0  # seconds between saves of a reply being written


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
    reasoning_ms: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "ttft_ms": round(self.ttft_ms, 2),
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            # The share of the prompt llama.cpp already held from the turn before (its KV cache).
            "reused": round(self.cached_tokens / self.prompt_tokens, 3) if self.prompt_tokens else 0.0,
            "completion_tokens": self.completion_tokens,
            "gen_tok_s": round(self.gen_tok_s, 2),
            "retrieval_ms": round(self.retrieval_ms, 2),
            "reasoning_ms": round(self.reasoning_ms, 2),
        }


@dataclass
class Turn:
    number: int
    user_message_id: int
    stream: Stream
    started: float
    stats: TurnStats
    hits: list[Hit]
    assembled: Assembled
    reply: Reply
    recall: list[Recalled] = field(default_factory=list)  # every hit, and whether it reached the prompt
    release: Callable[[], None] = no_hold  # lets the model's background jobs go on (they pause for a turn)
    pieces: list[str] = field(default_factory=list)
    reply_id: int | None = None  # the stored reply (None until it is stored, and when there was no answer)
    incomplete: bool = False
    finished: bool = False
    _draft_saved: float = field(default_factory=time.monotonic)
    _finish_lock: threading.Lock = field(default_factory=threading.Lock)

    def __iter__(self) -> Iterator[str]:
        completed = False
        try:
            for piece in self.stream:
                if not self.pieces:
                    self.stats.ttft_ms = (time.perf_counter() - self.started) * 1000
                self.pieces.append(piece)
                if time.monotonic() - self._draft_saved >= DRAFT_EVERY:
                    self._save_draft()
                yield piece
            completed = True
        finally:
            if not completed:  # the reader stopped early (or the model failed): let go of the model too
                self._stop_stream()
            self._finish()

    @property
    def text(self) -> str:
        """What the model said so far, as it streamed."""
        return "".join(self.pieces)

    @property
    def reply_text(self) -> str:
        """The reply as it is kept (without a speaker's name the model began to write)."""
        return self.reply.clean(self.text)

    @property
    def reasoning(self) -> str:
        """What a reasoning model thought before its answer (shown folded; not the reply)."""
        return self.stream.reasoning

    @property
    def thinking(self) -> bool:
        """The model is writing reasoning and has not begun its answer."""
        return self.stream.thinking and not self.pieces

    @property
    def unanswered(self) -> bool:
        """The reply ended before any answer (stopped while the model was thinking, or cut where it began):
        nothing was stored."""
        return self.finished and self.reply_id is None

    def unanswered_note(self) -> str:
        """What the faces say of a reply that ended without an answer."""
        if self.reasoning.strip():
            return "stopped while thinking: nothing was said, so nothing was stored"
        return "no reply: the model wrote nothing that could be kept"

    @property
    def done(self) -> bool:
        return self.finished

    def cancel(self) -> None:
        self.stream.cancel()

    def close(self) -> None:
        """Stop generating (if still running) and store what was said so far."""
        if (
            not self._stop_stream()
        ):  # another thread is iterating (the app's worker): it stops at the next token
            deadline = time.monotonic() + 10
            while not self.finished and time.monotonic() < deadline:
                time.sleep(0.02)
        self._finish()

    def _save_draft(self) -> None:
        """A draft that cannot be saved is no reason to stop the reply."""
        self._draft_saved = time.monotonic()
        with contextlib.suppress(StorageError):
            self.reply.save_draft(self.text)

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
        self.release()  # the reply is over: background jobs go on (before the reply is stored: it may wait)
        with self._finish_lock:  # the streaming thread and a closing app may both get here
            if self.finished:
                return
            self.finished = True
            s = self.stream.stats
            self.stats.prompt_tokens = s.prompt_tokens
            self.stats.cached_tokens = s.cached_tokens
            self.stats.completion_tokens = s.completion_tokens
            self.stats.gen_tok_s = s.gen_tok_s
            self.stats.reasoning_ms = s.reasoning_ms
            self.incomplete = s.finish_reason not in ("stop", "length")
            self.reply_id = self.reply.save_reply(
                self.text, incomplete=self.incomplete, tokens=s.completion_tokens, reasoning=self.reasoning
            )
