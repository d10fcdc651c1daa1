"""A `ChatModel` whose answers the test writes: logic that depends on what a model says (consolidation
decisions, threads, the profile, prompt layout, sessions) is tested without llama.cpp, in milliseconds.

    model = ScriptedModel(replies=["Hello!"], answers={"facts": [{"facts": [...]}], "action": [...]})

Chat replies are streamed word by word, in order (the last one repeats); a reply may reason first, as a
reasoning model does (`<think>…</think>` at its start), and the stream tells the two apart as it would for a
real model. Structured answers are keyed by the
first required property of the schema asked for (`summary`, `facts`, `action`, `traits`, `digest`): a list is
answered in order (the last one repeats), a callable is called with the prompt text. Every prompt is kept, so a
test can read exactly what the model was given.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from companion.errors import ModelError
from companion.llm.base import ChatMessage, ChatTurns, GenerationOptions, Stream, StreamStats
from companion.llm.reasoning import THINK

Answer = dict[str, Any] | Callable[[str], dict[str, Any]]


class ScriptedModel:
    def __init__(
        self,
        replies: list[str] | None = None,
        answers: dict[str, list[Answer] | Answer] | None = None,
        *,
        n_ctx: int = 4096,
        name: str = "scripted",
        prompt_style: str = "chat",
        delay: float = 0.0,
    ) -> None:
        """`delay`: seconds before each piece of a reply (a model that takes its time)."""
        self.name = name
        self.notice = ""
        self.prompt_style = prompt_style
        self.delay = delay
        self.replies = list(replies or ["Nice to hear from you."])
        self.answers = answers or {}
        self._n_ctx = n_ctx
        self.prompts: list[list[ChatMessage]] = []  # every chat prompt, as sent
        self.options: list[GenerationOptions] = []  # and the options each was sent with
        self.questions: list[tuple[str, str]] = []  # (schema key, prompt text) of every structured question
        self.closed = False
        self.aborted = False
        self.turns_held = ChatTurns()  # `active` while a chat turn is under way (its jobs would pause)
        self._used: dict[str, int] = {}

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + text.count("\n") + 1

    def prompt_text(self, messages: list[ChatMessage]) -> str:
        return "\n".join(f"<{m.role}>{m.text}" for m in messages)

    def count_prompt_tokens(self, messages: list[ChatMessage]) -> int:
        return sum(self.count_tokens(m.text) + 4 for m in messages)

    def stream(
        self, messages: list[ChatMessage], options: GenerationOptions, cancel: threading.Event | None = None
    ) -> Stream:
        cancel = cancel or threading.Event()
        self.prompts.append(list(messages))
        self.options.append(options)
        reply = self.replies[min(len(self.prompts) - 1, len(self.replies) - 1)]
        stats = StreamStats(prompt_tokens=self.count_prompt_tokens(messages))
        return Stream(
            self._pieces(reply, options, cancel, stats),
            stats,
            cancel,
            parser=THINK.parser(),
            answer_stops=options.stop,
        )

    def _pieces(
        self, reply: str, options: GenerationOptions, cancel: threading.Event, stats: StreamStats
    ) -> Iterator[str]:
        words = reply.split(" ")
        stats.finish_reason = "error"
        for number, word in enumerate(words[: options.max_tokens]):
            if self.delay:
                time.sleep(self.delay)
            stats.completion_tokens = number + 1
            yield word if number == 0 else " " + word
            if cancel.is_set():
                stats.finish_reason = "cancelled"
                return
        stats.finish_reason = "stop" if len(words) <= options.max_tokens else "length"

    def complete_json(
        self, messages: list[ChatMessage], schema: dict[str, Any], options: GenerationOptions
    ) -> Any:
        key = schema["required"][0]
        text = "\n".join(m.text for m in messages)
        self.questions.append((key, text))
        script = self.answers.get(key)
        if script is None:
            raise ModelError(f"The scripted model has no answer for '{key}'.")
        if isinstance(script, list):
            if not script:
                raise ModelError(f"The scripted model has no answer for '{key}'.")
            used = self._used.get(key, 0)
            self._used[key] = used + 1
            script = script[min(used, len(script) - 1)]
        return script(text) if callable(script) else script

    def asked(self, key: str) -> list[str]:
        """The prompts of the structured questions of one kind."""
        return [text for k, text in self.questions if k == key]

    def describe(self) -> dict[str, Any]:
        return {"backend": "scripted", "name": self.name, "n_ctx": self.n_ctx}

    def for_jobs(self) -> ScriptedModel:
        return self

    def abort_jobs(self) -> None:
        self.aborted = True

    def chat_turn(self) -> Callable[[], None]:
        return self.turns_held.hold()

    def close(self) -> None:
        self.closed = True
