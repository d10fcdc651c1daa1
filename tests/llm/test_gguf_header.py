"""The fast GGUF header reader agrees with the gguf package and never crashes on damaged bytes."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.errors import ModelError
from companion.llm.gguf_header import GgufFormatError, inspect_gguf, read_header
from tests.conftest import tiny_gguf


def test_agrees_with_the_gguf_package(tmp_path: Path) -> None:
    from gguf import GGUFReader

    path = tmp_path / "tiny.gguf"
    tiny_gguf(path)
    header = read_header(path)
    reader = GGUFReader(path)
    assert header.tensor_count == len(reader.tensors)
    assert header.parameters == sum(int(t.n_elements) for t in reader.tensors)
    assert header.data_end == max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)
    assert header.metadata["general.architecture"] == "llama"
    assert header.metadata["llama.context_length"] == 128
    info = inspect_gguf(path)
    assert info.chat_template and info.context_length == 128 and info.parameters == 4 * 8 + 3 * 5


def test_demo_model_header(demo_gguf: Path) -> None:
    info = inspect_gguf(demo_gguf)
    assert info.architecture == "gemma3"
    assert info.file_type == "Q4_K_M"
    assert 250_000_000 < info.parameters < 300_000_000
    assert read_header(demo_gguf).data_end == demo_gguf.stat().st_size


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.99])
def test_cut_anywhere_is_a_clear_error(tmp_path: Path, fraction: float) -> None:
    whole = tiny_gguf(tmp_path / "whole.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: int(len(whole) * fraction)])
    with pytest.raises(ModelError, match="truncated"):
        inspect_gguf(cut)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "fuzz.gguf"
    path.write_bytes(b"GGUF" + tail)
    with contextlib.suppress(GgufFormatError):  # a clean refusal is fine; any other exception fails
        read_header(path)
