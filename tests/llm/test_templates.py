"""Real models' chat templates: rendered the way the model's own tooling renders them, the conversation adapted
where a template refuses its shape, and what each template says about stops, reasoning and thinking. No model
is loaded here: `test_template_corpus.py` runs the same templates through the chat path on a real GGUF."""

from __future__ import annotations

import os
import re

import pytest

from companion.llm.base import ChatMessage
from companion.llm.templates import ChatTemplate, Shape, TemplateRefused, TemplateRenderer, shaped
from tests.llm.corpus import CORPUS, EVERY, template

CHAT = [
    {"role": "system", "content": "You are Sam."},
    {"role": "user", "content": "Hi, I'm Ana"},
    {"role": "assistant", "content": "Hello Ana!"},
    {"role": "user", "content": "How are you?"},
]

GREETED = [
    ChatMessage("system", "You are Sam, a warm companion."),
    ChatMessage("assistant", "Hi there! I'm Sam. How has your day been?"),
    ChatMessage("user", "Long. I'm Ana, by the way."),
]


@pytest.mark.parametrize("name", EVERY)
def test_renders_as_transformers_does(name: str) -> None:
    """transformers' `render_jinja_template` is the reference the templates are written for; where it renders a
    plain conversation, companion's rendering is the same text. Where it fails because it passes `tools=None`
    to templates that loop over `tools` when it is defined, companion renders (tools stay undefined)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    source = template(name)
    try:
        reference = render_jinja_template(
            [CHAT], chat_template=source, add_generation_prompt=True, bos_token="<s>", eos_token="</s>"
        )[0][0]
    except Exception as error:
        reference = None
        failure = str(error)
    try:
        ours = ChatTemplate(source, "<s>", "</s>").render(CHAT, True)
    except TemplateRefused:
        ours = None
    if reference is not None:
        assert ours == reference
    elif "NoneType" in failure:
        assert ours is not None and "Hello Ana!" in ours
    else:  # the template refuses the conversation itself: the renderer adapts it or falls back
        renderer = TemplateRenderer(source, "llama", "<s>", "</s>")
        rendered = renderer.render([ChatMessage(m["role"], m["content"]) for m in CHAT], "auto").text
        assert "Hello Ana!" in rendered and "How are you?" in rendered


@pytest.mark.parametrize("name", EVERY)
def test_every_template_renders_a_greeting_first_conversation(name: str) -> None:
    """The app's conversations start with the persona's greeting, before any user turn: every template of the
    corpus renders it (adapted where it refuses it), with every word of it, and never raises."""
    renderer = TemplateRenderer(template(name), "llama", "<s>", "</s>")
    text = renderer.render(GREETED, "auto").text
    for message in GREETED:
        assert message.content in text


# name, family, conversation shape, stops, reasoning, thinking control
PROFILES = [
    (
        "Qwen-Qwen3-0.6B",
        "ChatML",
        "as is",
        ["<|im_end|>", "<|im_start|>"],
        "<think>…</think>",
        "enable_thinking",
    ),
    (
        "Qwen-QwQ-32B",
        "ChatML",
        "as is",
        ["<|im_end|>", "<|im_start|>"],
        "<think>…</think>",
        "enable_thinking",
    ),
    (
        "openai-gpt-oss-120b",
        "harmony (gpt-oss)",
        "as is",
        ["<|start|>user"],
        "harmony channels (analysis / commentary / final)",
        "reasoning_effort",
    ),
    (
        "google-gemma-2-2b-it",
        "Gemma",
        "system text in the first user turn, greeting in the system text",
        ["<end_of_turn>", "<start_of_turn>"],
        "<think>…</think>",
        "none (the model decides)",
    ),
    ("gemma4", "Gemma 4", "as is", ["<turn|>", "<|turn>"], "<|channel>thought…<channel|>", "enable_thinking"),
    (
        "meta-llama-Llama-3.2-3B-Instruct",
        "Llama 3",
        "as is",
        ["<|eot_id|>", "<|start_header_id|>"],
        "<think>…</think>",
        "none (the model decides)",
    ),
    (
        "meta-llama-Llama-3.3-70B-Instruct",
        "Llama 3",
        "as is",
        ["<|eot_id|>", "<|start_header_id|>"],
        "<think>…</think>",
        "none (the model decides)",
    ),
    (
        "Mistral-Small-3.2-24B-Instruct-2506",
        "Mistral",
        "greeting in the system text",
        ["</s>", "[INST]"],
        "<think>…</think>",
        "none (the model decides)",
    ),
    (
        "mistralai-Mistral-Nemo-Instruct-2407",
        "Mistral",
        "system text in the first user turn, greeting in the system text",
        ["</s>", "[INST]"],
        "<think>…</think>",
        "none (the model decides)",
    ),
    (
        "microsoft-Phi-3.5-mini-instruct",
        "Phi",
        "as is",
        ["<|end|>", "<|user|>"],
        "<think>…</think>",
        "none (the model decides)",
    ),
    (
        "llama-cpp-microsoft-Phi-4-mini-instruct",
        "turns opened by <|user|>",
        "as is",
        ["<|end|>", "<|user|>"],
        "<think>…</think>",
        "none (the model decides)",
    ),
    (
        "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
        "DeepSeek",
        "as is",
        ["<｜end▁of▁sentence｜>", "<｜User｜>"],
        "<think>…</think>",
        "enable_thinking",
    ),
    (
        "llama-cpp-deepseek-r1",
        "DeepSeek",
        "as is",
        ["<｜end▁of▁sentence｜>", "<｜User｜>"],
        "<think>…</think>",
        "none (the model decides)",
    ),
    ("GLM-4.6", "GLM", "as is", ["<|user|>"], "<think>…</think>", "enable_thinking"),
    (
        "moonshotai-Kimi-K2",
        "Kimi",
        "as is",
        ["<|im_end|>", "<|im_user|>"],
        "<think>…</think>",
        "none (the model decides)",
    ),
    (
        "NVIDIA-Nemotron-Nano-v2",
        "Nemotron",
        "as is",
        ["<SPECIAL_12>", "<SPECIAL_11>"],
        "<think>…</think>",
        "/think · /no_think in the system text",
    ),
    (
        "ibm-granite-granite-3.3-2B-Instruct",
        "Granite",
        "as is",
        ["<|end_of_text|>", "<|start_of_role|>"],
        "<think>…</think>, answer in <response>…</response>",
        "thinking",
    ),
    (
        "Apertus-8B-Instruct",
        "Apertus",
        "as is",
        ["<|assistant_end|>", "<|user_start|>"],
        "<|inner_prefix|>…<|inner_suffix|>",
        "enable_thinking",
    ),
    (
        "LFM2.5-8B-A1B",
        "ChatML",
        "as is",
        ["<|im_end|>", "<|im_start|>"],
        "<think>…</think>",
        "none (the model decides)",
    ),
    (
        "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
        "ChatML",
        "as is",
        ["<|im_end|>", "<|im_start|>"],
        "<think>…</think>",
        "none (the model decides)",
    ),
]


def test_the_profiles_cover_the_corpus() -> None:
    assert sorted(p[0] for p in PROFILES) == sorted(CORPUS)


@pytest.mark.parametrize(("name", "family", "shape", "stops", "reasoning", "thinking"), PROFILES)
def test_what_each_template_says_about_its_model(
    name: str, family: str, shape: str, stops: list[str], reasoning: str, thinking: str
) -> None:
    """Found by rendering probe conversations, not from a list of files: the next turn's opener and the
    end-of-turn marker, the markers of the reasoning, the variable that sets thinking."""
    renderer = TemplateRenderer(template(name), "llama", "<s>", "</s>")
    assert renderer.name == "gguf" and not renderer.notice
    profile = renderer.profile
    assert profile.family == family
    assert profile.shape.describe() == shape
    assert profile.stops == stops
    assert profile.reasoning.describe() == reasoning
    assert profile.thinking_control() == thinking


def test_templates_that_loop_over_tools_render_without_any() -> None:
    """llama-cpp-python's own formatter passes `tools=None`, and templates that test `tools is defined` loop
    over None (Phi-4-mini as llama.cpp ships it, Hermes-3 tool_use): a TypeError on every message."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    for name in ("llama-cpp-microsoft-Phi-4-mini-instruct", "NousResearch-Hermes-3-Llama-3.1-8B-tool_use"):
        with pytest.raises(TypeError):
            Jinja2ChatFormatter(template(name), "</s>", "<s>")(messages=CHAT)  # type: ignore[arg-type]
        text = ChatTemplate(template(name), "<s>", "</s>").render(CHAT, True)
        assert "Hello Ana!" in text and "How are you?" in text


