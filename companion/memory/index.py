"""The FAISS vector index: a cache of the vectors kept in SQLite, rebuilt whenever it cannot be trusted.

Exact inner product (the vectors are unit length, so this is cosine similarity) while the memory is small; an
IVF index above `IVF_THRESHOLD` vectors, which keeps search fast at hundreds of thousands of vectors and, unlike
HNSW, supports removing ids. Both sit in an IndexIDMap2, so adds and removals are incremental.

The file on disk (`memory.faiss`, 0600) carries a small JSON sidecar with the vector count, a checksum of the
keys and the embedding model. When the file is missing, unreadable, or its sidecar disagrees with the database,
the index is rebuilt from the SQLite vectors: deleting or corrupting it loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from companion.memory.store import Store
from companion.paths import FILE_MODE, atomic_path

IVF_THRESHOLD = 50_000
NPROBE = 16

# FAISS ids: one int64 key per vector, from the item and which text of it was embedded (a message alone, a
# message read with the turn before it, a derived memory).
VARIANT_MESSAGE, VARIANT_MESSAGE_CONTEXT, VARIANT_MEMORY = 0, 1, 2


def vector_key(item_id: int, variant: int) -> int:
    return item_id * 4 + variant


def split_key(key: int) -> tuple[int, int]:
    """(item id, variant) of a vector key."""
    return key // 4, key % 4


def base_key(key: int) -> int:
    """The key a hit is scored under: a message's two vectors count as one message."""
    item, variant = split_key(key)
    return vector_key(item, VARIANT_MEMORY if variant == VARIANT_MEMORY else VARIANT_MESSAGE)


def sidecar_of(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".json")


def describe_saved(store: Store, model: str, path: Path | None) -> tuple[str, str]:
    """(kind, state) of the saved index, read from its sidecar without loading FAISS or the index."""
    if path is None:
        return "in memory", "kept in memory only (the file is encrypted); built when recall starts"
    try:
        meta = json.loads(sidecar_of(path).read_text())
    except (OSError, ValueError):
        return "none yet", "not built yet: it is built from the memory file at the first search"
    kind = meta.get("kind") or ("IVF" if int(meta.get("count") or 0) >= IVF_THRESHOLD else "exact (flat)")
    count, checksum = store.vector_fingerprint(model)
    if meta.get("model") != model:
        return kind, "saved for another embedding model: rebuilt at the next search"
    if meta.get("count") == count and meta.get("checksum") == checksum:
        return kind, "saved, up to date"
    return kind, "saved, brought up to date at the next search"


def _faiss() -> Any:
    import faiss

    return faiss


