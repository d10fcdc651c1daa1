"""The one interface the rest of companion uses to talk to a language model.

Both backends (local llama.cpp, remote OpenAI-compatible server) implement `ChatModel`. A face never touches
llama.cpp or HTTP directly: it streams a chat, counts tokens, asks for JSON that fits a schema, or cancels.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


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
    stop: list[str] = field(default_factory=list)


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


class Stream:
    """An iterator of text pieces with the generation's statistics beside it.

    `stats` is complete once iteration has ended (normally, by `cancel`, or by an error).
    """

    def __init__(self, pieces: Iterator[str], stats: StreamStats, cancel: threading.Event) -> None:
        self._pieces = pieces
        self.stats = stats
        self._cancel = cancel

    def __iter__(self) -> Iterator[str]:
        return self._pieces

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
    def prompt_style(self) -> str:
        """ "chat" (the model's chat template, or the server's) or "transcript" (a base model continues a
        plain transcript: `Ana: …` / `Sam: …` lines)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def count_prompt_tokens(self, messages: list[ChatMessage]) -> int: ...

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
