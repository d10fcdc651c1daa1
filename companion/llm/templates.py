"""Chat templates rendered the way the model's own tooling renders them, and what a template says about its
model: where turns end, how the conversation must be shaped, how the model reasons and how thinking is set.

Rendering follows Hugging Face's `apply_chat_template` (the reference the templates are written for): a
sandboxed Jinja environment with `trim_blocks` / `lstrip_blocks`, loop controls, `{% generation %}` blocks,
`tojson` as transformers writes it, `raise_exception` and `strftime_now`; `tools` is left undefined when there
are none (llama-cpp-python passes None, which templates that test `tools is defined` then loop over).

Nothing here is a case per model file. A `TemplateProfile` is worked out once per template by rendering small
probe conversations and reading the result:
- **shape**: a template that refuses the conversation (no system role, no assistant turn before the first user
  turn, strict alternation) or that moves the system text on every turn (so nothing of the prompt could be
  reused) gets the conversation adapted, not the template changed: the system text into the first user turn,
  the greeting into the system text, same-role turns merged;
- **stops**: the text between an assistant turn's content and the next user turn's content is the end-of-turn
  marker and the next turn's opener;
- **reasoning**: the markers a template renders `reasoning_content` between (or names in its text), harmony
  channels for gpt-oss, and whether the generation prompt already opened the reasoning;
- **thinking**: the variables the template reads (`enable_thinking`, `thinking`, `reasoning_effort`) or a
  `/no_think` switch it strips from the system text.
A GGUF without a template gets a fallback by architecture (below); a template that cannot render at all gets
the fallback too, with one sentence that says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from companion.errors import ModelError
from companion.llm.base import ChatMessage, Thinking
from companion.llm.reasoning import HARMONY, KNOWN_TAGS, THINK, ReasoningFormat, TagFormat

GEMMA = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else 'user' -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') "
    "+ message['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

CHATML = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)

LLAMA2 = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = '<<SYS>>\n' + messages[0]['content'] + '\n<</SYS>>\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ bos_token + '[INST] ' + (system if loop.first else '') + message['content'] | trim + ' [/INST]' }}"
    "{%- else -%}{{ ' ' + message['content'] | trim + ' ' + eos_token }}{%- endif -%}"
    "{%- endfor -%}"
)

LLAMA3 = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif -%}"
)

PHI3 = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)

# The fallback formats. They never raise on role order: the conversation's shape is adapted anyway.
FALLBACKS: dict[str, str] = {
    "gemma": GEMMA,
    "chatml": CHATML,
    "llama-2": LLAMA2,
    "llama-3": LLAMA3,
    "phi3": PHI3,
}

# general.architecture -> fallback format name
BY_ARCHITECTURE: dict[str, str] = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3n": "gemma",
    "llama": "llama-2",
    "qwen": "chatml",
    "qwen2": "chatml",
    "qwen3": "chatml",
    "phi3": "phi3",
}


# A template that cannot render is replaced by the fallback whose markers it uses (a Llama 3 template that needs
# a variable companion does not pass still gets the Llama 3 format), else by the architecture's.
BY_MARKER = [
    ("<|start_header_id|>", "llama-3"),
    ("<|im_start|>", "chatml"),
    ("<start_of_turn>", "gemma"),
    ("<|user|>", "phi3"),
    ("[INST]", "llama-2"),
]


def fallback_for(architecture: str, source: str = "") -> tuple[str, str]:
    """(format name, Jinja template) for a GGUF without a usable chat template (`source`: the one it has)."""
    name = next((name for marker, name in BY_MARKER if marker in source), "")
    name = name or BY_ARCHITECTURE.get(architecture, "chatml")
    return name, FALLBACKS[name]


# What a control token looks like in the common chat formats: `<|im_start|>`, `<end_of_turn>`, `</s>`,
# `[INST]`, `<<SYS>>`… A server may parse such spellings in message content as real control tokens.
CONTROL_SPELLING = re.compile(
    r"<\|[^<>|\s]{1,40}\|>|</?s>|</?(?:start|end)_of_turn>|\[/?INST\]|<</?SYS>>|<unused\d+>|<bos>|<eos>",
    re.IGNORECASE,
)


def defang_spellings(text: str) -> str:
    """Text is data: every spelling of a control token gets a zero-width space after its first character, so
    no tokenizer reads it as one and no template can be forged by it (for backends without a tokenizer at
    hand; the local backend checks with its own tokenizer)."""
    return CONTROL_SPELLING.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)


# A marker in a rendered prompt: `<|im_end|>`, `<end_of_turn>`, `</s>`, `<｜User｜>`, `[INST]`, `<SPECIAL_11>`.
MARKER = re.compile(r"<[^<>\s]{1,48}>|\[/?[A-Z_]{2,24}\]")


class TemplateRefused(ModelError):
    """A chat template raised (its own `raise_exception`, or an error in the template) for a conversation."""


# -- rendering ------------------------------------------------------------------------------------------------
def _environment() -> Any:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        """`{% generation %}…{% endgeneration %}` marks the assistant's tokens for training; rendering passes
        through (transformers' AssistantTracker does the same when no mask is asked for)."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            parser.stream.skip(1)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    def tojson(
        value: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: tuple[str, str] | None = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def raise_exception(message: str) -> None:
        raise TemplateRefused(str(message))

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


class ChatTemplate:
    """One chat template, compiled once."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = "") -> None:
        import jinja2
        import jinja2.meta

        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        env = _environment()
        try:
            self._compiled = env.from_string(source)
            self.variables: set[str] = set(jinja2.meta.find_undeclared_variables(env.parse(source)))
        except jinja2.TemplateError as error:
            raise TemplateRefused(f"it does not compile ({error})") from None

    def render(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, **kwargs: Any
    ) -> str:
        """The prompt text. Any failure of the template is a `TemplateRefused` with its message."""
        try:
            return str(
                self._compiled.render(
                    messages=messages,
                    add_generation_prompt=add_generation_prompt,
                    bos_token=self.bos_token,
                    eos_token=self.eos_token,
                    **kwargs,
                )
            )
        except TemplateRefused:
            raise
        except Exception as error:  # a template's own bug: jinja2 errors, TypeError on a None, …
            raise TemplateRefused(f"{type(error).__name__}: {error}") from None


# -- the shape of a conversation -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """How a conversation is handed to a template. `system`: as a system turn, or at the start of the first
    user turn. `opening`: assistant turns before the first user turn (the persona's greeting) as they are, or
    told in the system text."""

    system: Literal["turn", "first user turn"] = "turn"
    opening: Literal["turn", "system text"] = "turn"

    def describe(self) -> str:
        changes = []
        if self.system != "turn":
            changes.append("system text in the first user turn")
        if self.opening != "turn":
            changes.append("greeting in the system text")
        return ", ".join(changes) or "as is"


SHAPES = [
    Shape(),
    Shape(opening="system text"),
    Shape(system="first user turn"),
    Shape(system="first user turn", opening="system text"),
]


def shaped(messages: list[ChatMessage], shape: Shape, system_suffix: str = "") -> list[dict[str, Any]]:
    """The conversation as a template reads it: roles and texts, adapted to `shape`, same-role turns merged."""
    system = "\n\n".join(m.text for m in messages if m.role == "system" and m.text)
    if system_suffix:
        system = f"{system}\n\n{system_suffix}" if system else system_suffix
    turns = [(m.role, m.text) for m in messages if m.role != "system"]
    if shape.opening == "system text":
        opening = []
        while turns and turns[0][0] == "assistant":
            opening.append(turns.pop(0)[1])
        if opening:
            said = "\n\n".join(opening)
            system = f"{system}\n\nYou opened this conversation by saying: {said}" if system else said
    out: list[dict[str, Any]] = []
    if system and shape.system == "turn":
        out.append({"role": "system", "content": system})
    elif system:
        first = next((n for n, (role, _) in enumerate(turns) if role == "user"), None)
        if first is None:
            turns.insert(0, ("user", system))
        else:
            turns[first] = ("user", f"{system}\n\n{turns[first][1]}")
    for role, text in turns:
        if out and out[-1]["role"] == role and role != "system":
            out[-1]["content"] += "\n\n" + text
        else:
            out.append({"role": role, "content": text})
    return out


# -- what a template says about its model ----------------------------------------------------------------
# Sentinels of the probe conversations: plain words no template rewrites.
_S, _G, _U1, _A1, _U2, _R = "Qsysq", "Qgreetq", "Qaskq", "Qanswerq", "Qagainq", "Qreasonq"

# A few families by a marker of their template, for people reading `model info`; any other template is
# described by the marker that opens its user turns. (Descriptive only: nothing is decided by the name.)
FAMILIES = [
    ("<|channel|>", "harmony (gpt-oss)"),
    ("[gMASK]", "GLM"),
    ("<|im_user|>", "Kimi"),
    ("<|turn>", "Gemma 4"),
    ("<start_of_turn>", "Gemma"),
    ("<|start_header_id|>", "Llama 3"),
    ("[INST]", "Mistral"),
    ("<｜User｜>", "DeepSeek"),
    ("<|start_of_role|>", "Granite"),
    ("<|user_start|>", "Apertus"),
    ("<SPECIAL_11>", "Nemotron"),
    ("<|im_start|>", "ChatML"),
    ("<|user|>", "Phi"),
]


@dataclass(frozen=True)
class TemplateProfile:
    """What one template needs and says, worked out once (see the module's docstring)."""

    shape: Shape
    stops: list[str]
    reasoning: ReasoningFormat
    family: str
    thinking_vars: frozenset[str] = frozenset()
    no_think_switch: bool = False  # a `/no_think` / `/think` switch in the system text (Nemotron v2)
    started: dict[Thinking, bool] = field(default_factory=dict)  # thinking setting -> prompt opened reasoning
    reuse: float = 1.0  # share of a turn's prompt text the next turn's prompt starts with
    notes: list[str] = field(default_factory=list)

    def kwargs(self, thinking: Thinking) -> dict[str, Any]:
        """The template variables for a thinking setting: only those the template reads."""
        on = thinking in ("low", "high") or (thinking == "auto" and not self.can_turn_off)
        values: dict[str, Any] = {
            "enable_thinking": on,
            "thinking": on,
            "reasoning_effort": "high" if thinking == "high" else "low",
        }
        return {k: v for k, v in values.items() if k in self.thinking_vars}

    @property
    def can_turn_off(self) -> bool:
        return bool({"enable_thinking", "thinking"} & self.thinking_vars) or self.no_think_switch

    def system_suffix(self, thinking: Thinking) -> str:
        if not self.no_think_switch:
            return ""
        return "/think" if thinking in ("low", "high") else "/no_think"

    def thinking_control(self) -> str:
        """How thinking is set for this template, for `model info` and `doctor`."""
        controls = sorted(self.thinking_vars)
        if self.no_think_switch:
            controls.append("/think · /no_think in the system text")
        return ", ".join(controls) or "none (the model decides)"


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _first_marker(text: str) -> str:
    match = MARKER.match(text)
    return match.group(0) if match else ""


def _stops(between: str, harmony: bool) -> list[str]:
    """End-of-turn marker and next turn's opener, from the text between an assistant turn and a user turn."""
    text = between.strip()
    if not text:
        return []
    end = _first_marker(text)
    rest = text[len(end) :].lstrip() if end else text
    stops = [end] if end and not (harmony and end == "<|end|>") else []
    if harmony:  # harmony opens its own next message with `<|start|>`: only a user turn ends the reply
        at = rest.lower().find("user")
        stops.append(rest[: at + 4] if at >= 0 else rest)
    elif rest:
        marker = MARKER.search(rest)
        if marker and marker.start() == 0:
            stops.append(marker.group(0))  # any next turn (the user's, or a second one of its own) ends it
        elif marker:
            stops.append(rest[: marker.end()])  # `user<|role_sep|>`
        else:
            stops.append("\n" + rest)  # a plain-text opener (`User:`) counts at the start of a line
    return list(dict.fromkeys(s for s in stops if s))


def _boundary(text: str, at: int) -> int:
    """`at` moved back to the start of the marker run it falls inside (`<|open|>think` cut after `<|open|>`
    starts at `<|open|>`)."""
    while at > 0 and not text[at - 1].isspace() and text[at - 1] != ">":
        at -= 1
    while at > 0 and text[at - 1] == ">" and text[at : at + 1] not in ("", "<") and not text[at].isspace():
        start = text.rfind("<", 0, at)
        if start < 0:
            break
        at = start
    return at


def _reasoning_from_render(template: ChatTemplate, kwargs: dict[str, Any]) -> TagFormat | None:
    """The markers a template writes around a reply's reasoning when it renders one (`reasoning_content`,
    `thinking` or `reasoning` on an assistant message): what comes before the reasoning that the generation
    prompt does not already say, and what comes between the reasoning and the answer."""
    user = {"role": "user", "content": _U1}
    try:
        prompt = template.render([user], True, **kwargs)
    except TemplateRefused:
        return None
    for name in ("reasoning_content", "thinking", "reasoning"):
        try:
            out = template.render([user, {"role": "assistant", "content": _A1, name: _R}], False, **kwargs)
        except TemplateRefused:
            continue
        if _R not in out or _A1 not in out or out.index(_R) > out.index(_A1):
            continue
        before = out[: out.index(_R)].rstrip()
        opened = before[_boundary(before, _common_prefix(before, prompt)) :].strip()
        if not opened:  # the generation prompt opens the reasoning itself: its last marker is the opener
            found = MARKER.findall(before)
            opened = found[-1] if found else ""
        after = out[out.index(_R) + len(_R) : out.index(_A1)].strip()
        close = after.splitlines()[0].strip() if after else ""  # `</think>`, `[BEGIN FINAL RESPONSE]`
        if opened and close:
            return TagFormat(opened, close, name="tags from the template")
    return None


def _reasoning_format(template: ChatTemplate, on: dict[str, Any]) -> ReasoningFormat:
    source = template.source
    if "<|channel|>" in source and "<|message|>" in source:
        return HARMONY
    found: TagFormat | None = _reasoning_from_render(template, on)
    if found is None:
        found = next((f for f in KNOWN_TAGS if f.open in source and f.close in source), None)
    if found is None:  # a template that splits earlier replies on a closing marker names its pair
        for close in re.findall(r"split\(\s*['\"](</[a-z_:]+>)['\"]\s*\)", source):
            found = TagFormat("<" + close[2:], close, name="tags from the template")
            break
    found = found or THINK
    if "<response></response>" in source:  # "write your response between <response></response>" (granite)
        found = replace(found, answer_open="<response>", answer_close="</response>")
    return found


def _started(template: ChatTemplate, fmt: ReasoningFormat, kwargs: dict[str, Any], shape: Shape) -> bool:
    """Whether the generation prompt already opened the reasoning (the model's first words are thoughts)."""
    if not isinstance(fmt, TagFormat):
        return False
    try:
        out = template.render(shaped([ChatMessage("user", _U1)], shape), True, **kwargs)
    except TemplateRefused:
        return False
    tail = out[out.rfind(_U1) + len(_U1) :]
    return tail.rfind(fmt.open) > tail.rfind(fmt.close)


def profile(template: ChatTemplate) -> TemplateProfile:
    """Work out a template's profile by rendering probe conversations. Raises `TemplateRefused` when no shape
    of a plain conversation renders (the caller falls back to the architecture's format)."""
    probe = [
        ChatMessage("system", _S),
        ChatMessage("assistant", _G),
        ChatMessage("user", _U1),
        ChatMessage("assistant", _A1),
        ChatMessage("user", _U2),
    ]
    first_turn = probe[:3]
    harmony = "<|channel|>" in template.source and "<|message|>" in template.source
    candidates: list[tuple[Shape, bool, float]] = []
    errors: list[str] = []
    for shape in SHAPES:
        try:
            whole = template.render(shaped(probe, shape), True)
            first = template.render(shaped(first_turn, shape), True)
        except TemplateRefused as error:
            errors.append(str(error))
            continue
        if not all(s in whole for s in (_S, _G, _U1, _A1, _U2)):
            errors.append("it leaves part of the conversation out")
            continue
        # The next turn's prompt should start with this turn's prompt, up to the user's words at least.
        common = _common_prefix(first, whole)
        keeps = common >= first.rfind(_U1) + len(_U1)
        candidates.append((shape, keeps, common / max(len(first), 1)))
        if keeps:
            break
    if not candidates:
        raise TemplateRefused(errors[0] if errors else "it renders nothing")
    shape = next((c for c in candidates if c[1]), candidates[0])[0]
    # How much of a turn's prompt the next turn's prompt starts with, at a realistic size (a persona and
    # profile of about 2,000 characters, replies of a few hundred): what the template's re-rendering costs.
    filler = " ".join(["words"] * 60)
    long_probe = [
        ChatMessage("system", f"{_S} " + " ".join(["persona"] * 350)),
        ChatMessage("user", f"{_U1} {filler}"),
        ChatMessage("assistant", f"{_A1} {filler}"),
        ChatMessage("user", f"{_U2} {filler}"),
    ]
    now = template.render(shaped(long_probe[:2], shape), True)
    after = template.render(shaped(long_probe, shape), True)
    reuse = _common_prefix(now, after) / max(len(now), 1)
    whole = template.render(shaped(probe, shape), True)
    between = whole[whole.index(_A1) + len(_A1) : whole.index(_U2)]
    stops = _stops(between, harmony)
    opener = (_stops(between, False) or [""])[-1]
    family = next((name for marker, name in FAMILIES if marker in template.source), "")
    variables = frozenset(
        v for v in ("enable_thinking", "thinking", "reasoning_effort") if v in template.variables
    )
    switch = "/no_think" in template.source and "enable_thinking" not in variables
    result = TemplateProfile(
        shape=shape,
        stops=stops,
        reasoning=THINK,
        family=family or (f"turns opened by {opener}" if opener else "plain text"),
        thinking_vars=variables,
        no_think_switch=switch,
        reuse=reuse,
    )
    result = replace(result, reasoning=_reasoning_format(template, result.kwargs("high")))
    settings: list[Thinking] = ["auto", "off", "low", "high"]
    started = {t: _started(template, result.reasoning, result.kwargs(t), shape) for t in settings}
    notes = []
    if shape != Shape():
        notes.append(f"conversation adapted: {shape.describe()}")
    return replace(result, started=started, notes=notes)


@dataclass
class Rendered:
    """A prompt and whether it opened the reasoning (the model's first words are thoughts)."""

    text: str
    started: bool


class TemplateRenderer:
    """Renders conversations with one template and its profile. A template that cannot render a plain
    conversation, or that refuses one later, is replaced by the architecture's fallback format for good (the
    prompt stays the same from turn to turn), and `notice` says so in one sentence."""

    def __init__(self, source: str | None, architecture: str, bos: str = "", eos: str = "") -> None:
        self.architecture = architecture
        self.source = source or ""
        self.bos, self.eos = bos, eos
        self.notice = ""
        self.template: ChatTemplate
        self.profile: TemplateProfile
        if source is None:
            self._use_fallback()
            return
        try:
            self.template = ChatTemplate(source, bos, eos)
            self.profile = profile(self.template)
            self.name = "gguf"
        except TemplateRefused as error:
            self._fall_back(str(error))

    def _use_fallback(self) -> None:
        name, source = fallback_for(self.architecture, self.source)
        self.name = f"fallback:{name}"
        self.template = ChatTemplate(source, self.bos, self.eos)
        self.profile = profile(self.template)

    def _fall_back(self, why: str) -> None:
        self._use_fallback()
        self.notice = (
            f"This model's chat template cannot render the conversation ({why[:200]}); companion uses the "
            f"{self.name.split(':')[1]} format of its architecture instead (`companion config set "
            "model.prompt_style transcript` gives it a plain transcript)."
        )

    def render(
        self, messages: list[ChatMessage], thinking: Thinking, add_generation_prompt: bool = True
    ) -> Rendered:
        kwargs = self.profile.kwargs(thinking)
        suffix = self.profile.system_suffix(thinking)
        try:
            text = self.template.render(
                shaped(messages, self.profile.shape, suffix), add_generation_prompt, **kwargs
            )
        except TemplateRefused as error:
            if self.name != "gguf":
                raise ModelError(f"The chat format cannot render this conversation ({error}).") from None
            self._fall_back(str(error))
            return self.render(messages, thinking, add_generation_prompt)
        return Rendered(text, self.profile.started.get(thinking, False))
