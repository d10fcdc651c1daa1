"""The remote backend against a real OpenAI-compatible server on 127.0.0.1: llama-cpp-python's own
`python -m llama_cpp.server` serving the demo GGUF, started and stopped here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from companion.engine import Engine
from companion.errors import ModelError
from companion.llm.base import ChatMessage, GenerationOptions
from companion.llm.remote import RemoteModel
from companion.memory.tables import messages as message_table
from companion.paths import Paths
from tests.conftest import free_port

KEY = "test-key-123"


def start_server(model: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            # `python -m llama_cpp.server`, with the llama.cpp the app loads: on a build with AMX, the weights as
            # stored (its AMX path stops the process on the first prompt; see `keep_weights_as_stored`).
            "import runpy; from companion.llm.llama import keep_weights_as_stored; keep_weights_as_stored();"
            " runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--api_key",
            KEY,
            "--chat_format",
            "gemma",
            "--n_ctx",
            "2048",
            "--verbose",
            "False",
            "--n_threads",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("llama_cpp.server exited during start-up")
        try:
            if (
                httpx.get(
                    f"http://127.0.0.1:{port}/v1/models",
                    headers={"Authorization": f"Bearer {KEY}"},
                    timeout=2,
                ).status_code
                == 200
            ):
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("llama_cpp.server did not start in time")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(demo_gguf: Path) -> Iterator[str]:
    port = free_port()
    process = start_server(demo_gguf, port)
    yield f"http://127.0.0.1:{port}/v1"
    stop(process)


CHAT = [ChatMessage("system", "You are kind."), ChatMessage("user", "Say something about the sea.")]


def test_streams_from_a_real_server(server: str) -> None:
    model = RemoteModel(server, api_key=KEY, model="demo")
    stream = model.stream(CHAT, GenerationOptions(max_tokens=16, seed=1, temperature=0.0))
    text = stream.text()
    assert text.strip()
    assert stream.stats.finish_reason in ("stop", "length")
    assert stream.stats.completion_tokens > 0
    assert model.check()
    model.close()


def test_json_output_from_a_real_server(server: str) -> None:
    model = RemoteModel(server, api_key=KEY)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    data = model.complete_json(
        [ChatMessage("user", "Is water wet? Answer in JSON.")],
        schema,
        GenerationOptions(max_tokens=30, temperature=0.0),
    )
    assert isinstance(data["ok"], bool)
    model.close()


def test_wrong_key_is_one_clear_error(server: str) -> None:
    model = RemoteModel(server, api_key="wrong")
    with pytest.raises(ModelError, match="rejected the API key"):
        model.stream(CHAT, GenerationOptions(max_tokens=4)).text()
    with pytest.raises(ModelError, match="rejected the API key"):
        model.check()


def test_wrong_key_through_the_cli(server: str, home: Path) -> None:
    env = os.environ | {"COMPANION_API_KEY": "wrong"}
    for args in (["config", "set", "remote.base_url", server], ["config", "set", "model.backend", "remote"]):
        subprocess.run([sys.executable, "-m", "companion", *args], check=True, env=env, capture_output=True)
    result = subprocess.run(
        [sys.executable, "-m", "companion", "ask", "hi"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "rejected the API key" in result.stderr and "Traceback" not in result.stderr
    good = subprocess.run(
        [
            sys.executable,
            "-m",
            "companion",
            "ask",
            "Say something about the sea.",
            "--max-tokens",
            "8",
            "--seed",
            "1",
        ],
        env=env | {"COMPANION_API_KEY": KEY},
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    # The demo model behind the server often writes the memory block instead of a reply (the earlier `ask` is
    # recalled): that is cut, and a reply with nothing left says so rather than storing an empty message.
    assert good.stdout.strip() or "no reply: the model wrote nothing that could be kept" in good.stderr


def test_server_gone_mid_stream_keeps_the_partial_reply(demo_gguf: Path, paths: Paths) -> None:
    port = free_port()
    process = start_server(demo_gguf, port)
    try:
        from companion import config

        settings = config.load(paths)
        settings.model.backend = "remote"
        settings.remote.base_url = f"http://127.0.0.1:{port}/v1"
        engine = Engine(settings, paths, model=RemoteModel(settings.remote.base_url, api_key=KEY))
        turn = engine.send(
            "Tell me a very long story about a lighthouse keeper.", max_tokens=400, temperature=1.0, seed=4
        )
        pieces = []
        with pytest.raises(ModelError, match="mid-reply|closed the connection"):
            for piece in turn:
                pieces.append(piece)
                if len(pieces) == 3:
                    process.kill()
        assert len(pieces) >= 3
        message = message_table.get(engine.store, turn.reply_id or 0)
        assert message is not None and message.incomplete
        assert message.text == "".join(pieces).strip()
        engine.close()
    finally:
        stop(process)
