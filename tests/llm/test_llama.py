"""The local backend on the real demo GGUF through llama.cpp."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from companion.errors import ModelError
from companion.llm.base import ChatMessage, GenerationOptions
from companion.llm.gguf_header import inspect_gguf
from companion.llm.llama import LlamaModel

CHAT = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "Name three colours.")]


def test_a_build_with_amx_loads_the_weights_as_stored(demo_model: LlamaModel) -> None:
    """llama.cpp built with `-march=native` on a Xeon with AMX stopped the process with an illegal instruction
    on the first prompt (its AMX matrix path): such a build loads without its extra buffer types; any other
    build keeps them. On an AMX machine the rest of this file is what failed before (the test process died)."""
    import llama_cpp

    from companion.llm.llama import uses_amx

    info = llama_cpp.llama_print_system_info().decode()
    assert demo_model.llm.model_params.use_extra_bufts is not uses_amx(info)
    assert uses_amx("CPU : AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 |")
    assert not uses_amx("CPU : AVX2 = 1 | AVX512 = 1 | REPACK = 1 |")
    assert not uses_amx("CPU : AMX_INT8 = 10 |")
    stream = demo_model.stream(CHAT, GenerationOptions(max_tokens=4, seed=1))
    list(stream)
    assert stream.stats.completion_tokens > 0


def test_demo_model_has_no_template_and_gets_a_transcript(demo_model: LlamaModel) -> None:
    assert demo_model.info.architecture == "gemma3"
    assert demo_model.info.chat_template is None
    assert demo_model.prompt_style == "transcript" and demo_model.template_source.startswith("transcript")
    assert "<start_of_turn>" not in demo_model.render(CHAT)
    tokens = demo_model.prompt_tokens(CHAT)
    assert tokens[0] == demo_model.llm.token_bos() and tokens[1] != demo_model.llm.token_bos()


def test_asked_for_chat_style_the_demo_model_gets_the_gemma_format(demo_gguf: Path) -> None:
    model = LlamaModel(demo_gguf, name="demo", n_ctx=512, prompt_style="chat")
    assert model.template_source == "fallback:gemma"
    prompt = model.render(CHAT)
    assert prompt.startswith("<bos><start_of_turn>user\nYou are a helpful assistant.\n\nName three colours.")
    assert prompt.endswith("<start_of_turn>model\n")
    assert "[INST]" not in prompt
    tokens = model.prompt_tokens(CHAT)
    assert tokens[0] == model.llm.token_bos() and tokens[1] != model.llm.token_bos()
    model.close()


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


MOOD = {"type": "object", "properties": {"mood": {"enum": ["calm", "busy"]}}, "required": ["mood"]}


LONG_JOB = [ChatMessage("user", "Summarise: " + "The river ran past the old mill and the bakery. " * 250)]


def watch_job_steps(jobs: LlamaModel) -> tuple[threading.Event, list[float]]:
    """When the jobs' context evaluates each prompt step: (set at the first step, the step times)."""
    started = threading.Event()
    steps: list[float] = []
    eval_step = jobs.llm.eval

    def timed_eval(tokens: list[int]) -> None:
        steps.append(time.monotonic())
        started.set()
        eval_step(tokens)

    jobs.llm.eval = timed_eval  # type: ignore[method-assign]
    return started, steps


def test_a_background_job_runs_on_its_own_context_and_pauses_for_a_chat_turn(demo_gguf: Path) -> None:
    """A job's long prompt is evaluated in small steps on the jobs' own context: a chat turn that arrives
    mid-job starts after at most one step, the job evaluates nothing while the reply streams and then
    finishes, and the chat's KV cache is untouched (its next turn reuses the whole prefix)."""
    model = LlamaModel(demo_gguf, name="demo", n_ctx=4096, seed=3)
    options = GenerationOptions(max_tokens=8, seed=3, temperature=0.0)
    before = "".join(model.stream(CHAT, options))
    jobs = model.for_jobs()
    assert jobs is not model and jobs.llm is not model.llm and jobs.for_jobs() is jobs
    results: list[object] = []
    started, steps = watch_job_steps(jobs)

    def job() -> None:
        try:
            results.append(model.complete_json(LONG_JOB, MOOD, GenerationOptions(max_tokens=20, seed=1)))
        except ModelError as error:
            results.append(error)

    worker = threading.Thread(target=job)
    worker.start()
    assert started.wait(30)
    stream = model.stream(CHAT, options)
    chat_started = time.monotonic()
    after = "".join(stream)
    chat_ended = time.monotonic()
    worker.join(120)
    assert not worker.is_alive() and results and not isinstance(results[0], ModelError), results
    assert after == before
    assert stream.stats.cached_tokens >= stream.stats.prompt_tokens - 1  # the job never touched the chat's KV
    during = [t for t in steps if chat_started + 1.0 < t < chat_ended]  # one step in flight may finish
    assert not during, f"the job evaluated {len(during)} steps while the chat reply streamed"
    assert any(t > chat_ended for t in steps)  # and went on afterwards
    model.close()


def test_a_chat_turn_holds_the_jobs_from_its_start_not_only_while_it_streams(demo_gguf: Path) -> None:
    """What the engine does at a message's recall: while the turn is held the job evaluates nothing (one step
    in flight may finish), and it finishes once the turn lets go."""
    model = LlamaModel(demo_gguf, name="demo", n_ctx=4096, seed=3)
    jobs = model.for_jobs()
    results: list[object] = []
    started, steps = watch_job_steps(jobs)
    worker = threading.Thread(
        target=lambda: results.append(model.complete_json(LONG_JOB, MOOD, GenerationOptions(max_tokens=20)))
    )
    worker.start()
    assert started.wait(30)
    release = model.chat_turn()
    held = time.monotonic()
    time.sleep(2.0)  # the turn's recall and prompt
    released = time.monotonic()
    release()
    release()  # a second call changes nothing
    worker.join(120)
    assert not worker.is_alive() and results and isinstance(results[0], dict), results
    during = [t for t in steps if held + 1.0 < t < released]
    assert not during, f"the job evaluated {len(during)} steps while the turn was held"
    assert any(t > released for t in steps)
    model.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice is per thread on Linux only")
def test_a_background_job_runs_at_the_lowest_priority_and_the_chat_does_not(demo_gguf: Path) -> None:
    """On a busy machine the job takes what the chat, its recall and the screen leave over: the thread that
    evaluates a job's prompt is niced to 19; the caller's thread and the chat's evaluation are not."""
    model = LlamaModel(demo_gguf, name="demo", n_ctx=2048, seed=3, threads=2)
    jobs = model.for_jobs()
    evaluated_by: dict[str, int] = {}

    def watch(which: str, llm: object) -> None:
        step = llm.eval  # type: ignore[attr-defined]

        def watched(tokens: list[int]) -> None:
            evaluated_by.setdefault(which, threading.get_native_id())
            step(tokens)

        llm.eval = watched  # type: ignore[attr-defined]

    watch("job", jobs.llm)
    watch("chat", model.llm)
    answer = model.complete_json(
        [ChatMessage("user", "How are you today? " * 20)], MOOD, GenerationOptions(max_tokens=20, seed=1)
    )
    assert isinstance(answer, dict)
    "".join(model.stream(CHAT, GenerationOptions(max_tokens=4, seed=3)))
    nice = {tid: os.getpriority(os.PRIO_PROCESS, tid) for tid in map(int, os.listdir("/proc/self/task"))}
    base = nice[threading.get_native_id()]
    assert nice[evaluated_by["job"]] == 19 and base < 19
    assert nice[evaluated_by["chat"]] == base
    model.close()
