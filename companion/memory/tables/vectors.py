"""The vectors table: the embeddings (float32) of every message and memory recall can find, by key and model.
The SQLite file alone is the whole memory; the FAISS index is a cache of this table, which follows each
write's `Write.change` once the write has committed."""

from __future__ import annotations

import sqlite3

import numpy as np

from companion.memory.db.store import Store
from companion.memory.records import READ_WITH, VARIANT_MESSAGE, TurnBefore, split_key
from companion.memory.tables import Write, chunks, marks


def put(w: Write, kind: str, keys: list[int], vectors: np.ndarray, model: str) -> None:
    """Vectors for items (an upsert per key, so the fingerprint triggers see one vector, not two)."""
    w.conn.executemany(
        "insert into vectors (key, kind, item_id, variant, model, vector) values (?, ?, ?, ?, ?, ?)"
        " on conflict(key) do update set kind = excluded.kind, item_id = excluded.item_id,"
        " variant = excluded.variant, model = excluded.model, vector = excluded.vector",
        [
            (
                int(k),
                kind,
                split_key(int(k))[0],
                split_key(int(k))[1],
                model,
                np.asarray(v, np.float32).tobytes(),
            )
            for k, v in zip(keys, vectors, strict=True)
        ],
    )
    w.change.add([int(k) for k in keys], vectors)


def remove(w: Write, keys: list[int]) -> None:
    for chunk in chunks(sorted(keys)):
        w.conn.execute(f"delete from vectors where key in ({marks(chunk)})", chunk)
    w.change.remove(keys)


def remove_other_models(w: Write, model: str) -> None:
    """Vectors of a model no longer in use (the user switched embedding models). The index is rebuilt for
    the model in use, so it holds none of them."""
    w.conn.execute("delete from vectors where model != ?", (model,))


def remove_orphans(w: Write) -> None:
    """Memory vectors whose memory is gone."""
    w.conn.execute("delete from vectors where kind = 'memory' and item_id not in (select id from memories)")


def fingerprint(store: Store, model: str) -> tuple[int, int]:
    """(count, checksum) of the vectors of one model: what a saved FAISS index must match. Kept by triggers,
    so it costs nothing to read."""
    row = store.conn.execute(
        "select count, checksum from vector_fingerprints where model = ?", (model,)
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def rewrites(conn: sqlite3.Connection, model: str) -> int:
    """How many times a vector of one model was rewritten under its own key (kept by a trigger): a FAISS index
    made before the latest of them holds an old vector somewhere."""
    row = conn.execute("select rewrites from vector_fingerprints where model = ?", (model,)).fetchone()
    return int(row[0]) if row else 0


def other_models(store: Store, model: str) -> bool:
    """Whether vectors of another model are there (counted by triggers: no scan)."""
    row = store.conn.execute(
        "select 1 from vector_fingerprints where model != ? and count > 0", (model,)
    ).fetchone()
    return row is not None


def count(store: Store, model: str) -> int:
    return int(store.scalar("select count(*) from vectors where model = ?", (model,)) or 0)


def keys(store: Store, model: str) -> np.ndarray:
    query = store.conn.execute("select key from vectors where model = ?", (model,))
    return np.fromiter((r[0] for r in query), dtype=np.int64)


def of_keys(store: Store, wanted: list[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys, vectors) of the keys that are there."""
    rows = store.conn.execute(
        f"select key, vector from vectors where key in ({marks(wanted)})", wanted
    ).fetchall()
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
    return np.asarray([r[0] for r in rows], dtype=np.int64), vectors


def every(store: Store, model: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys, vectors) of every vector of one model, in key order."""
    rows = store.conn.execute(
        "select key, vector from vectors where model = ? order by key", (model,)
    ).fetchall()
    found = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
    return found, np.ascontiguousarray(vectors)


def newest_message(store: Store, model: str) -> int:
    """The newest message that has a vector of this model (0: none)."""
    return int(
        store.scalar("select max(item_id) from vectors where kind = 'message' and model = ?", (model,)) or 0
    )


def plain_vectors(store: Store, model: str, message_ids: list[int]) -> dict[int, np.ndarray]:
    """The vectors of these messages' texts alone (of this model), by message: what a context vector is the
    sum of."""
    out: dict[int, np.ndarray] = {}
    for chunk in chunks(sorted(message_ids)):
        rows = store.conn.execute(
            f"select item_id, vector from vectors where kind = 'message' and variant = ? and model = ?"
            f" and item_id in ({marks(chunk)})",
            (VARIANT_MESSAGE, model, *chunk),
        )
        out |= {item: np.frombuffer(blob, dtype=np.float32).copy() for item, blob in rows}
    return out


def messages_with(store: Store, model: str, message_ids: list[int]) -> list[int]:
    """Those of these messages that have a vector of this model (those in recall)."""
    out: list[int] = []
    for chunk in chunks(sorted(message_ids)):
        rows = store.conn.execute(
            "select distinct item_id from vectors where kind = 'message' and model = ?"
            f" and item_id in ({marks(chunk)})",
            (model, *chunk),
        )
        out += [r[0] for r in rows]
    return sorted(out)


def messages_without(store: Store, model: str, after: int = 0) -> list[int]:
    """Messages in recall (not archived) after `after` that have no vector of this model."""
    rows = store.conn.execute(
        "select id from messages m where id > ? and archived = 0 and not exists (select 1 from vectors v"
        " where v.kind = 'message' and v.item_id = m.id and v.model = ?) order by id",
        (after, model),
    )
    return [r[0] for r in rows]


def memories_without(store: Store, model: str) -> list[int]:
    """Memories in use that have no vector of this model."""
    rows = store.conn.execute(
        "select id from memories m where archived = 0 and valid_to is null and not exists (select 1 from"
        " vectors v where v.kind = 'memory' and v.item_id = m.id and v.model = ?) order by id",
        (model,),
    )
    return [r[0] for r in rows]


def before_in_session(store: Store, model: str, session_id: int, first: int) -> list[TurnBefore]:
    """The last turns before `first` in its session's conversation (`READ_WITH` of them, oldest first), each
    with its plain vector if it has one."""
    rows = store.conn.execute(
        "select m.id, m.text, v.vector, m.role, m.speaker, m.created_at from messages m left join vectors v on"
        " v.key = m.id * 4 + ? and v.model = ? where m.session_id = ? and m.id < ? and m.replaced = 0"
        f" order by m.id desc limit {READ_WITH}",
        (VARIANT_MESSAGE, model, session_id, first),
    ).fetchall()
    return [
        TurnBefore(
            int(r[0]), str(r[1]), np.frombuffer(r[2], dtype=np.float32) if r[2] is not None else None, *r[3:]
        )
        for r in reversed(rows)
    ]
