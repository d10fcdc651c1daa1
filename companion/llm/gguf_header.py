"""A fast reader of a GGUF file's header: its metadata and tensor table, never its weights.

The `gguf` package's GGUFReader builds a numpy view for every element of every metadata array; on a model with
a 262k-token vocabulary that takes 10-15 seconds, on every model load. This reader decodes only scalar and
string values, skips arrays (counting their bytes), and reads the tensor table to find where the data must end,
so a truncated download is caught before llama.cpp sees it. Layout: github.com/ggml-org/ggml docs/gguf.md.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from companion.errors import ModelError

GGUF_MAGIC = b"GGUF"

_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_STRING, _ARRAY = 8, 9
_MAX_DIMS = 8


class GgufFormatError(ValueError):
    """The bytes are not a well-formed GGUF header."""


@dataclass
class GgufHeader:
    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensor_count: int = 0
    parameters: int = 0
    data_end: int = 0  # the byte offset where the last tensor's data ends


def _quant_sizes() -> dict[int, tuple[int, int]]:
    """ggml type -> (elements per block, bytes per block), from the gguf package's table."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(kind): (int(block), int(size)) for kind, (block, size) in GGML_QUANT_SIZES.items()}


class _Cursor:
    def __init__(self, data: mmap.mmap | bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str, size: int) -> Any:
        if self.pos + size > len(self.data):
            raise GgufFormatError("header ends early")
        value = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += size
        return value

    def string(self, keep: bool = True) -> str:
        length = self.take("<Q", 8)
        if self.pos + length > len(self.data):
            raise GgufFormatError("string runs past the end of the file")
        raw = self.data[self.pos : self.pos + length] if keep else b""
        self.pos += length
        return raw.decode("utf-8", "replace") if keep else ""

    def value(self, kind: int, keep: bool) -> Any:
        if kind in _SCALARS:
            fmt, size = _SCALARS[kind]
            return self.take(fmt, size)
        if kind == _STRING:
            return self.string(keep)
        if kind == _ARRAY:
            item_kind = self.take("<I", 4)
            count = self.take("<Q", 8)
            if item_kind in _SCALARS:
                size = _SCALARS[item_kind][1] * count
                if self.pos + size > len(self.data):
                    raise GgufFormatError("array runs past the end of the file")
                self.pos += size
            else:
                for _ in range(count):
                    self.value(item_kind, keep=False)
            return count  # arrays are summarised by their length
        raise GgufFormatError(f"unknown metadata type {kind}")


def read_header(path: Path) -> GgufHeader:
    with path.open("rb") as handle:
        size = path.stat().st_size
        if size < 24:
            raise GgufFormatError("file too short")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse(data, size)


def _parse(data: mmap.mmap, size: int) -> GgufHeader:
    cursor = _Cursor(data)
    if cursor.take("<4s", 4) != b"GGUF":
        raise GgufFormatError("not a GGUF file")
    header = GgufHeader(version=cursor.take("<I", 4))
    if header.version < 2:
        raise GgufFormatError(f"GGUF version {header.version} is too old")
    header.tensor_count = cursor.take("<Q", 8)
    kv_count = cursor.take("<Q", 8)
    for _ in range(kv_count):
        key = cursor.string()
        kind = cursor.take("<I", 4)
        header.metadata[key] = cursor.value(kind, keep=True)
    quant = _quant_sizes()
    tensors: list[tuple[int, int]] = []  # (offset, bytes)
    for _ in range(header.tensor_count):
        cursor.string(keep=False)
        dims = cursor.take("<I", 4)
        if dims > _MAX_DIMS:
            raise GgufFormatError("tensor with too many dimensions")
        elements = 1
        for _ in range(dims):
            elements *= cursor.take("<Q", 8)
        kind = cursor.take("<I", 4)
        offset = cursor.take("<Q", 8)
        if kind not in quant:
            raise GgufFormatError(f"unknown tensor type {kind}")
        block, block_bytes = quant[kind]
        tensors.append((offset, elements // block * block_bytes))
        header.parameters += elements
    alignment = int(header.metadata.get("general.alignment", 32) or 32)
    start = (cursor.pos + alignment - 1) // alignment * alignment
    header.data_end = max((start + offset + nbytes for offset, nbytes in tensors), default=start)
    return header


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    size_bytes: int
    architecture: str
    model_name: str
    context_length: int
    chat_template: str | None
    file_type: str
    tensor_count: int
    parameters: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "architecture": self.architecture,
            "model_name": self.model_name,
            "context_length": self.context_length,
            "chat_template": "from the GGUF file"
            if self.chat_template
            else "none in file (fallback by architecture)",
            "file_type": self.file_type,
            "tensors": self.tensor_count,
            "parameters": self.parameters,
        }


def check_gguf_header(path: Path) -> None:
    """Cheap checks before anything is parsed: the file exists, is readable and starts with GGUF's magic."""
    if not path.exists():
        raise ModelError(
            f"The model file {path} does not exist; check the path or run `companion model list`."
        )
    if not path.is_file():
        raise ModelError(f"{path} is not a file; give the path of a .gguf model file.")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise ModelError(
            f"The model file {path} cannot be read ({error.strerror}); check its permissions."
        ) from None
    if magic != GGUF_MAGIC:
        raise ModelError(
            f"{path} is not a GGUF model file; companion runs llama.cpp GGUF files (convert or download one)."
        )


def check_fits_in_memory(path: Path) -> None:
    import psutil

    size = path.stat().st_size
    total = psutil.virtual_memory().total
    if size > total * 0.9:
        raise ModelError(
            f"The model {path.name} needs about {size / 2**30:.1f} GiB but this machine has "
            f"{total / 2**30:.1f} GiB of memory; choose a smaller or more quantized GGUF (e.g. a Q4_K_M of fewer parameters)."
        )


def inspect_gguf(path: Path) -> GgufInfo:
    """Read a GGUF's metadata without loading it into llama.cpp; a damaged file gives a ModelError."""
    path = path.expanduser().resolve()
    check_gguf_header(path)
    check_fits_in_memory(path)
    try:
        header = read_header(path)
    except (GgufFormatError, OSError, ValueError) as error:
        raise ModelError(
            f"The model file {path} is truncated or damaged ({error}); download it again."
        ) from None
    size = path.stat().st_size
    if header.data_end > size:
        raise ModelError(
            f"The model file {path} is truncated ({size} of {header.data_end} bytes); download it again."
        )
    meta = header.metadata
    architecture = str(meta.get("general.architecture") or "unknown")
    context = meta.get(f"{architecture}.context_length")
    file_type = meta.get("general.file_type")
    try:
        from gguf import LlamaFileType

        file_type_name = (
            LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_") if file_type is not None else "?"
        )
    except (ValueError, ImportError):
        file_type_name = str(file_type)
    template = meta.get("tokenizer.chat_template")
    return GgufInfo(
        path=path,
        size_bytes=size,
        architecture=architecture,
        model_name=str(meta.get("general.name") or path.stem),
        context_length=int(context) if isinstance(context, int) else 0,
        chat_template=str(template) if isinstance(template, str) and template else None,
        file_type=file_type_name,
        tensor_count=header.tensor_count,
        parameters=header.parameters,
    )
