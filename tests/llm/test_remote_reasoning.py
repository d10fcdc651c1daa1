"""A reasoning model behind a remote server, through `companion chat --plain`: the reasoning streamed inline
(`<think>…</think>` in the content: llama-server `--reasoning-format none`, Ollama raw) or in its own field
(`reasoning_content`), against a real HTTP server on 127.0.0.1. Only the answer is printed, stored, found by
`memory search` and sent back in the next request; thinking is asked for in the request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.llm.openai_server import Scripted, serve, words

SECRET = "zebracorn"


def companion(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "companion", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=env or os.environ.copy(),
    )


def use_server(url: str) -> None:
    for key, value in (("remote.base_url", url), ("model.backend", "remote"), ("user.name", "Ana")):
        assert companion("config", "set", key, value).returncode == 0


INLINE = [
    words(f"<think>\nAna sounds tired; {SECRET} is my private thought.\n</think>\n\nI'm here for you, Ana."),
    words("Tea sounds lovely."),
]
FIELD = [
    [
        *words(f"Ana sounds tired; {SECRET} is my private thought.", "reasoning_content"),
        *words("I'm here for you, Ana."),
    ],
    words("Tea sounds lovely."),
]


@pytest.mark.parametrize("replies", [INLINE, FIELD], ids=["inline-think", "reasoning_content"])
def test_a_remote_reasoning_model_through_plain_chat(replies: list[list[dict[str, str]]], home: Path) -> None:
    with serve(Scripted(replies)) as server:
        use_server(server.url)
        result = companion("chat", "--plain", stdin="I had a long day.\nI think I'll make tea.\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "I'm here for you, Ana.\n\nTea sounds lovely.\n\n"
        assert SECRET not in result.stdout + result.stderr and "think>" not in result.stdout
        chats = [r for r in server.requests if r.get("messages")]
        assert len(chats) == 2
        sent_back = json.dumps(chats[1]["messages"])
        assert "I'm here for you, Ana." in sent_back and SECRET not in sent_back
        # thinking is off by default (model.thinking = auto): the template's switch, Ollama's, sent along
        assert chats[0]["chat_template_kwargs"]["enable_thinking"] is False and chats[0]["think"] is False
        assert "stop" not in chats[0]  # the answer's stops are applied here, never to the reasoning
    found = companion("memory", "search", SECRET, "--json")
    assert found.returncode == 0, found.stderr
    assert SECRET not in found.stdout
    listed = companion("memory", "export", "--format", "jsonl")
    assert SECRET not in listed.stdout and "I'm here for you, Ana." in listed.stdout


def test_a_server_that_refuses_the_thinking_fields_is_asked_again_without(home: Path) -> None:
    with serve(Scripted([words("Hello, Ana.")], refuse=("chat_template_kwargs",))) as server:
        use_server(server.url)
        companion("config", "set", "model.thinking", "high")
        result = companion("chat", "--plain", stdin="Hi\nAgain\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("Hello, Ana.") == 2
        fields = [("chat_template_kwargs" in r, r.get("reasoning_effort")) for r in server.requests]
        assert fields[0] == (True, "high") and all(f == (False, None) for f in fields[1:])


def test_a_structured_answer_from_a_remote_reasoning_model(home: Path) -> None:
    from companion.llm.base import ChatMessage, GenerationOptions
    from companion.llm.remote import RemoteModel

    replies = [words(f'<think>{SECRET}</think>{{"ok": true}}')]
    with serve(Scripted(replies)) as server:
        model = RemoteModel(server.url)
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
        data = model.complete_json([ChatMessage("user", "Is water wet?")], schema, GenerationOptions())
        assert data == {"ok": True}
        assert server.requests[0]["chat_template_kwargs"]["enable_thinking"] is False
        model.close()
