"""The chat path with real models' chat templates: each of the 20 templates of the corpus stamped into a tiny
GGUF and run through the engine on llama.cpp — a greeting-first conversation, a reply cut where the model
starts the next turn, a second turn that reuses the KV cache, and a reply that reasons first in the template's
own format (shown, stored, recalled and sent back as the answer alone).

The weights are random: what the model says is forced with a grammar (GenerationOptions.grammar), so each
check is about what companion does with it, through llama.cpp's own sampling and detokenizing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from companion import config
from companion.engine import Engine
from companion.llm.llama import LlamaModel
from companion.llm.reasoning import HarmonyFormat, TagFormat
from companion.paths import Paths
from tests.llm.corpus import CORPUS, base_model, stamp, template

SECRET = "zebracorn"  # a word only the reasoning holds


def literal(text: str) -> str:
    """`text` as a GBNF grammar that allows exactly it."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'root ::= "{escaped}"'


@pytest.fixture(scope="session")
def stamped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stamped")
    base = base_model(folder)
    return {name: stamp(base, template(name), folder / f"{name}.gguf") for name in CORPUS}


@pytest.fixture
def engine_for(paths: Paths, stamped: dict[str, Path]) -> Iterator[object]:
    engines: list[Engine] = []

    def make(name: str) -> Engine:
        settings = config.load(paths)
        settings.models[name] = str(stamped[name])
        settings.model.name = name
        settings.model.n_ctx = 2048
        settings.chat.max_tokens = 120
        settings.chat.seed = 11
        settings.user.name = "Ana"
        config.save(settings, paths)
        engine = Engine(settings, paths)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def forced_reasoning(model: LlamaModel, answer: str) -> str:
    """What a model of this template writes when it reasons first, in the template's own format."""
    fmt = model.reasoning
    thoughts = f"The user is Ana; {SECRET} is my private thought."
    if isinstance(fmt, HarmonyFormat):
        return (
            f"<|channel|>analysis<|message|>{thoughts}<|end|>"
            f"<|start|>assistant<|channel|>final<|message|>{answer}<|return|>"
        )
    assert isinstance(fmt, TagFormat)
    opened = "" if model.templates.profile.started.get(model.thinking) else fmt.open
    return f"{opened}\n{thoughts}\n{fmt.close}\n\n{fmt.answer_open}{answer}{fmt.answer_close}"


def next_turn(model: LlamaModel, answer: str) -> str:
    """An answer, then the model starting the next turn on its own (as the user)."""
    stops = model.stops
    if isinstance(model.reasoning, HarmonyFormat):
        return f"<|channel|>final<|message|>{answer}<|end|><|start|>user<|message|>I am not Ana."
    assert isinstance(model.reasoning, TagFormat)
    # A prompt that opened the reasoning (DeepSeek-R1's `<think>\n`) is answered after closing it.
    closed = model.reasoning.close + "\n\n" if model.templates.profile.started.get(model.thinking) else ""
    return f"{closed}{answer}{stops[-1]}user\nI am not Ana.{stops[0]}"


