"""A small OpenAI-compatible chat server on 127.0.0.1 whose replies the test writes, streaming them over real
HTTP as server-sent events the way llama-server, vLLM and Ollama do — including reasoning, either in its own
delta field (`reasoning_content`) or inline in the content (`<think>…</think>`). Every request body is kept,
so a test reads exactly what companion sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Delta = dict[str, str]  # one streamed delta: {"content": "…"} or {"reasoning_content": "…"}


class Scripted:
    def __init__(self, replies: list[list[Delta]], refuse: tuple[str, ...] = ()) -> None:
        """`replies`: one list of deltas per chat request, in order (the last repeats). `refuse`: request
        fields the server answers 400 for, as servers that do not know them do."""
        self.replies = replies
        self.refuse = refuse
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    def reply(self) -> list[Delta]:
        chats = [r for r in self.requests if r.get("messages") is not None]
        return self.replies[min(len(chats) - 1, len(self.replies) - 1)]


def _handler(script: Scripted) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self._send(200, {"object": "list", "data": [{"id": "scripted"}]})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            script.requests.append(body)
            refused = [name for name in script.refuse if name in body]
            if refused:
                self._send(400, {"error": {"message": f"Unrecognized request argument: {refused[0]}"}})
                return
            deltas = script.reply()
            if not body.get("stream"):
                content = "".join(d.get("content", "") for d in deltas)
                reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
                message = {"role": "assistant", "content": content}
                if reasoning:
                    message["reasoning_content"] = reasoning
                self._send(200, {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for delta in deltas:
                event = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
            self.close_connection = True

    return Handler


@contextmanager
def serve(script: Scripted) -> Iterator[Scripted]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()


def words(text: str, field: str = "content") -> list[Delta]:
    """`text` streamed a few characters at a time (markers split across deltas, as servers send them)."""
    return [{field: text[i : i + 3]} for i in range(0, len(text), 3)]