def test_gemma_2_gets_the_system_text_in_the_first_user_turn() -> None:
    """Gemma 2's template raises "System role not supported" (and on an assistant turn first)."""
    source = template("google-gemma-2-2b-it")
    with pytest.raises(TemplateRefused, match="System role not supported"):
        ChatTemplate(source).render(shaped(GREETED, Shape()), True)
    text = TemplateRenderer(source, "gemma2", "<bos>", "<eos>").render(GREETED, "auto").text
    first_user = text.split("<start_of_turn>user\n", 1)[1]
    assert first_user.startswith("You are Sam, a warm companion.")
    assert "Hi there! I'm Sam." in first_user.split("<end_of_turn>")[0]
    assert text.count("<start_of_turn>user") == 1 and text.endswith("<start_of_turn>model\n")


def test_mistral_gets_the_greeting_in_the_system_text() -> None:
    """Mistral Small 3.2 refuses an assistant turn before the first user turn."""
    source = template("Mistral-Small-3.2-24B-Instruct-2506")
    with pytest.raises(TemplateRefused, match="alternate"):
        ChatTemplate(source, "<s>", "</s>").render(shaped(GREETED, Shape()), True)
    text = TemplateRenderer(source, "llama", "<s>", "</s>").render(GREETED, "auto").text
    system = text.split("[SYSTEM_PROMPT]", 1)[1].split("[/SYSTEM_PROMPT]")[0]
    assert "You are Sam" in system and "Hi there! I'm Sam." in system


