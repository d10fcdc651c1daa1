"""The one interface the rest of companion uses to talk to a language model.

Both backends (local llama.cpp, remote OpenAI-compatible server) implement `ChatModel`. A face never touches
llama.cpp or HTTP directly: it streams a chat, counts tokens, asks for JSON that fits a schema, or cancels.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from companion.llm.reasoning import Parser, Part, StopMatcher

Thinking = Literal["auto", "off", "low", "high"]


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str
    name: str = ""  # who says it (the user's or the persona's name), for transcript prompts
    context: str = ""  # what rides with a user turn: the memory block it was sent with (quoted notes)

    @property
    def text(self) -> str:
        """The message as a chat template reads it: its context, then what was said."""
        return f"{self.context}\n\n{self.content}" if self.context else self.content


@dataclass
class GenerationOptions:
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    repeat_penalty: float = 1.1
    seed: int = -1
    # Where the answer is cut (a speaker's name starting a line, the memory block's header…): applied to the
    # answer only, never to the reasoning, which may quote anything.
    stop: list[str] = field(default_factory=list)
    # A GBNF grammar the reply must follow (llama.cpp only): forces a model's output, for tests and benchmarks.
    grammar: str = ""


@dataclass
class StreamStats:
    """What one generation cost; filled in as the stream runs, complete when it ends."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float = 0.0
    gen_tok_s: float = 0.0
    total_ms: float = 0.0
    finish_reason: str = ""  # "stop" | "length" | "cancelled" | "error"
    reasoning_ms: float = 0.0  # time the model spent writing reasoning before its answer


class _Plain:
    """The parser of a model that writes no reasoning (a base model's transcript): all of it is answer."""

    done = False
    thinking = False

    def feed(self, text: str) -> list[Part]:
        return [Part(text)] if text else []

    def finish(self) -> list[Part]:
        return []


class Stream:
    """The answer of a reply as it is written, piece by piece, with its reasoning and statistics beside it.

    A backend hands over what the model writes (raw text, or parts it already told apart, as a server's
    `reasoning_content`); the stream's `parser` tells reasoning from answer, `stops` (the template's
    end-of-turn markers) end either, `answer_stops` end the answer. Iterating yields answer text only: the
    reasoning is in `reasoning`, never in what a face shows as the reply, stores or sends back. `stats` is
    complete once iteration has ended (normally, by `cancel`, at a stop, or by an error).
    """

    def __init__(
        self,
        pieces: Iterator[str | Part],
        stats: StreamStats,
        cancel: threading.Event,
        *,
        parser: Parser | None = None,
        stops: list[str] | None = None,
        answer_stops: list[str] | None = None,
    ) -> None:
        self._pieces = pieces
        self.stats = stats
        self._cancel = cancel
        self._parser: Parser = parser or _Plain()
        self._reasoning_stop = StopMatcher(stops or [])
        self._answer_stop = StopMatcher([*(stops or []), *(answer_stops or [])])
        self._reasoning: list[str] = []
        self._answered = False
        self._started_reasoning: float | None = None
        self._answers = self._run()

    def __iter__(self) -> Iterator[str]:
        return self._answers

    @property
    def reasoning(self) -> str:
        """The reasoning written so far (shown folded while it streams; never the reply)."""
        return "".join(self._reasoning)

    @property
    def thinking(self) -> bool:
        """The model is writing reasoning and no answer yet."""
        return not self._answered and (self._parser.thinking or bool(self._reasoning))

    def _run(self) -> Iterator[str]:
        stopped = False
        try:
            for raw in self._pieces:
                parts = [raw] if isinstance(raw, Part) else self._parser.feed(raw)
                for part in parts:
                    text = self._take(part)
                    if text:
                        yield text
                    if self._reasoning_stop.stopped or self._answer_stop.stopped:
                        stopped = True
                        break
                if stopped or self._parser.done:
                    stopped = True
                    break
            else:
                for part in self._parser.finish():
                    text = self._take(part)
                    if text:
                        yield text
            # An answer that ends on the start of a stop (`\nAn` when the tokens ran out) ends before it.
            self._answer_stop.finish(keep=False)
            self._reasoning.append(self._reasoning_stop.finish())
        finally:
            closer = getattr(self._pieces, "close", None)
            if closer is not None:
                closer()  # the backend lets go of the model (a stop ends generation there too)
            if stopped:
                self.stats.finish_reason = "stop"
            if self._started_reasoning is not None and not self.stats.reasoning_ms:
                self.stats.reasoning_ms = (time.perf_counter() - self._started_reasoning) * 1000

    def _take(self, part: Part) -> str:
        if part.reasoning:
            if self._answered:  # reasoning after the answer began (a tool-call preamble): not shown
                return ""
            if self._started_reasoning is None:
                self._started_reasoning = time.perf_counter()
            self._reasoning.append(self._reasoning_stop.feed(part.text))
            return ""
        text = self._answer_stop.feed(part.text)
        if text and not self._answered:
            self._answered = True
            if self._started_reasoning is not None:
                self.stats.reasoning_ms = (time.perf_counter() - self._started_reasoning) * 1000
        return text

    def cancel(self) -> None:
        self._cancel.set()

    def text(self) -> str:
        return "".join(self)


class ChatTurns:
    """How many chat turns are under way, from a message's recall to its reply's last token. A background job
    on the same machine pauses between its steps while any is (`active`)."""

    def __init__(self) -> None:
        self.active = threading.Event()
        self._count = 0
        self._lock = threading.Lock()

    def hold(self) -> Callable[[], None]:
        with self._lock:
            self._count += 1
            self.active.set()
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                self._count -= 1
                if not self._count:
                    self.active.clear()

        return release


def no_hold() -> None:
    """What a model without local background jobs (a remote server) holds for a chat turn: nothing."""


class ChatModel(Protocol):
    """What every backend offers. Implementations: `llama.LlamaModel`, `remote.RemoteModel`."""

    name: str

    @property
    def n_ctx(self) -> int: ...

    @property
    def notice(self) -> str:
        """One sentence the faces show once when the model is not used as it asked (its chat template could
        not render the conversation and a fallback format is used), else ""."""
        ...

    @property
    def prompt_style(self) -> str:
        """ "chat" (the model's chat template, or the server's) or "transcript" (a base model continues a
        plain transcript: `Ana: …` / `Sam: …` lines)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def count_prompt_tokens(self, messages: list[ChatMessage]) -> int: ...

    def prompt_text(self, messages: list[ChatMessage]) -> str:
        """The prompt exactly as the model gets it (what `--show-prompt` prints): the text a local model reads,
        its chat template applied, or the messages a server is sent."""
        ...

    def stream(
        self,
        messages: list[ChatMessage],
        options: GenerationOptions,
        cancel: threading.Event | None = None,
    ) -> Stream: ...

    def complete_json(
        self, messages: list[ChatMessage], schema: dict[str, Any], options: GenerationOptions
    ) -> Any: ...

    def describe(self) -> dict[str, Any]: ...

    def for_jobs(self) -> ChatModel:
        """The model background jobs use: for a local model its own context over the same weights, so a job
        never disturbs the chat's; a chat turn pauses it."""
        ...

    def chat_turn(self) -> Callable[[], None]:
        """A chat turn begins (its recall, then its reply): a local model's background jobs pause at their next
        step until the returned release is called (calling it again does nothing)."""
        ...

    def abort_jobs(self) -> None:
        """Stop a background job's generation at its next token (the app is closing)."""
        ...

    def close(self) -> None: ...
