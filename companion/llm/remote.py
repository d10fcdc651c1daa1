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
from companion.llm.base import ChatMessage, GenerationOptions, Stream, StreamStats, no_hold
from companion.llm.templates import defang_spellings

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
    ) -> None:
        if not base_url:
            raise ModelError(
                "No remote server is configured; set one with `companion config set remote.base_url URL`."
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = model or self.base_url
        self._n_ctx = n_ctx
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
        if options.stop:
            body["stop"] = options.stop
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

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
        return Stream(self._generate(self._body(messages, options, True), cancel, stats), stats, cancel)

    def _generate(self, body: dict[str, Any], cancel: threading.Event, stats: StreamStats) -> Iterator[str]:
        start = time.perf_counter()
        first: float | None = None
        count = 0
        stats.finish_reason = "error"
        try:
            with self._client.stream("POST", "/chat/completions", json=body) as response:
                self._raise_for_status(response)
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
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if choice.get("finish_reason"):
                            stats.finish_reason = str(choice["finish_reason"])
                        if not piece:
                            continue
                        now = time.perf_counter()
                        if first is None:
                            first = now
                            stats.ttft_ms = (now - start) * 1000
                        count += 1
                        stats.completion_tokens = max(stats.completion_tokens, count)
                        yield piece
                        if cancel.is_set():
                            stats.finish_reason = "cancelled"
                            return
                if stats.finish_reason == "error":
                    raise ModelError(
                        "The remote server closed the connection mid-reply; the partial reply was kept. Try again."
                    )
        except httpx.HTTPError as error:
            raise self._network_error(
                error, "mid-reply" if first is not None else "before answering"
            ) from None
        finally:
            end = time.perf_counter()
            stats.total_ms = (end - start) * 1000
            if first is not None and count > 1:
                stats.gen_tok_s = (count - 1) / max(end - first, 1e-9)

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
            body = self._body(messages, options, False) | {"response_format": response_format}
            try:
                response = self._client.post("/chat/completions", json=body)
            except httpx.HTTPError as error:
                raise self._network_error(error, "before answering") from None
            last = response
            if response.status_code >= 400 and "response_format" in response.text:
                continue  # this server speaks the other dialect of structured output
            self._raise_for_status(response)
            text = response.json()["choices"][0]["message"]["content"] or ""
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
