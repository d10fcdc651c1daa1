"""The FAISS vector index: a cache of the vectors kept in SQLite, rebuilt whenever it cannot be trusted.

Exact inner product (the vectors are unit length, so this is cosine similarity) while the memory is small; an
IVF index above `IVF_THRESHOLD` vectors, which keeps search fast at hundreds of thousands of vectors and, unlike
HNSW, supports removing ids. The exact one sits in an IndexIDMap2; the IVF index keeps the keys itself (with a
hash table from key to vector), so adds and removals are incremental in both. An IVF index inside an IndexIDMap2
(how earlier versions saved it) breaks at its second removal: FAISS renumbers the map but not the IVF's own
entries, then aborts the process on an assertion; such a file is rebuilt.

The file on disk (`memory.faiss`, 0600) carries a small JSON sidecar with the vector count, a checksum of the
keys and the embedding model. When the file is missing, unreadable, or its sidecar disagrees with the database,
the index is rebuilt from the SQLite vectors: deleting or corrupting it loses nothing.

A large saved index (a million messages: gigabytes) is memory-mapped at open instead of read — recall is ready
in a fraction of a second and pages come in as they are searched. A mapped index cannot change, so what changes
afterwards goes beside it: new vectors into a small flat index (`memory.faiss.delta`), removed ones into a list
of hidden keys (in the sidecar). The nightly index job folds them back into one index (`compact`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from companion.memory.db.cipher import shred
from companion.memory.db.store import Store
from companion.memory.records import VectorChange
from companion.memory.tables import vectors as vector_table
from companion.paths import FILE_MODE, atomic_path

IVF_THRESHOLD = 50_000
NPROBE = 16


def sidecar_of(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".json")


def describe_saved(store: Store, model: str, path: Path | None) -> tuple[str, str]:
    """(kind, state) of the saved index, read from its sidecar without loading FAISS or the index."""
    if path is None:
        return "in memory", "kept in memory only (the file is encrypted); built when recall starts"
    meta = read_sidecar(sidecar_of(path))
    if not meta:
        return "none yet", "not built yet: it is built from the memory file at the first search"
    kind = meta.get("kind") or ("IVF" if int(meta.get("count") or 0) >= IVF_THRESHOLD else "exact (flat)")
    count, checksum = vector_table.fingerprint(store, model)
    if meta.get("model") != model:
        return kind, "saved for another embedding model: rebuilt at the next search"
    if int(meta.get("rewrites") or 0) != vector_table.rewrites(store.conn, model):
        return kind, "saved before a vector changed: rebuilt at the next search"
    if meta.get("count") == count and meta.get("checksum") == checksum:
        return kind, "saved, up to date"
    return kind, "saved, brought up to date at the next search"


def read_sidecar(path: Path) -> dict[str, Any]:
    """The sidecar's fields; {} when it is missing, unreadable or not a JSON object (the index is rebuilt)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _faiss() -> Any:
    import faiss

    return faiss


log = logging.getLogger(__name__)

MAP_ABOVE_BYTES = 64 * 2**20  # a saved index larger than this is memory-mapped at open, not read


def delta_of(path: Path) -> Path:
    return path.with_name(path.name + ".delta")


PART_STALE_SECONDS = 600  # a save's temporary file older than this was left by a process that died


def file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def saved_files(path: Path) -> list[Path]:
    """Every file that holds vectors of the index saved at `path`: the index, its sidecar, its delta, and the
    temporary `.part` files of saves (one a crash left stays until it is cleared)."""
    parts = sorted(path.parent.glob(f".{path.name}*.part")) if path.parent.is_dir() else []
    return [p for p in (path, sidecar_of(path), delta_of(path)) if p.exists()] + parts


def stale_parts(path: Path, now: float | None = None) -> list[Path]:
    """The `.part` files of saves that never finished (kill -9 mid-save): old enough that no save is writing
    them now."""
    now = time.time() if now is None else now
    found = []
    for part in saved_files(path):
        if part.suffix == ".part":
            with contextlib.suppress(FileNotFoundError):
                if now - part.stat().st_mtime > PART_STALE_SECONDS:
                    found.append(part)
    return found


