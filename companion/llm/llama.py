"""The local backend: any GGUF file through llama-cpp-python.

Choices that make it fast: all layers on the GPU when the installed llama.cpp can offload (else CPU), threads
= physical cores, flash attention where supported, and the prompt handed over as tokens so llama.cpp keeps the
longest common prefix of its KV cache between calls (a chat turn then costs its new tokens only).
"""

from __future__ import annotations

import codecs
import concurrent.futures
import functools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from companion.background import lower_this_thread
from companion.errors import JobInterrupted, ModelError
from companion.llm.base import ChatMessage, ChatTurns, GenerationOptions, Stream, StreamStats, Thinking
from companion.llm.gguf_header import inspect_gguf
from companion.llm.prompt import transcript
from companion.llm.reasoning import HarmonyFormat, TagFormat
from companion.llm.templates import TemplateRenderer

_LOG_CALLBACK: Any = None
PREFILL_STEP = 64  # prompt tokens a background job evaluates between checks for a waiting chat turn
JSON_TIME_LIMIT = 180.0  # seconds for one structured answer (background jobs); past it the answer is refused
JOB_N_CTX = 4096  # the background jobs' own context: their prompts are a transcript chunk and a schema


def _route_llama_logs() -> None:
    """Send llama.cpp's native log lines to Python logging instead of the user's terminal."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    import ctypes
    import logging

    import llama_cpp

    logger = logging.getLogger("companion.llama_cpp")
    logger.addHandler(logging.NullHandler())  # silent unless the user configures logging
    logger.propagate = False
    # ggml_log_level: 0 none, 1 debug, 2 info, 3 warn, 4 error, 5 continuation
    levels = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        logger.log(levels.get(level, logging.DEBUG), text.decode("utf-8", "replace").rstrip())

    _LOG_CALLBACK = callback  # kept alive: llama.cpp holds a raw pointer to it
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    # With its logs routed here, llama-cpp-python's own silencing is not needed, and it is harmful: it points
    # the process's file descriptors 1 and 2 at /dev/null while a model or context loads, so a screen frame
    # the app writes meanwhile from another thread (the jobs' context loading beside the chat, a model
    # closing while the app quits) is lost and the terminal keeps an earlier one.
    import llama_cpp._internals
    import llama_cpp.llama

    for module in (llama_cpp.llama, llama_cpp._internals):
        module.suppress_stdout_stderr = _Unsilenced  # type: ignore[attr-defined]


def uses_amx(system_info: str) -> bool:
    """Whether llama.cpp was built with its AMX matrix path (`AMX_INT8 = 1` in its system info): a build made
    with `-march=native` on an Intel Xeon with AMX (Sapphire Rapids and later)."""
    return re.search(r"\bAMX_INT8 = 1\b", system_info) is not None


@functools.cache
def keep_weights_as_stored() -> None:
    """On a llama.cpp built with AMX, load weights without llama.cpp's extra buffer types (AMX, and the
    repacked layouts beside it). Its AMX path stops the whole process with an illegal instruction on the first
    prompt (seen with llama-cpp-python 0.3.36 built from source by gcc 12 on a Xeon with AMX: `tilezero` in
    `ggml_backend_amx_mul_mat` on a worker thread; llama.cpp pull request 26954). Decided once a process; a
    build without AMX is left as it is."""
    import llama_cpp

    if uses_amx(llama_cpp.llama_print_system_info().decode("utf-8", "replace")):
        use_extra_buffers(False)


def use_extra_buffers(on: bool) -> None:
    """Whether the models loaded from now on get llama.cpp's extra buffer types. llama-cpp-python has no
    argument for it: its `llama_model_default_params` is wrapped to set `use_extra_bufts` (the benchmark
    `weight_layout.py` sets it both ways)."""
    import llama_cpp.llama_cpp as native

    # Wrapped once: a second call wraps llama-cpp-python's own function again, not the first wrapper.
    default = getattr(
        native.llama_model_default_params, "companion_default", native.llama_model_default_params
    )

    def with_the_layout() -> Any:
        params = default()
        params.use_extra_bufts = on
        return params

    with_the_layout.companion_default = default  # type: ignore[attr-defined]
    native.llama_model_default_params = with_the_layout


class _Unsilenced:
    """Stands in for llama-cpp-python's `suppress_stdout_stderr`: touches no file descriptor."""

    def __init__(self, disable: bool = True) -> None:
        pass

    def __enter__(self) -> _Unsilenced:
        return self

    def __exit__(self, *_: object) -> None:
        return None


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def gpu_offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def resolve_gpu_layers(setting: str | int) -> int:
    """'auto' means every layer when the build can offload, none otherwise; a number is taken as given."""
    if str(setting) == "auto":
        return -1 if gpu_offload_supported() else 0
    return int(setting)