class VectorIndex:
    def __init__(self, store: Store, model: str, dim: int, path: Path | None) -> None:
        self.store = store
        self.model = model
        self.dim = dim
        self.path = path
        self._lock = threading.RLock()
        self.index: Any = None
        self.state = "empty"
        self.dirty = False

    @property
    def sidecar(self) -> Path | None:
        return sidecar_of(self.path) if self.path else None

    def _new_index(self, count: int, sample: np.ndarray | None) -> Any:
        faiss = _faiss()
        if count < IVF_THRESHOLD or sample is None or len(sample) < 1000:
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        nlist = int(math.sqrt(count))  # FAISS wants >= 39 training points per list: 20k samples cover 500k
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(sample)
        ivf.nprobe = NPROBE
        return faiss.IndexIDMap2(ivf)

    def open(self) -> str:
        """Load the saved index if it matches the database, else rebuild. Returns how it was opened."""
        with self._lock:
            count, checksum = self.store.vector_fingerprint(self.model)
            if self.path and self.path.exists() and self.sidecar and self.sidecar.exists():
                try:
                    meta = json.loads(self.sidecar.read_text())
                    if meta.get("model") == self.model and meta.get("dim") == self.dim:
                        index = _faiss().read_index(str(self.path))
                        if index.d == self.dim and index.ntotal == meta.get("count"):
                            self.index = index
                            self._tune()
                            if (meta.get("count"), meta.get("checksum")) == (count, checksum):
                                self.state = "loaded"
                                return self.state
                            # A few vectors came or went since it was saved: bring it in line, do not rebuild.
                            self.state = "loaded and synced " + self._sync()
                            return self.state
                except (OSError, ValueError, RuntimeError, AttributeError):
                    self.index = None  # corrupt or foreign: rebuilt below
            self.rebuild()
            self.state = "rebuilt"
            return self.state

    def _tune(self) -> None:
        faiss = _faiss()
        inner = faiss.downcast_index(self.index.index)
        if hasattr(inner, "nprobe"):
            inner.nprobe = NPROBE

    def refresh(self) -> str:
        """The upkeep job's check. An index in memory is brought in line with the vectors in SQLite by adding
        what it lacks and removing what it should not hold (rebuilding a large index would stall recall for
        minutes); only an index that is not open is loaded or rebuilt."""
        with self._lock:
            if self.index is not None:
                return "kept " + self._sync()
        return self.open()

    def _sync(self) -> str:
        """Add the vectors SQLite has and the index lacks, remove those it holds and should not (lock held)."""
        if self.index is None:
            return ""
        held = _faiss().vector_to_array(self.index.id_map)
        query = self.store.conn.execute("select key from vectors where model = ?", (self.model,))
        keys = np.fromiter((r[0] for r in query), dtype=np.int64)
        missing = np.setdiff1d(keys, held, assume_unique=True)
        extra = np.setdiff1d(held, keys, assume_unique=True)
        if len(extra):
            self.index.remove_ids(extra)
        for start in range(0, len(missing), 10_000):
            chunk = [int(k) for k in missing[start : start + 10_000]]
            rows = self.store.conn.execute(
                f"select key, vector from vectors where key in ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(
                len(rows), self.dim
            )
            self.index.add_with_ids(vectors, np.asarray([r[0] for r in rows], dtype=np.int64))
        self.dirty = self.dirty or bool(len(missing) or len(extra))
        self.save()
        return f"(+{len(missing)} -{len(extra)})"

    def rebuild(self) -> None:
        with self._lock:
            keys, vectors = self._all_vectors()
            sample = (
                vectors[np.random.default_rng(0).permutation(len(vectors))[:20_000]] if len(vectors) else None
            )
            self.index = self._new_index(len(keys), sample)
            if len(keys):
                self.index.add_with_ids(vectors, keys)
            self.dirty = True
            self.save()

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self.store.conn.execute(
            "select key, vector from vectors where model = ? order by key", (self.model,)
        ).fetchall()
        keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), self.dim)
        return keys, np.ascontiguousarray(vectors)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys) == 0:
            return
        with self._lock:
            if self.index is None:
                self.open()
                return  # open() rebuilt from the database, which already holds these vectors
            self.index.remove_ids(np.asarray(keys, dtype=np.int64))
            self.index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(keys, dtype=np.int64)
            )
            self.dirty = True

    def remove(self, keys: list[int]) -> None:
        if not keys:
            return
        with self._lock:
            if self.index is None:
                self.open()
                return
            self.index.remove_ids(np.asarray(keys, dtype=np.int64))
            self.dirty = True

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, keys) of the k nearest vectors; keys are -1 where there are fewer."""
        with self._lock:
            if self.index is None:
                self.open()
            if self.index.ntotal == 0:
                return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
            scores, keys = self.index.search(np.asarray(query, dtype=np.float32).reshape(1, -1), k)
            keep = keys[0] >= 0
            return scores[0][keep], keys[0][keep]

    def reconstruct(self, key: int) -> np.ndarray | None:
        with self._lock:
            try:
                return np.asarray(self.index.reconstruct(int(key)))
            except (RuntimeError, AttributeError):
                return None

    @property
    def size(self) -> int:
        return int(self.index.ntotal) if self.index is not None else 0

    @property
    def kind(self) -> str:
        if self.index is None:
            return "not loaded"
        inner = type(_faiss().downcast_index(self.index.index)).__name__
        return {"IndexFlatIP": "exact (flat)", "IndexIVFFlat": "IVF"}.get(inner, inner)

    def save(self) -> None:
        """Write the index and its sidecar atomically (skipped when nothing changed or there is no path)."""
        with self._lock:
            if not self.dirty or self.path is None or self.index is None:
                return
            count, checksum = self.store.vector_fingerprint(self.model)
            if count != self.index.ntotal:
                return  # a writer is mid-way; the next save (or the next open) settles it
            with atomic_path(self.path) as tmp:
                _faiss().write_index(self.index, str(tmp))
            assert self.sidecar is not None
            with atomic_path(self.sidecar) as tmp:
                tmp.write_text(
                    json.dumps(
                        {
                            "count": count,
                            "checksum": checksum,
                            "model": self.model,
                            "dim": self.dim,
                            "kind": self.kind,
                        }
                    )
                )
            with contextlib.suppress(OSError):
                self.path.chmod(FILE_MODE)
            self.dirty = False