class VectorIndex:
    """The vectors of one embedding model in FAISS. Either one writable index in memory (`index`), or a
    memory-mapped saved index (`mapped`, read-only) with the changes since beside it (`delta`, `hidden`)."""

    def __init__(self, store: Store, model: str, dim: int, path: Path | None) -> None:
        self.store = store
        self.model = model
        self.dim = dim
        self.path = path
        self._lock = threading.RLock()
        self.index: Any = None
        self.mapped: Any = None
        self.delta: Any = None
        self.hidden: set[int] = set()
        self._base_keys = np.zeros(0, dtype=np.int64)  # the mapped index's keys, sorted
        self.state = "empty"
        self.dirty = False
        self.rewrites = 0  # the file's vector rewrites this index has followed (`vector_table.rewrites`)

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
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # a vector by its key (reconstruct) and removals
        return ivf

    def _flat(self) -> Any:
        faiss = _faiss()
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def open(self) -> str:
        """Open the saved index if it matches the database (memory-mapped when it is large), else rebuild.
        Returns how it was opened."""
        with self._lock:
            if self.path is not None:
                for part in stale_parts(self.path):  # a save that a crash cut short: its vectors go
                    shred(part)
            count, checksum = vector_table.fingerprint(self.store, self.model)
            rewrites = vector_table.rewrites(self.store.conn, self.model)
            if self._open_saved(rewrites):
                self.rewrites = rewrites
                self._tune()
                meta = read_sidecar(self.sidecar) if self.sidecar else {}
                how = "mapped" if self.mapped is not None else "loaded"
                if (meta.get("count"), meta.get("checksum")) == (count, checksum):
                    self.state = how
                    return self.state
                # A few vectors came or went since it was saved: bring it in line, do not rebuild.
                self.state = f"{how} and synced " + self._sync()
                return self.state
            self.rebuild()
            self.state = "rebuilt"
            return self.state

    def _open_saved(self, rewrites: int) -> bool:
        """The saved index (and what changed beside it), when it is there, readable, of this model and saved
        after the file's latest vector rewrite (`rewrites`: which vector changed is not known, so an older one
        is rebuilt rather than synced)."""
        self.index = self.mapped = self.delta = None
        self.hidden = set()
        if not (self.path and self.path.exists() and self.sidecar and self.sidecar.exists()):
            return False
        faiss = _faiss()
        try:
            meta = read_sidecar(self.sidecar)
            if not meta:
                return False
            if meta.get("model") != self.model or meta.get("dim") != self.dim:
                return False
            if int(meta.get("rewrites") or 0) != rewrites:
                return False
            large = self.path.stat().st_size > MAP_ABOVE_BYTES
            if not large and meta.get("digest") and file_digest(self.path) != meta["digest"]:
                return False  # damaged (its header may be intact): rebuilt, not trusted
            base = faiss.read_index(str(self.path), faiss.IO_FLAG_MMAP if large else 0)
            if _ivf_in_a_map(base):
                return False  # an earlier version's layout: its second removal would abort the process
            if base.d != self.dim or base.ntotal != meta.get("base_count", meta.get("count")):
                return False
            if large and not self._sample_holds(base):
                return False
            delta_file = delta_of(self.path)
            delta = faiss.read_index(str(delta_file)) if meta.get("delta") and delta_file.exists() else None
            if meta.get("delta") and delta is None:
                return False
        except (OSError, ValueError, RuntimeError, AttributeError, TypeError):
            return False  # corrupt or foreign: rebuilt
        hidden = {int(k) for k in meta.get("hidden", [])}
        if large:
            self.mapped, self.delta, self.hidden = base, delta or self._flat(), hidden
            self._base_keys = np.sort(_ids(base))
        else:  # a small index is read whole; what was beside it is folded in
            self.index = _folded(base, hidden, delta)
            self.dirty = bool(hidden) or (delta is not None and delta.ntotal > 0)
        return True

    def _sample_holds(self, base: Any, n: int = 16) -> bool:
        """A large mapped index is not hashed at every open (gigabytes): a sample of its vectors must be the
        ones SQLite holds for their keys."""
        keys = _ids(base)
        if not len(keys):
            return True
        picked = keys[np.linspace(0, len(keys) - 1, num=min(n, len(keys)), dtype=np.int64)]
        found, vectors = vector_table.of_keys(self.store, [int(k) for k in picked], self.dim)
        try:
            for key, vector in zip(found, vectors, strict=True):
                if not np.allclose(np.asarray(base.reconstruct(int(key))), vector, atol=1e-3):
                    return False
        except RuntimeError:
            return True  # an index kind that cannot give a vector back: the count and keys stand for it
        return True

    def _tune(self) -> None:
        for index in (self.index, self.mapped):
            if index is not None:
                inner = _inner(index)
                if hasattr(inner, "nprobe"):
                    inner.nprobe = NPROBE

    def refresh(self) -> str:
        """The upkeep job's check. An open index is brought in line with the vectors in SQLite by adding what
        it lacks and removing what it should not hold (rebuilding a large index would stall recall for
        minutes); a mapped one is then folded into one writable index and saved whole. Only an index that is
        not open, or behind another process's rewrite of a vector (`follow`), is loaded or rebuilt."""
        with self._lock:
            if self.index is None and self.mapped is None:
                return self.open()
            if self.follow():
                return "reopened, " + self.state
            synced = self._sync()
        compacted = self.compact()
        return "kept " + synced + (", compacted" if compacted else "")

    def compact(self) -> bool:
        """Fold a mapped index and what changed beside it into one writable index (read whole, outside the
        lock: recall goes on meanwhile), and save it. False when there was nothing mapped."""
        with self._lock:
            if self.mapped is None or self.path is None:
                return False
        whole = _faiss().read_index(str(self.path))  # the slow part, while searches use the mapped index
        with self._lock:
            if self.mapped is None:
                return False
            self.index = _folded(whole, self.hidden, self.delta)
            self.mapped, self.delta, self.hidden = None, None, set()
            self._base_keys = np.zeros(0, dtype=np.int64)
            self._tune()
            self.dirty = True
            self.save()
            return True

    def follow(self) -> bool:
        """Another process rewrote a vector under its own key since this index was made (`memory edit`, a file
        read again by `maintain`): keys alone do not show it, so the index is opened again, from the saved
        index that process wrote when it matches, else rebuilt. One small read when nothing changed."""
        with self._lock:
            if self.index is None and self.mapped is None:
                return False
            if vector_table.rewrites(self.store.conn, self.model) == self.rewrites:
                return False
            self.open()
            return True

    def wrote(self, before: int, after: int) -> None:
        """This process's own committed write took the file's rewrites from `before` to `after`, and its
        vectors are applied here: the index is not behind for them (it stays behind for anyone else's)."""
        with self._lock:
            if self.rewrites == before:
                self.rewrites = after

    def _keys(self) -> np.ndarray:
        """Every key the open index holds (lock held)."""
        faiss = _faiss()
        if self.index is not None:
            return _ids(self.index)
        base = self._base_keys
        if self.hidden:
            base = base[~np.isin(base, np.fromiter(self.hidden, dtype=np.int64))]
        extra = faiss.vector_to_array(self.delta.id_map) if self.delta is not None else np.zeros(0, np.int64)
        return np.union1d(base, extra)

    def _sync(self) -> str:
        """Add the vectors SQLite has and the index lacks, remove those it holds and should not (lock held)."""
        if self.index is None and self.mapped is None:
            return ""
        held = self._keys()
        keys = vector_table.keys(self.store, self.model)
        missing = np.setdiff1d(keys, held, assume_unique=True)
        extra = np.setdiff1d(held, keys, assume_unique=True)
        if len(extra):
            self._remove(extra)
        for start in range(0, len(missing), 10_000):
            chunk = [int(k) for k in missing[start : start + 10_000]]
            found, stored = vector_table.of_keys(self.store, chunk, self.dim)
            self._add(found, stored)
        self.dirty = self.dirty or bool(len(missing) or len(extra))
        self.save()
        return f"(+{len(missing)} -{len(extra)})"

    def rebuild(self) -> None:
        with self._lock:
            self.rewrites = vector_table.rewrites(self.store.conn, self.model)  # before: a later one shows
            keys, vectors = self._all_vectors()
            sample = (
                vectors[np.random.default_rng(0).permutation(len(vectors))[:20_000]] if len(vectors) else None
            )
            self.mapped, self.delta, self.hidden = None, None, set()
            self.index = self._new_index(len(keys), sample)
            if len(keys):
                self.index.add_with_ids(vectors, keys)
            self.dirty = True
            self.save()

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        return vector_table.every(self.store, self.model, self.dim)

    def _add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) vectors in whichever form the index is open (lock held)."""
        keys = np.asarray(keys, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.index is not None:
            self.index.remove_ids(keys)
            self.index.add_with_ids(vectors, keys)
        else:  # a mapped index cannot change: the new vectors go beside it, its own copies are hidden
            self.hidden.update(int(k) for k in keys)
            self.delta.remove_ids(keys)
            self.delta.add_with_ids(vectors, keys)
        self.dirty = True

    def _remove(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        if self.index is not None:
            self.index.remove_ids(keys)
        else:
            self.hidden.update(int(k) for k in keys)
            self.delta.remove_ids(keys)
        self.dirty = True

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys) == 0:
            return
        with self._lock:
            if self.index is None and self.mapped is None:
                self.open()
                return  # open() rebuilt from the database, which already holds these vectors
            self._add(keys, vectors)

    def apply(self, change: VectorChange) -> None:
        """Follow one committed write of the vectors table: its removed keys go, its added vectors join."""
        if change.removed:
            self.remove(sorted(change.removed))
        if change.added:
            keys = np.fromiter(change.added, dtype=np.int64, count=len(change.added))
            self.add(keys, np.vstack([np.asarray(v, np.float32) for v in change.added.values()]))

    def remove(self, keys: list[int]) -> None:
        if not keys:
            return
        with self._lock:
            if self.index is None and self.mapped is None:
                self.open()
                return
            self._remove(np.asarray(keys, dtype=np.int64))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, keys) of the k nearest vectors; keys are -1 where there are fewer."""
        with self._lock:
            if self.index is None and self.mapped is None:
                self.open()
            else:
                self.follow()
            q = np.asarray(query, dtype=np.float32).reshape(1, -1)
            if self.index is not None:
                if self.index.ntotal == 0:
                    return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
                scores, keys = self.index.search(q, k)
                keep = keys[0] >= 0
                return scores[0][keep], keys[0][keep]
            found: list[tuple[float, int]] = []
            scores, keys = self.mapped.search(q, k + min(len(self.hidden), 4 * k))
            found += [
                (s, key)
                for s, key in zip(scores[0].tolist(), keys[0].tolist(), strict=True)
                if key >= 0 and key not in self.hidden
            ]
            if self.delta is not None and self.delta.ntotal:
                scores, keys = self.delta.search(q, k)
                found += [
                    (s, key) for s, key in zip(scores[0].tolist(), keys[0].tolist(), strict=True) if key >= 0
                ]
            found.sort(key=lambda item: -item[0])
            found = found[:k]
            return np.asarray([s for s, _ in found], dtype=np.float32), np.asarray(
                [key for _, key in found], dtype=np.int64
            )

    def reconstruct(self, key: int) -> np.ndarray | None:
        with self._lock:
            for index in (self.index, self.delta, None if key in self.hidden else self.mapped):
                if index is None:
                    continue
                try:
                    return np.asarray(index.reconstruct(int(key)))
                except (RuntimeError, AttributeError):
                    continue
            return None

    @property
    def size(self) -> int:
        if self.index is not None:
            return int(self.index.ntotal)
        if self.mapped is not None:  # every key in the delta is hidden in the mapped index
            hidden = np.fromiter(self.hidden, dtype=np.int64, count=len(self.hidden))
            gone = int(np.isin(hidden, self._base_keys, assume_unique=True).sum()) if len(hidden) else 0
            return int(self.mapped.ntotal) - gone + int(self.delta.ntotal)
        return 0

    @property
    def kind(self) -> str:
        index = self.index if self.index is not None else self.mapped
        if index is None:
            return "not loaded"
        inner = type(_inner(index)).__name__
        name = {"IndexFlatIP": "exact (flat)", "IndexIVFFlat": "IVF"}.get(inner, inner)
        return name + (" (mapped)" if self.mapped is not None else "")

    def save(self) -> None:
        """Write the index and its sidecar atomically (skipped when nothing changed or there is no path). A
        mapped index writes only what changed beside it: the delta and the hidden keys. The index is a cache of
        SQLite: a save the disk refuses (full, read-only) is left for later, never an error after a commit."""
        try:
            self._save()
        except (OSError, RuntimeError) as error:
            log.warning("the vector index was not saved (%s); it is saved or rebuilt later", error)

    def _save(self) -> None:
        with self._lock:
            if not self.dirty or self.path is None or (self.index is None and self.mapped is None):
                return
            count, checksum = vector_table.fingerprint(self.store, self.model)
            if count != self.size:
                return  # a writer is mid-way; the next save (or the next open) settles it
            if vector_table.rewrites(self.store.conn, self.model) != self.rewrites:
                return  # behind another process's rewrite: it is opened again, not saved over that one's
            meta: dict[str, Any] = {
                "count": count,
                "checksum": checksum,
                "rewrites": self.rewrites,
                "model": self.model,
                "dim": self.dim,
            }
            if self.index is not None:
                with atomic_path(self.path) as tmp:
                    _faiss().write_index(self.index, str(tmp))
                    if tmp.stat().st_size <= MAP_ABOVE_BYTES:  # read whole at open: its bytes are checked
                        meta["digest"] = file_digest(tmp)
                meta["kind"] = self.kind
                with contextlib.suppress(FileNotFoundError):
                    delta_of(self.path).unlink()
            else:
                with atomic_path(delta_of(self.path)) as tmp:
                    _faiss().write_index(self.delta, str(tmp))
                meta |= {
                    "kind": self.kind.replace(" (mapped)", ""),
                    "base_count": int(self.mapped.ntotal),
                    "delta": True,
                    "hidden": sorted(self.hidden),
                }
            assert self.sidecar is not None
            with atomic_path(self.sidecar) as tmp:
                tmp.write_text(json.dumps(meta))
            with contextlib.suppress(OSError):
                self.path.chmod(FILE_MODE)
            self.dirty = False