def _flash_attention(setting: str) -> bool:
    """`auto` is on: llama.cpp's flash attention is the fast path on GPUs and, measured on 2 CPU cores with the
    demo model, prefills 250 tokens at depth 2150 in 357 ms instead of 393 ms (no difference near depth 0)."""
    return setting != "off"


def _sampling(options: GenerationOptions) -> dict[str, Any]:
    """The sampling arguments of llama-cpp-python's create_completion, for chat and for structured answers."""
    return {
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "repeat_penalty": options.repeat_penalty,
        "seed": options.seed if options.seed >= 0 else None,
    }


class LlamaModel:
    """A loaded GGUF. Not thread-safe for concurrent generations: the engine runs one at a time."""

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        n_ctx: int = 4096,
        n_gpu_layers: str | int = "auto",
        threads: int = 0,
        flash_attn: str = "auto",
        seed: int = -1,
        prompt_style: str = "auto",
        thinking: Thinking = "auto",
        chat: LlamaModel | None = None,
    ) -> None:
        """`prompt_style`: "chat" (the chat template), "transcript" (a plain `Name: text` transcript), or
        "auto": the template when the GGUF has one, else a transcript (a base model never learned one).
        `thinking`: how much a reasoning model thinks before it answers (see `templates.TemplateProfile`).
        `chat`: this is the background jobs' context of that chat model (see `for_jobs`)."""
        self._options = {
            "n_gpu_layers": n_gpu_layers,
            "threads": threads,
            "flash_attn": flash_attn,
            "seed": seed,
            "thinking": thinking,
        }
        self.thinking: Thinking = thinking
        self.info = inspect_gguf(path)
        self.name = name or self.info.model_name
        try:
            import llama_cpp
        except ImportError as error:  # pragma: no cover - a dependency
            raise ModelError(
                f"llama-cpp-python is not installed or broken ({error}); reinstall companion."
            ) from None
        _route_llama_logs()
        keep_weights_as_stored()
        self.gpu_layers = resolve_gpu_layers(n_gpu_layers)
        self.threads = threads or physical_cores()
        self.flash_attn = _flash_attention(flash_attn)
        if self.info.context_length:
            n_ctx = min(n_ctx, self.info.context_length)
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.info.path),
                n_ctx=n_ctx,
                n_batch=min(512, n_ctx),
                n_gpu_layers=self.gpu_layers,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                flash_attn=self.flash_attn,
                seed=seed if seed >= 0 else llama_cpp.LLAMA_DEFAULT_SEED,
                # Sliding-window models (Gemma 3) keep the full KV so a prefix can be reused between turns.
                swa_full=True,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as error:
            raise ModelError(
                f"llama.cpp could not load {self.info.path.name} ({error}); the file may be damaged or of an "
                "architecture this llama.cpp build does not know (try `pip install -U llama-cpp-python`)."
            ) from None
        self._lock = threading.Lock()
        # Chat turns under way: the jobs' context pauses between its steps (shared with `for_jobs`).
        self._turns: ChatTurns = chat._turns if chat is not None else ChatTurns()
        self._closing: threading.Event = chat._closing if chat is not None else threading.Event()
        self._chat = chat
        # The jobs' context does its llama.cpp work on one thread of its own, at the lowest CPU priority.
        self._worker = (
            concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="companion-job-model", initializer=lower_this_thread
            )
            if chat is not None
            else None
        )
        self._jobs: LlamaModel | None = None
        self._jobs_lock = threading.Lock()
        self._defanged: dict[str, str] = {}
        model = self.llm._model
        bos = model.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else ""
        eos = model.token_get_text(self.llm.token_eos()) if self.llm.token_eos() >= 0 else ""
        self._seed = seed if seed >= 0 else llama_cpp.LLAMA_DEFAULT_SEED
        # The chat template (the GGUF's, or the architecture's fallback) and what it says about the model.
        self.templates = TemplateRenderer(self.info.chat_template, self.info.architecture, bos, eos)
        if prompt_style == "auto":
            prompt_style = "chat" if self.info.chat_template else "transcript"
        self.prompt_style = prompt_style
        self.reasoning = self.templates.profile.reasoning
        # End-of-turn markers and next-turn openers of the template; a transcript prompt stops where a line
        # starts with a speaker's name instead (the engine's answer stops).
        self.stops: list[str] = self.templates.profile.stops if prompt_style == "chat" else []
        self.last_prompt = ""  # the text of the last chat prompt, as the model got it
        markers = [*self.templates.profile.stops, *self.reasoning.markers()]
        single = {m: self._single_token(m) for m in dict.fromkeys(markers)}
        # Control tokens that are markers are written out as text (a parser or a stop must see them); other
        # control tokens stay silent, as llama.cpp shows them.
        self._visible: set[int] = {t for t in single.values() if t is not None}
        # A marker that is one control token ends the reply at that token, unless the reasoning's own markers
        # hold it (Solar closes its thoughts with `<|end|>`): llama.cpp's end-of-generation tokens do too.
        own = self.reasoning.markers()
        self._stop_ids: set[int] = {
            t
            for m, t in single.items()
            if t is not None and m in self.templates.profile.stops and not any(m in o for o in own)
        }

    def _single_token(self, text: str) -> int | None:
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return int(ids[0]) if len(ids) == 1 else None

    @property
    def template_source(self) -> str:
        if self.prompt_style == "transcript":
            return (
                "transcript (no chat template in the file)" if not self.info.chat_template else "transcript"
            )
        return self.templates.name

    @property
    def notice(self) -> str:
        """One sentence for the faces when the GGUF's own template could not be used, else ""."""
        return self.templates.notice

    # -- tokens ---------------------------------------------------------------------------------------------
    @property
    def n_ctx(self) -> int:
        return int(self.llm.n_ctx())

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def render(self, messages: list[ChatMessage], answer_now: bool = False) -> str:
        """The prompt text. `answer_now`: for a structured answer, thinking off and any reasoning the prompt
        opened closed again, so the model's first token is the answer (a grammar never fights a preamble)."""
        return self._render(messages, answer_now)[0]

    def _render(self, messages: list[ChatMessage], answer_now: bool = False) -> tuple[str, bool]:
        if self.prompt_style == "transcript":
            return transcript(messages), False  # tokenized without special tokens: no text can become one
        safe = [ChatMessage(m.role, self.defang(m.text)) for m in messages]
        rendered = self.templates.render(safe, "off" if answer_now else self.thinking)
        text, started = rendered.text, rendered.started
        if answer_now and isinstance(self.reasoning, HarmonyFormat):
            text += "<|channel|>final<|message|>"
        elif answer_now and started and isinstance(self.reasoning, TagFormat):
            text += self.reasoning.close + "\n\n"
            started = False
        return text, started

    def defang(self, text: str) -> str:
        """Text is data, never control tokens: a message, memory or card that spells a control token
        (`<end_of_turn>`, `<|im_start|>`…) would otherwise become one when the prompt is tokenized with
        special tokens on, and could forge a turn. Such text gets a zero-width space after each `<`, so the
        model reads the same characters as plain text. (Cached: the history is rendered every turn.)"""
        cached = self._defanged.get(text)
        if cached is None:
            raw = text.encode("utf-8")
            special = self.llm.tokenize(raw, add_bos=False, special=True)
            plain = self.llm.tokenize(raw, add_bos=False, special=False)
            cached = text if special == plain else text.replace("<", "<\u200b").replace("[", "[\u200b")
            if len(self._defanged) > 4096:
                self._defanged.clear()
            self._defanged[text] = cached
        return cached

    def prompt_tokens(self, messages: list[ChatMessage], answer_now: bool = False) -> list[int]:
        return self._tokens(self._render(messages, answer_now)[0])

    def _tokens(self, prompt: str) -> list[int]:
        text = prompt.encode("utf-8")
        if self.prompt_style == "transcript":
            return list(self.llm.tokenize(text, add_bos=True, special=False))
        # The template writes BOS itself; tokenizing with special=True keeps its control tokens as tokens.
        return list(self.llm.tokenize(text, add_bos=False, special=True))

    def prompt_text(self, messages: list[ChatMessage]) -> str:
        return self.render(messages)

    def count_prompt_tokens(self, messages: list[ChatMessage]) -> int:
        return len(self.prompt_tokens(messages))

    def cached_prefix(self, tokens: list[int]) -> int:
        """How many leading prompt tokens llama.cpp already holds in its KV cache."""
        import numpy as np

        held = self.llm._input_ids[: self.llm.n_tokens]
        n = min(len(held), len(tokens))
        if n == 0:
            return 0
        differ = np.flatnonzero(held[:n] != np.asarray(tokens[:n], dtype=held.dtype))
        common = int(differ[0]) if len(differ) else n
        return min(common, max(len(tokens) - 1, 0))

    # -- generation -----------------------------------------------------------------------------------------
    def stream(
        self,
        messages: list[ChatMessage],
        options: GenerationOptions,
        cancel: threading.Event | None = None,
    ) -> Stream:
        cancel = cancel or threading.Event()
        stats = StreamStats()
        prompt, started = self._render(messages)
        tokens = self._tokens(prompt)
        if len(tokens) >= self.n_ctx:
            raise ModelError(
                f"The prompt ({len(tokens)} tokens) does not fit the context ({self.n_ctx}); raise model.n_ctx."
            )
        self.last_prompt = prompt
        parser = self.reasoning.parser(started) if self.prompt_style == "chat" else None
        return Stream(
            self._generate(tokens, options, cancel, stats),
            stats,
            cancel,
            parser=parser,
            stops=self.stops,
            answer_stops=options.stop,
        )

    def _generate(
        self, tokens: list[int], options: GenerationOptions, cancel: threading.Event, stats: StreamStats
    ) -> Iterator[str]:
        release = self._turns.hold()  # a background job pauses at its next step until the reply is done
        try:
            yield from self._generate_now(tokens, options, cancel, stats)
        finally:
            release()

    def _next_seed(self, seed: int) -> int:
        """The seed of one generation: the one asked for, else the next of a chain from the model's seed (as
        llama-cpp-python's create_completion does, so a model made with a seed repeats its replies)."""
        if seed >= 0:
            return seed
        self._seed = random.Random(self._seed).randint(0, 2**32)
        return self._seed

    def _generate_now(
        self, tokens: list[int], options: GenerationOptions, cancel: threading.Event, stats: StreamStats
    ) -> Iterator[str]:
        """llama.cpp's tokens as text. A marker's control token is written out (the stream's parser and stops
        read it); llama.cpp's end-of-generation tokens and single-token stops end the reply at the token."""
        import llama_cpp

        with self._lock:
            stats.prompt_tokens = len(tokens)
            stats.cached_tokens = self.cached_prefix(tokens)
            start = time.perf_counter()
            first: float | None = None
            count = 0
            stats.finish_reason = "error"
            limit = min(options.max_tokens, self.n_ctx - len(tokens))
            self.llm.set_seed(self._next_seed(options.seed))
            grammar = None
            if options.grammar:
                grammar = llama_cpp.LlamaGrammar.from_string(options.grammar, verbose=False)
            vocab = self.llm._model.vocab
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            generator = self.llm.generate(
                tokens,
                top_k=40,
                top_p=options.top_p,
                min_p=0.05,
                temp=options.temperature,
                repeat_penalty=options.repeat_penalty,
                grammar=grammar,
            )
            try:
                for token in generator:
                    now = time.perf_counter()
                    if first is None:
                        first = now
                        stats.ttft_ms = (now - start) * 1000
                    if llama_cpp.llama_vocab_is_eog(vocab, token) or token in self._stop_ids:
                        stats.finish_reason = "stop"
                        break
                    count += 1
                    stats.completion_tokens = count
                    piece = decoder.decode(self.llm.detokenize([token], special=token in self._visible))
                    if piece:
                        yield piece
                    if cancel.is_set():
                        stats.finish_reason = "cancelled"
                        break
                    if count >= limit:
                        stats.finish_reason = "length"
                        break
                tail = decoder.decode(b"", final=True)
                if tail:
                    yield tail
            finally:
                generator.close()
                end = time.perf_counter()
                stats.total_ms = (end - start) * 1000
                if first is not None and count > 1:
                    stats.gen_tok_s = (count - 1) / max(end - first, 1e-9)
                # The KV cache holds the prompt and the reply; the next turn's prompt starts the same way.

    def for_jobs(self) -> LlamaModel:
        """The background jobs' own llama.cpp context over the same GGUF (memory-mapped, so the weights are
        shared; its cost is its KV cache): a job never evicts or overwrites the chat's KV cache, and a chat
        turn that arrives during a job starts after at most one prefill step or one token of it — the job
        pauses until the reply is done, then resumes where it was."""
        if self._chat is not None:
            return self
        with self._jobs_lock:
            if self._jobs is None:
                self._jobs = LlamaModel(
                    self.info.path,
                    name=self.name,
                    n_ctx=min(self.n_ctx, JOB_N_CTX),
                    prompt_style=self.prompt_style,
                    chat=self,
                    **self._options,  # type: ignore[arg-type]
                )
            return self._jobs

    def complete_json(
        self, messages: list[ChatMessage], schema: dict[str, Any], options: GenerationOptions
    ) -> Any:
        """A completion constrained by llama.cpp's grammar for the JSON schema, parsed; junk gives ModelError.
        It runs on the jobs' context (`for_jobs`), never on the chat's, and on its low-priority thread."""
        if self._worker is None:  # the chat's context (only the jobs' context has a worker)
            return self.for_jobs().complete_json(messages, schema, options)
        return self._worker.submit(self._complete_json_here, messages, schema, options).result()

    def _complete_json_here(
        self, messages: list[ChatMessage], schema: dict[str, Any], options: GenerationOptions
    ) -> Any:
        from llama_cpp import LlamaGrammar, StoppingCriteriaList

        try:
            grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except Exception as error:
            raise ModelError(f"The JSON schema could not be turned into a grammar ({error}).") from None
        if self.prompt_style == "transcript":  # a base model reads the question as a document to continue
            question = "\n\n".join(m.text for m in messages).strip() + "\n\nAnswer:\n"
            tokens = list(self.llm.tokenize(question.encode("utf-8"), add_bos=True, special=False))
        else:
            tokens = self.prompt_tokens(messages, answer_now=True)
        with self._lock:
            budget = _Budget(JSON_TIME_LIMIT)
            self._prefill(tokens, budget)

            def stop_now(ids: Any, logits: Any) -> bool:
                budget.paused(self._wait_for_chat())
                return self._closing.is_set() or budget.spent

            result = self.llm.create_completion(
                prompt=tokens,
                **_sampling(options),
                grammar=grammar,
                stopping_criteria=StoppingCriteriaList([stop_now]),
                stream=False,
            )
            self._raise_if_stopped(budget)
        text = result["choices"][0]["text"]  # type: ignore[index]
        try:
            return json.loads(text, strict=False)  # the grammar lets raw newlines into strings
        except json.JSONDecodeError:
            raise ModelError(
                "The model's structured answer was not valid JSON (it likely ran out of tokens); try again "
                "with a larger max_tokens."
            ) from None

    def describe(self) -> dict[str, Any]:
        import llama_cpp

        return {
            "backend": "llama.cpp",
            "name": self.name,
            "path": str(self.info.path),
            "architecture": self.info.architecture,
            "n_ctx": self.n_ctx,
            "gpu_layers": self.gpu_layers,
            "gpu_offload_supported": gpu_offload_supported(),
            "threads": self.threads,
            "flash_attn": self.flash_attn,
            "chat_template": self.template_source,
            "prompt_style": self.prompt_style,
            **self.template_details(),
            "llama_cpp_python": llama_cpp.__version__,
        }

    def template_details(self) -> dict[str, Any]:
        """What the template says about the model: for `model info`, `doctor` and `chat --stats`."""
        profile = self.templates.profile
        if self.prompt_style == "transcript":
            return {"stops": "a new line that starts with a speaker's name", "reasoning": "none"}
        return {
            "template_family": profile.family,
            "conversation_shape": profile.shape.describe(),
            "stops": ", ".join(self.stops) + " and llama.cpp's end-of-generation tokens",
            "reasoning": self.reasoning.describe(),
            "thinking": f"{self.thinking} (set by {profile.thinking_control()})",
            "prompt_reuse": f"{profile.reuse:.0%} of a turn's prompt is the start of the next one's",
            "notice": self.notice,
        }

    def _prefill(self, tokens: list[int], budget: _Budget) -> None:
        """Evaluate a job's prompt in small steps: a chat turn that arrives waits for one step at most, and the
        job waits for the reply between steps (llama.cpp's evaluation of a batch cannot be interrupted)."""
        position = self.cached_prefix(tokens)
        self.llm.n_tokens = position  # what follows in the KV cache is overwritten from here
        while position < len(tokens) - 1:
            budget.paused(self._wait_for_chat())
            self._raise_if_stopped(budget)
            step = tokens[position : min(position + PREFILL_STEP, len(tokens) - 1)]
            self.llm.eval(step)
            position += len(step)

    def _wait_for_chat(self) -> float:
        """Pause while a chat turn is under way (the app closing ends the pause). Returns the seconds waited."""
        started = time.monotonic()
        while self._turns.active.is_set() and not self._closing.is_set():
            time.sleep(0.01)
        return time.monotonic() - started

    def _raise_if_stopped(self, budget: _Budget) -> None:
        if self._closing.is_set():
            raise JobInterrupted("The app closed during the job; it runs again next time.")
        if budget.spent:  # too slow: the job may do without the model
            raise ModelError(f"The model took longer than {JSON_TIME_LIMIT:.0f} s for one structured answer.")

    def abort_jobs(self) -> None:
        """Stop a background job's generation at its next token (the app is closing)."""
        self._closing.set()

    def chat_turn(self) -> Callable[[], None]:
        """A chat turn begins: the jobs' context pauses from its recall on, not only while the reply streams
        (its llama.cpp threads would otherwise take the cores the recall needs)."""
        return self._turns.hold()

    def close(self) -> None:
        # Waits for a generation in another thread (already told to cancel) to let go of the model.
        self._closing.set()
        if self._jobs is not None:
            self._jobs.close()
        if self._worker is not None:
            self._worker.shutdown(wait=True)  # a job in flight stops at its next step (closing is set)
        with self._lock:
            self.llm.close()


class _Budget:
    """The time a structured answer may take, not counting the time it spent paused for a chat turn."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def paused(self, seconds: float) -> None:
        self.deadline += seconds

    @property
    def spent(self) -> bool:
        return time.monotonic() > self.deadline
