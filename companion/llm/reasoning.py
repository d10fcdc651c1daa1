"""Reasoning is its own part of a reply: one parser per format turns what a model writes into answer and
reasoning parts.

A reasoning model writes its private thoughts before its answer, in a format of its family: `<think>…</think>`
(Qwen3, QwQ, DeepSeek-R1, GLM, Nemotron, Kimi, MiniMax…; sometimes the prompt already opened `<think>`),
gpt-oss's harmony channels (`<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final
<|message|>…<|return|>`), Gemma 4's thought channel (`<|channel>thought …<channel|>`), Apertus' inner tags
(`<|inner_prefix|>…<|inner_suffix|>`), granite's `<think>…</think><response>…</response>`. Which one a model
uses is found from its chat template (`templates.TemplateProfile`); a remote server streams reasoning as its
own field or inline. Only the answer is the reply: shown, stored, embedded, recalled, sent back. The parsers
work on text as it streams: a marker split over two pieces is held back until it is whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Part:
    """A piece of what a model wrote: answer text, or reasoning text (`reasoning=True`)."""

    text: str
    reasoning: bool = False


def _partial_suffix(text: str, markers: Iterable[str]) -> int:
    """How many characters at the end of `text` could be the start of one of `markers` (held back until the
    next piece says whether it is one)."""
    longest = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), longest, -1):
            if text.endswith(marker[:size]):
                longest = size
                break
    return longest


class StopMatcher:
    """Stop strings over a stream of text: what may be shown now, and whether a stop was reached (the text
    before it is kept, the stop and what follows are not)."""

    def __init__(self, stops: Iterable[str]) -> None:
        self.stops = [s for s in dict.fromkeys(stops) if s]
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped or not text:
            return ""
        if not self.stops:
            return text
        held = self._held + text
        first = min((i for i in (held.find(s) for s in self.stops) if i >= 0), default=-1)
        if first >= 0:
            self.stopped = True
            self._held = ""
            return held[:first]
        keep = _partial_suffix(held, self.stops)
        self._held = held[len(held) - keep :] if keep else ""
        return held[: len(held) - keep]

    def finish(self, keep: bool = True) -> str:
        """The text held back at the end of the stream: it was not a stop after all (`keep`), or it was the
        start of one the stream ended in (a speaker's name cut short by the token limit: not kept)."""
        held, self._held = ("" if self.stopped or not keep else self._held), ""
        return held


class Parser(Protocol):
    """Turns a reply's raw text, piece by piece, into answer and reasoning parts."""

    @property
    def done(self) -> bool:
        """The format says the reply is over (harmony's `<|return|>`): generation may stop."""
        ...

    @property
    def thinking(self) -> bool:
        """The model is writing reasoning now."""
        ...

    def feed(self, text: str) -> list[Part]: ...

    def finish(self) -> list[Part]: ...


class ReasoningFormat(Protocol):
    @property
    def name(self) -> str: ...

    def parser(self, started: bool = False) -> Parser: ...

    def describe(self) -> str: ...

    def markers(self) -> list[str]:
        """The marker texts the parser reads (a model's control tokens must be shown as text for them)."""
        ...


def _parts(*parts: Part) -> list[Part]:
    return [p for p in parts if p.text]


@dataclass
class TagParser:
    """`open` reasoning `close` answer, with the open marker at the start of the reply (or already written by
    the prompt: `started`). Text that does not start with the open marker is all answer."""

    open: str
    close: str
    started: bool = False
    answer_open: str = ""
    answer_close: str = ""
    _state: str = field(default="start", init=False)
    _held: str = field(default="", init=False)
    _fresh: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.started:
            self._state, self._fresh = "reasoning", True

    @property
    def done(self) -> bool:
        return False

    @property
    def thinking(self) -> bool:
        return self._state == "reasoning"

    def feed(self, text: str) -> list[Part]:
        self._held += text
        out: list[Part] = []
        while True:
            step = self._step()
            if step is None:
                return out
            out += step

    def _step(self) -> list[Part] | None:
        """One move of the state machine over the held text; None when it must wait for more."""
        held = self._held
        if self._state == "start":
            lead = held.lstrip()
            if not lead:
                return None
            if lead.startswith(self.open):
                self._held = lead[len(self.open) :]
                self._state = "reasoning"
                return []
            if self.open.startswith(lead):
                return None  # maybe the open marker, not yet whole
            self._state = "answer_start"
            return []
        if self._state == "reasoning":
            if self._fresh:  # the prompt opened the reasoning; the model may write the open marker again
                lead = held.lstrip()
                if not lead or (self.open.startswith(lead) and lead != self.open):
                    return None
                self._fresh = False
                if lead.startswith(self.open):
                    self._held = held = lead[len(self.open) :]
            at = held.find(self.close)
            if at >= 0:
                self._held = held[at + len(self.close) :]
                self._state = "answer_start"
                return _parts(Part(held[:at], True))
            keep = _partial_suffix(held, [self.close])
            self._held = held[len(held) - keep :] if keep else ""
            return _parts(Part(held[: len(held) - keep], True)) or None
        if self._state == "answer_start":  # the answer's leading whitespace and wrapper are not part of it
            lead = held.lstrip()
            if not lead:
                self._held = ""
                return None
            if self.answer_open and lead.startswith(self.answer_open):
                lead = lead[len(self.answer_open) :].lstrip()
            elif self.answer_open and self.answer_open.startswith(lead):
                return None
            self._held = lead
            self._state = "answer"
            return []
        # answer
        if not held:
            return None
        if self.answer_close:
            held = held.replace(self.answer_close, "")
            keep = _partial_suffix(held, [self.answer_close])
            self._held = held[len(held) - keep :] if keep else ""
            emitted = held[: len(held) - keep]
        else:
            self._held, emitted = "", held
        return _parts(Part(emitted)) or None

    def finish(self) -> list[Part]:
        held, self._held = self._held, ""
        if self._state == "reasoning":
            return _parts(Part(held, True))
        if self._state == "start":
            return _parts(Part(held.strip()))
        if self._state == "answer_start":
            return _parts(Part(held.lstrip()))
        return _parts(Part(held))


@dataclass(frozen=True)
class TagFormat:
    """Reasoning between two markers at the start of the reply."""

    open: str
    close: str
    answer_open: str = ""
    answer_close: str = ""
    name: str = "tags"

    def parser(self, started: bool = False) -> Parser:
        return TagParser(self.open, self.close, started, self.answer_open, self.answer_close)

    def describe(self) -> str:
        wrapper = f", answer in {self.answer_open}…{self.answer_close}" if self.answer_open else ""
        return f"{self.open}…{self.close}{wrapper}"

    def markers(self) -> list[str]:
        return [m for m in (self.open, self.close, self.answer_open, self.answer_close) if m]


HARMONY_MARKERS = ("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>")


@dataclass
class HarmonyParser:
    """gpt-oss's harmony format: messages on channels (analysis and commentary are reasoning, final is the
    answer). `<|end|>` closes one message, not the reply; `<|return|>` / `<|call|>` end the reply."""

    _state: str = field(default="start", init=False)  # start | header | body | between | done
    _held: str = field(default="", init=False)
    _reasoning: bool = field(default=True, init=False)

    @property
    def done(self) -> bool:
        return self._state == "done"

    @property
    def thinking(self) -> bool:
        return self._state in ("header", "between") or (self._state == "body" and self._reasoning)

    def feed(self, text: str) -> list[Part]:
        if self._state == "done":
            return []
        self._held += text
        out: list[Part] = []
        while self._state != "done":
            step = self._step()
            if step is None:
                break
            out += step
        return out

    def _step(self) -> list[Part] | None:
        held = self._held
        if self._state == "start":
            lead = held.lstrip()
            if not lead:
                return None
            for opener in ("<|channel|>", "<|start|>"):
                if lead.startswith(opener) or opener.startswith(lead):
                    if not lead.startswith(opener):
                        return None
                    self._state = "header"
                    self._held = lead
                    return []
            self._state, self._reasoning = "body", False  # no channel at all: a plain answer
            return []
        if self._state in ("header", "between"):
            at = held.find("<|message|>")
            if at < 0:
                for ender in ("<|return|>", "<|call|>"):
                    if ender in held:
                        self._state = "done"
                        return []
                if "<|start|>user" in held or "<|start|>system" in held:
                    self._state = "done"
                    return []
                return None
            header = held[:at]
            channel = header.split("<|channel|>")[-1].split("<|")[0].strip().split(" ")[0]
            self._reasoning = channel != "final"
            self._held = held[at + len("<|message|>") :]
            self._state = "body"
            return []
        # body
        ends = [(held.find(m), m) for m in ("<|end|>", "<|return|>", "<|call|>", "<|start|>")]
        found = [(i, m) for i, m in ends if i >= 0]
        if found:
            at, marker = min(found)
            body = held[:at]
            if marker == "<|end|>":
                self._held = held[at + len(marker) :]
                self._state = "between"
            elif marker == "<|start|>":
                self._held = held[at:]
                self._state = "between"
            else:
                self._held = ""
                self._state = "done"
            return _parts(Part(body, self._reasoning))
        keep = _partial_suffix(held, HARMONY_MARKERS)
        self._held = held[len(held) - keep :] if keep else ""
        emitted = held[: len(held) - keep]
        return _parts(Part(emitted, self._reasoning)) or None

    def finish(self) -> list[Part]:
        held, self._held = self._held, ""
        if self._state == "body":
            return _parts(Part(held, self._reasoning))
        if self._state == "start":
            return _parts(Part(held.strip()))
        return []


@dataclass(frozen=True)
class HarmonyFormat:
    name: str = "harmony"

    def parser(self, started: bool = False) -> Parser:
        return HarmonyParser()

    def describe(self) -> str:
        return "harmony channels (analysis / commentary / final)"

    def markers(self) -> list[str]:
        return list(HARMONY_MARKERS)


# The think tags most reasoning models use; also the default for a template that names no markers (a model
# that never writes them costs nothing: a reply that does not start with `<think>` is all answer).
THINK = TagFormat("<think>", "</think>", name="think")
HARMONY = HarmonyFormat()

# Marker pairs known by family, for templates that name their markers without rendering reasoning.
KNOWN_TAGS: list[TagFormat] = [
    TagFormat("<|channel>thought", "<channel|>", name="thought channel"),
    TagFormat("<|inner_prefix|>", "<|inner_suffix|>", name="inner tags"),
    TagFormat("<seed:think>", "</seed:think>", name="seed think"),
    THINK,
]


def split_parts(parts: Iterable[Part]) -> tuple[str, str]:
    """(answer, reasoning) of a whole reply."""
    answer: list[str] = []
    reasoning: list[str] = []
    for part in parts:
        (reasoning if part.reasoning else answer).append(part.text)
    return "".join(answer), "".join(reasoning)


def parse_whole(fmt: ReasoningFormat, text: str, started: bool = False) -> tuple[str, str]:
    """(answer, reasoning) of a reply read whole (a structured answer, a non-streamed response)."""
    parser = fmt.parser(started)
    return split_parts([*parser.feed(text), *parser.finish()])