def _folded(whole: Any, hidden: set[int], delta: Any) -> Any:
    """`whole` (a writable index) without the hidden keys and with what is in `delta` (replacing its own)."""
    if hidden:
        whole.remove_ids(np.fromiter(hidden, dtype=np.int64))
    if delta is not None and delta.ntotal:
        keys, vectors = _contents(delta)
        whole.remove_ids(keys)
        whole.add_with_ids(vectors, keys)
    return whole


def _inner(index: Any) -> Any:
    """The index that holds the vectors: the one inside an IndexIDMap2, or the IVF index itself."""
    faiss = _faiss()
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index


def _ivf_in_a_map(index: Any) -> bool:
    """An IVF index inside an IndexIDMap2 (an earlier version's saved layout)."""
    faiss = _faiss()
    return isinstance(index, faiss.IndexIDMap) and isinstance(_inner(index), faiss.IndexIVF)


def _ids(index: Any) -> np.ndarray:
    """Every key an index holds: its id map, or the keys in an IVF index's lists."""
    faiss = _faiss()
    if isinstance(index, faiss.IndexIDMap):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    found = [
        faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).astype(np.int64)
        for i in range(ivf.nlist)
        if lists.list_size(i)
    ]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _contents(index: Any) -> tuple[np.ndarray, np.ndarray]:
    """(keys, vectors) of a flat IndexIDMap2."""
    faiss = _faiss()
    keys = faiss.vector_to_array(index.id_map).astype(np.int64)
    vectors = (
        index.index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)
    )
    return keys, np.ascontiguousarray(vectors, dtype=np.float32)