@pytest.mark.parametrize("name", CORPUS)
def test_the_chat_path_with_a_real_template(name: str, engine_for: object) -> None:
    engine = engine_for(name)  # type: ignore[operator]
    model = engine.load_model()
    assert isinstance(model, LlamaModel)
    assert model.prompt_style == "chat" and model.template_source == "gguf" and not model.notice

    # A greeting-first conversation, as the app has it (Mistral refused it; Gemma 2 refused the system role).
    greeting = engine.greet()
    assert greeting and greeting in model.render(engine.builder.history(engine.messages())[1])
    first = engine.send("Hello, I'm Ana.", grammar=literal(next_turn(model, "Nice to meet you, Ana.")))
    shown = "".join(first)
    assert shown.strip() == "Nice to meet you, Ana."  # the model's own next turn was cut off
    assert engine.messages()[-1].text == "Nice to meet you, Ana."
    assert greeting in model.last_prompt

    # A second turn starts with the first one's prompt: llama.cpp reuses its KV cache.
    second = engine.send("How are you?", max_tokens=6)
    "".join(second)
    assert second.stats.cached_tokens >= 0.8 * first.stats.prompt_tokens

    # A reply that reasons first: only the answer is the reply.
    answer = "The answer is yes."
    third = engine.send("Is it going to be fine?", grammar=literal(forced_reasoning(model, answer)))
    assert "".join(third).strip() == answer
    assert SECRET in third.reasoning and SECRET not in third.reply_text
    stored = engine.messages()[-1]
    assert stored.role == "assistant" and stored.text == answer
    row = engine.store.conn.execute(
        "select text, reasoning from messages where id = ?", (stored.id,)
    ).fetchone()
    assert row == (answer, None)  # model.keep_reasoning is off: the reasoning is not kept anywhere
    engine.memory.ready()
    hits = engine.memory.search(SECRET, now=engine.now(), limit=10)
    assert all(SECRET not in hit.text for hit in hits)
    fourth = engine.send("Thanks!", max_tokens=4)
    "".join(fourth)
    assert answer in model.last_prompt and SECRET not in model.last_prompt  # never sent back


def test_a_reasoning_reply_kept_when_the_user_asks(engine_for: object, paths: Paths) -> None:
    engine = engine_for("Qwen-Qwen3-0.6B")  # type: ignore[operator]
    engine.settings.model.keep_reasoning = True
    model = engine.load_model()
    assert isinstance(model, LlamaModel)
    turn = engine.send("Hi", grammar=literal(forced_reasoning(model, "Hello.")))
    "".join(turn)
    row = engine.store.conn.execute(
        "select text, reasoning from messages where id = ?", (turn.reply_id,)
    ).fetchone()
    assert row[0] == "Hello." and SECRET in row[1]


def test_a_reply_stopped_while_thinking_stores_nothing(engine_for: object) -> None:
    engine = engine_for("Qwen-Qwen3-0.6B")  # type: ignore[operator]
    engine.settings.model.thinking = "high"
    model = engine.load_model()
    assert isinstance(model, LlamaModel)
    model.thinking = "high"
    turn = engine.send("Think hard.", grammar=literal(f"<think>\nLet me see, {SECRET} " + "and so on " * 30))
    for _ in turn:
        pass
    before = len(engine.messages())
    assert turn.unanswered and turn.reply_id is None and SECRET in turn.reasoning
    assert engine.messages()[-1].role == "user" and len(engine.messages()) == before


def test_structured_answers_of_a_reasoning_model_skip_the_reasoning(stamped: dict[str, Path]) -> None:
    """A background job's JSON answer: the prompt closes the reasoning (or opens harmony's final channel), so
    the grammar constrains the answer from its first token."""
    for name, suffix in (
        ("Qwen-QwQ-32B", "<|im_start|>assistant\n<think>\n</think>"),
        ("llama-cpp-deepseek-r1", "<think>\n</think>\n\n"),
        ("openai-gpt-oss-120b", "<|start|>assistant<|channel|>final<|message|>"),
        ("Qwen-Qwen3-0.6B", "<think>\n\n</think>\n\n"),
    ):
        model = LlamaModel(stamped[name], n_ctx=1024, seed=3, thinking="high")
        try:
            from companion.llm.base import ChatMessage, GenerationOptions

            messages = [ChatMessage("system", "Answer in JSON."), ChatMessage("user", "Is water wet?")]
            assert model.render(messages, answer_now=True).endswith(suffix)
            schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
            # Random weights: the grammar allows bounded whitespace between tokens, so leave room for it.
            data = model.complete_json(messages, schema, GenerationOptions(max_tokens=128, temperature=0.0))
            assert isinstance(data["ok"], bool)
        finally:
            model.close()
