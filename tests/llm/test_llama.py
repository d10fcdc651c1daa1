"""The local backend on the real demo GGUF through llama.cpp."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from companion.errors import ModelError
from companion.llm.base import ChatMessage, GenerationOptions
from companion.llm.llama import LlamaModel
from companion.llm.models import inspect_gguf

CHAT = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "Name three colours.")]


def test_demo_model_has_no_template_and_gets_the_gemma_format(demo_model: LlamaModel) -> None:
    assert demo_model.info.architecture == "gemma3"
    assert demo_model.info.chat_template is None
    assert demo_model.template_source == "fallback:gemma"
    prompt = demo_model.render(CHAT)
    assert prompt.startswith("<bos><start_of_turn>user\nYou are a helpful assistant.\n\nName three colours.")
    assert prompt.endswith("<start_of_turn>model\n")
    assert "[INST]" not in prompt
    tokens = demo_model.prompt_tokens(CHAT)
    assert tokens[0] == demo_model.llm.token_bos() and tokens[1] != demo_model.llm.token_bos()


def test_streams_text(demo_model: LlamaModel) -> None:
    stream = demo_model.stream(CHAT, GenerationOptions(max_tokens=24, seed=1, temperature=0.0))
    pieces = list(stream)
    assert "".join(pieces).strip()
    assert stream.stats.completion_tokens > 0
    assert stream.stats.prompt_tokens == len(demo_model.prompt_tokens(CHAT))
    assert stream.stats.finish_reason in ("stop", "length")
    assert stream.stats.ttft_ms > 0


def test_same_seed_same_reply(demo_model: LlamaModel) -> None:
    options = GenerationOptions(max_tokens=16, seed=42, temperature=0.8)
    assert demo_model.stream(CHAT, options).text() == demo_model.stream(CHAT, options).text()


def test_cancel_stops_generation(demo_model: LlamaModel) -> None:
    cancel = threading.Event()
    stream = demo_model.stream(
        CHAT, GenerationOptions(max_tokens=200, seed=3, temperature=1.0, stop=[]), cancel
    )
    got = []
    for piece in stream:
        got.append(piece)
        if len(got) == 3:
            cancel.set()
    assert stream.stats.finish_reason == "cancelled"
    assert stream.stats.completion_tokens <= 5


def test_kv_prefix_is_reused_between_turns(demo_model: LlamaModel) -> None:
    options = GenerationOptions(max_tokens=12, seed=5, temperature=0.0)
    first = demo_model.stream(CHAT, options)
    reply = first.text()
    turn2 = [*CHAT, ChatMessage("assistant", reply), ChatMessage("user", "And three animals?")]
    second = demo_model.stream(turn2, options)
    second.text()
    assert second.stats.cached_tokens > 0
    assert second.stats.cached_tokens >= first.stats.prompt_tokens - 1


def test_json_output_follows_the_schema(demo_model: LlamaModel) -> None:
    schema = {
        "type": "object",
        "properties": {
            "mood": {"type": "string", "enum": ["happy", "sad", "neutral"]},
            "topics": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
        },
        "required": ["mood", "topics"],
    }
    messages = [ChatMessage("user", "I had a lovely day at the beach with my sister. Answer in JSON.")]
    data = demo_model.complete_json(
        messages, schema, GenerationOptions(max_tokens=120, seed=1, temperature=0.0)
    )
    assert data["mood"] in ("happy", "sad", "neutral")
    assert isinstance(data["topics"], list) and len(data["topics"]) <= 3


def test_truncated_file_is_refused(tmp_path: Path, demo_gguf: Path) -> None:
    broken = tmp_path / "broken.gguf"
    with demo_gguf.open("rb") as source:
        broken.write_bytes(source.read(5_000_000))
    with pytest.raises(ModelError, match="truncated or damaged|truncated"):
        inspect_gguf(broken)


def test_not_a_gguf_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "notes.gguf"
    fake.write_text("hello, this is not a model")
    with pytest.raises(ModelError, match="not a GGUF"):
        LlamaModel(fake)
    with pytest.raises(ModelError, match="does not exist"):
        LlamaModel(tmp_path / "missing.gguf")


def test_too_large_for_memory_is_refused(tmp_path: Path) -> None:
    import psutil

    huge = tmp_path / "huge.gguf"
    with huge.open("wb") as handle:
        handle.write(b"GGUF")
        handle.truncate(psutil.virtual_memory().total * 2)  # sparse: takes no disk
    with pytest.raises(ModelError, match="GiB of memory"):
        inspect_gguf(huge)


def test_a_chat_turn_interrupts_a_background_job_during_its_prompt(demo_gguf: Path) -> None:
    """A job's long prompt is evaluated in small steps: a chat turn that wants the model stops the job before
    its prompt is through, and the chat's own reply is unaffected."""
    model = LlamaModel(demo_gguf, name="demo", n_ctx=4096, seed=3)
    before = "".join(model.stream(CHAT, GenerationOptions(max_tokens=8, seed=3, temperature=0.0)))
    long_prompt = [
        ChatMessage("user", "Summarise: " + "The river ran past the old mill and the bakery. " * 250)
    ]
    failures: list[BaseException] = []
    started = threading.Event()
    evaluated: list[int] = []
    eval_step = model.llm.eval

    def counting_eval(tokens: list[int]) -> None:
        evaluated.append(len(tokens))
        started.set()
        eval_step(tokens)

    model.llm.eval = counting_eval  # type: ignore[method-assign]

    def job() -> None:
        try:
            model.complete_json(long_prompt, {"type": "object"}, GenerationOptions(max_tokens=50, seed=1))
        except ModelError as error:
            failures.append(error)

    worker = threading.Thread(target=job)
    worker.start()
    assert started.wait(30)
    model.llm.eval = eval_step  # type: ignore[method-assign]
    after = "".join(model.stream(CHAT, GenerationOptions(max_tokens=8, seed=3, temperature=0.0)))
    worker.join(60)
    prompt_length = len(model.prompt_tokens(long_prompt))
    assert failures and "let a chat turn" in str(failures[0])
    assert sum(evaluated) < prompt_length - 64  # stopped part-way through its prompt
    assert after == before
    model.close()
