"""The remote backend: any OpenAI-compatible chat server (llama.cpp's llama-server, vLLM, Ollama) over HTTP.

For the user who outgrows one machine: the model runs on a GPU server, the memory stays on the laptop. The
API key comes from the OS keyring (or `COMPANION_API_KEY`), never from the TOML file. Streaming is server-sent
events; every network failure becomes one ModelError sentence.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from companion.errors import ModelError, ModelUnavailable
from companion.llm.base import ChatMessage, GenerationOptions, Stream, StreamStats, Thinking, no_hold
from companion.llm.reasoning import THINK, Part, parse_whole
from companion.llm.templates import defang_spellings

# Where servers put a reply's reasoning: its own delta field (llama-server's `reasoning_content`, vLLM and
# OpenRouter's `reasoning`), else inline `<think>…</think>` in the content (llama-server
# `--reasoning-format none`, Ollama raw), which the stream's parser takes apart.
REASONING_FIELDS = ("reasoning_content", "reasoning")
# The request fields that set thinking; a server that refuses them is asked again without (once).
THINKING_FIELDS = ("chat_template_kwargs", "reasoning_effort", "think")
# Without a tokenizer endpoint that all servers share, token counts are estimated (English averages about four
# characters per token); the estimate only sizes the prompt budget, and it errs on the large side.
CHARS_PER_TOKEN = 3.5


class RemoteModel:
    def __init__(
        self,
        base_url: str,
        *,
        model: str = "",
        api_key: str | None = None,
        n_ctx: int = 8192,
        timeout: float = 60.0,
        thinking: Thinking = "auto",
    ) -> None:
        if not base_url:
            raise ModelError(
                "No remote server is configured; set one with `companion config set remote.base_url URL`."
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = model or self.base_url
        self._n_ctx = n_ctx
        self.thinking: Thinking = thinking
        self.notice = ""
        self._thinking_fields = True  # False once the server refused them
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def prompt_style(self) -> str:
        return "chat"  # the server applies its model's template

    def count_tokens(self, text: str) -> int:
        return int(len(text) / CHARS_PER_TOKEN) + 1

    def prompt_text(self, messages: list[ChatMessage]) -> str:
        sent = self._body(messages, GenerationOptions(), stream=True)["messages"]
        return json.dumps(sent, ensure_ascii=False, indent=1)

    def count_prompt_tokens(self, messages: list[ChatMessage]) -> int:
        return sum(self.count_tokens(m.text) + 4 for m in messages) + 2

    def _body(self, messages: list[ChatMessage], options: GenerationOptions, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            # Recalled, imported and typed text is data: no spelling of a control token reaches the server.
            "messages": [{"role": m.role, "content": defang_spellings(m.text)} for m in messages],
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "stream": stream,
        }
        if self.model:
            body["model"] = self.model
        if options.seed >= 0:
            body["seed"] = options.seed
        if stream:
            body["stream_options"] = {"include_usage": True}
        if self._thinking_fields:
            body.update(self._thinking_body("off" if not stream else self.thinking))
        return body

    @staticmethod
    def _thinking_body(thinking: Thinking) -> dict[str, Any]:
        """How thinking is asked for: the template's own switch through `chat_template_kwargs` (llama-server,
        vLLM, SGLang), Ollama's `think`, and OpenAI's `reasoning_effort` when thinking is on. `auto` is off."""
        on = thinking in ("low", "high")
        effort = "high" if thinking == "high" else "low"
        body: dict[str, Any] = {
            "chat_template_kwargs": {"enable_thinking": on, "thinking": on, "reasoning_effort": effort},
            "think": on,
        }
        if on:
            body["reasoning_effort"] = effort
        return body

    def _refused_thinking(self, response: httpx.Response) -> bool:
        """The server refused the thinking fields (an unknown parameter): ask again without them, from now on."""
        if response.status_code not in (400, 422) or not self._thinking_fields:
            return False
        response.read()
        if not any(name in response.text for name in THINKING_FIELDS):
            return False
        self._thinking_fields = False
        return True

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code in (401, 403):
            raise ModelUnavailable(
                f"The remote server at {self.base_url} rejected the API key (HTTP {response.status_code}); "
                "store the right one with `companion config set-api-key`."
            )
        if response.status_code == 404:
            raise ModelUnavailable(
                f"The remote server at {self.base_url} has no chat endpoint or model '{self.model}' (HTTP 404); "
                "check remote.base_url (it usually ends in /v1) and remote.model."
            )
        if response.status_code >= 400:
            response.read()
            detail = response.text[:200].strip()
            raise ModelUnavailable(f"The remote server answered HTTP {response.status_code}: {detail}")

    def _network_error(self, error: Exception, during: str) -> ModelError:
        if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
            return ModelUnavailable(
                f"Cannot reach the remote model server at {self.base_url}; check that it is running and that "
                "remote.base_url is right."
            )
        if isinstance(error, httpx.TimeoutException):
            return ModelUnavailable(
                f"The remote server at {self.base_url} timed out {during}; try again or raise remote.timeout."
            )
        return ModelUnavailable(
            f"The connection to the remote server broke {during} ({type(error).__name__}); try again."
        )

    def stream(
        self,
        messages: list[ChatMessage],
        options: GenerationOptions,
        cancel: threading.Event | None = None,
    ) -> Stream:
        cancel = cancel or threading.Event()
        stats = StreamStats(prompt_tokens=self.count_prompt_tokens(messages))
        return Stream(
            self._generate(messages, options, cancel, stats),
            stats,
            cancel,
            parser=THINK.parser(),
            answer_stops=options.stop,
        )

    def _generate(
        self,
        messages: list[ChatMessage],
        options: GenerationOptions,
        cancel: threading.Event,
        stats: StreamStats,
    ) -> Iterator[str | Part]:
        """The server's stream: reasoning fields as reasoning parts, content as raw text (inline `<think>` is
        taken apart by the stream's parser). Stops are the stream's: a server's own `stop` would also cut
        the reasoning, which may quote anything."""
        start = time.perf_counter()
        stats.finish_reason = "error"
        try:
            while True:
                with self._client.stream(
                    "POST", "/chat/completions", json=self._body(messages, options, True)
                ) as response:
                    if self._refused_thinking(response):
                        continue
                    self._raise_for_status(response)
                    yield from self._events(response, start, stats, cancel)
                    break
        except httpx.HTTPError as error:
            raise self._network_error(error, "mid-reply" if stats.ttft_ms else "before answering") from None
        finally:
            end = time.perf_counter()
            stats.total_ms = (end - start) * 1000
            count = stats.completion_tokens
            if stats.ttft_ms and count > 1:
                stats.gen_tok_s = (count - 1) / max(end - start - stats.ttft_ms / 1000, 1e-9)

    def _events(
        self, response: httpx.Response, start: float, stats: StreamStats, cancel: threading.Event
    ) -> Iterator[str | Part]:
        count = 0
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                event = json.loads(data)
            except json.JSONDecodeError:
                continue
            usage = event.get("usage")
            if usage:
                stats.prompt_tokens = int(usage.get("prompt_tokens") or stats.prompt_tokens)
                stats.completion_tokens = int(usage.get("completion_tokens") or count)
                details = usage.get("prompt_tokens_details") or {}
                stats.cached_tokens = int(details.get("cached_tokens") or 0)
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                if choice.get("finish_reason"):
                    stats.finish_reason = str(choice["finish_reason"])
                thought = next((delta[f] for f in REASONING_FIELDS if isinstance(delta.get(f), str)), "")
                piece = delta.get("content") or ""
                if not (thought or piece):
                    continue
                if not stats.ttft_ms:
                    stats.ttft_ms = (time.perf_counter() - start) * 1000
                count += 1
                stats.completion_tokens = max(stats.completion_tokens, count)
                if thought:
                    yield Part(thought, reasoning=True)
                if piece:
                    yield piece
                if cancel.is_set():
                    stats.finish_reason = "cancelled"
                    return
        if stats.finish_reason == "error":
            raise ModelError(
                "The remote server closed the connection mid-reply; the partial reply was kept. Try again."
            )

    def complete_json(
        self, messages: list[ChatMessage], schema: dict[str, Any], options: GenerationOptions
    ) -> Any:
        """Structured output: OpenAI's `json_schema` response format, falling back to llama.cpp's form."""
        formats = [
            {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
            {"type": "json_object", "schema": schema},
        ]
        last: httpx.Response | None = None
        for response_format in formats:
            try:
                while True:
                    body = self._body(messages, options, False) | {"response_format": response_format}
                    response = self._client.post("/chat/completions", json=body)
                    if not self._refused_thinking(response):
                        break
            except httpx.HTTPError as error:
                raise self._network_error(error, "before answering") from None
            last = response
            if response.status_code >= 400 and "response_format" in response.text:
                continue  # this server speaks the other dialect of structured output
            self._raise_for_status(response)
            text = response.json()["choices"][0]["message"]["content"] or ""
            text = parse_whole(THINK, text)[0]  # a server that writes its reasoning inline: the answer only
            try:
                return json.loads(text, strict=False)  # the grammar lets raw newlines into strings
            except json.JSONDecodeError:
                raise ModelError(
                    "The remote model's structured answer was not valid JSON; try again."
                ) from None
        assert last is not None
        self._raise_for_status(last)
        raise ModelError("The remote server does not support structured (JSON schema) output.")

    def describe(self) -> dict[str, Any]:
        return {"backend": "remote", "name": self.name, "base_url": self.base_url, "n_ctx": self.n_ctx}

    def check(self) -> list[str]:
        """The models the server lists; raises ModelError when unreachable or the key is wrong."""
        try:
            response = self._client.get("/models")
        except httpx.HTTPError as error:
            raise self._network_error(error, "before answering") from None
        self._raise_for_status(response)
        return [str(item.get("id")) for item in response.json().get("data", [])]

    def for_jobs(self) -> RemoteModel:
        return self  # the server keeps its own contexts

    def abort_jobs(self) -> None:
        """Nothing to stop: a remote job's request ends with its own timeout."""

    def chat_turn(self) -> Callable[[], None]:
        return no_hold  # the server's own contexts: nothing here competes with a chat turn

    def close(self) -> None:
        self._client.close()