def _prefix_through_last_user(renderer: TemplateRenderer, turns: list[ChatMessage]) -> bool:
    """Whether the prompt of a turn is, up to its user's words, the start of the next turn's prompt."""
    now = renderer.render(turns, "auto").text
    later = renderer.render(
        [*turns, ChatMessage("assistant", "It was fine."), ChatMessage("user", "Tell me more.")], "auto"
    ).text
    cut = now.rindex(turns[-1].content) + len(turns[-1].content)
    return later.startswith(now[:cut])


def test_mistral_nemo_keeps_the_prompt_a_prefix_of_the_next_one() -> None:
    """Mistral Nemo's template writes the system text into the last user turn: as the system message, every
    turn's prompt would differ from the one before right after the first `[INST]` (3 of 359 tokens reused).
    Given in the first user turn, it stays put."""
    source = template("mistralai-Mistral-Nemo-Instruct-2407")
    plain = [ChatMessage("system", "You are Sam."), ChatMessage("user", "Hi, I'm Ana.")]
    as_is = ChatTemplate(source, "<s>", "</s>")
    now = as_is.render(shaped(plain, Shape()), True)
    later = as_is.render(
        shaped([*plain, ChatMessage("assistant", "Hello!"), ChatMessage("user", "More.")], Shape()), True
    )
    common = len(os.path.commonprefix([now, later]))
    assert common < now.index("Hi, I'm Ana.")  # the old way: the prompts part before the user's words
    renderer = TemplateRenderer(source, "llama", "<s>", "</s>")
    assert _prefix_through_last_user(renderer, plain)
    assert _prefix_through_last_user(renderer, GREETED)


@pytest.mark.parametrize("name", CORPUS)
def test_each_prompt_is_the_start_of_the_next(name: str) -> None:
    renderer = TemplateRenderer(template(name), "llama", "<s>", "</s>")
    assert _prefix_through_last_user(renderer, GREETED)
    assert renderer.profile.reuse > 0.95


def test_gpt_oss_renders_the_conversation_after_an_answer() -> None:
    """gpt-oss's `<|end|>` only closes a channel: it is never a stop, and a stored answer (the final channel
    alone) renders again on the next turn (the analysis stored as the reply made the template raise)."""
    source = template("openai-gpt-oss-120b")
    renderer = TemplateRenderer(source, "gpt-oss", "<|startoftext|>", "<|return|>")
    assert "<|end|>" not in renderer.profile.stops
    with pytest.raises(TemplateRefused, match=re.escape("<|channel|> tags")):
        ChatTemplate(source).render(
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "<|channel|>analysis<|message|>hmm<|end|>"},
                {"role": "user", "content": "again"},
            ],
            True,
        )
    text = renderer.render(
        [*GREETED, ChatMessage("assistant", "Hello Ana!"), ChatMessage("user", "How are you?")], "auto"
    ).text
    assert "<|channel|>final<|message|>Hello Ana!<|end|>" in text
    assert text.endswith("<|start|>assistant") and "Reasoning: low" in text


def test_thinking_is_set_the_way_each_family_understands() -> None:
    qwen = TemplateRenderer(template("Qwen-Qwen3-0.6B"), "qwen3", "", "<|im_end|>")
    off = qwen.render(GREETED, "off")
    assert off.text.endswith("<think>\n\n</think>\n\n") and not off.started
    assert not qwen.render(GREETED, "high").text.endswith("</think>\n\n")
    assert qwen.render(GREETED, "auto").text == off.text  # auto: off where the model can turn it off
    oss = TemplateRenderer(template("openai-gpt-oss-120b"), "gpt-oss")
    assert "Reasoning: high" in oss.render(GREETED, "high").text
    assert "Reasoning: low" in oss.render(GREETED, "off").text  # gpt-oss cannot turn it off: its lowest
    nemotron = TemplateRenderer(template("NVIDIA-Nemotron-Nano-v2"), "nemotron")
    assert nemotron.render(GREETED, "off").text.endswith("<think></think>")
    assert nemotron.render(GREETED, "high").started
    granite = TemplateRenderer(template("ibm-granite-granite-3.3-2B-Instruct"), "granite")
    assert "<response></response>" not in granite.render(GREETED, "off").text
    r1 = TemplateRenderer(template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B"), "qwen2")
    assert r1.render(GREETED, "high").started and not r1.render(GREETED, "off").started


def test_a_template_that_cannot_render_falls_back_with_one_sentence() -> None:
    renderer = TemplateRenderer(template("fireworks-ai-llama-3-firefunction-v2"), "llama", "<s>", "</s>")
    assert renderer.name == "fallback:llama-3"
    assert renderer.notice.startswith("This model's chat template cannot render the conversation (")
    assert "model.prompt_style" in renderer.notice and "\n" not in renderer.notice
    text = renderer.render(GREETED, "auto").text
    assert "<|start_header_id|>user<|end_header_id|>" in text and "Long. I'm Ana" in text


def test_a_template_that_refuses_one_conversation_later_falls_back_for_good() -> None:
    source = (
        "{% for m in messages %}{% if 'forbidden' in m['content'] %}{{ raise_exception('No, not that.') }}"
        "{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    renderer = TemplateRenderer(source, "qwen2")
    assert renderer.name == "gguf"
    text = renderer.render([ChatMessage("user", "a forbidden word")], "auto").text
    assert renderer.name == "fallback:chatml" and "No, not that." in renderer.notice
    assert "a forbidden word" in text
