"""Long-term memory: the SQLite memory file, embeddings, the FAISS index and retrieval.

`open_memory` is the one way in: it unlocks the file when it is encrypted, opens it and returns the
`LongTermMemory` over it (the engine, the app and every command use it). Heavy libraries load on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from companion.config import MemorySettings
    from companion.memory.operations import LongTermMemory
    from companion.paths import Paths


def open_memory(
    paths: Paths, settings: MemorySettings, ask: Callable[[str], str] | None = None
) -> LongTermMemory:
    """The memory file, unlocked when it is encrypted (`ask` prompts for a passphrase), and its long-term
    memory. An encrypted file's FAISS index (the embeddings in the clear) is kept in memory only, rebuilt at
    start. Close it with `LongTermMemory.close()`."""
    from companion.memory import encryption
    from companion.memory.db.store import Store
    from companion.memory.operations import LongTermMemory

    encryption.recover(
        paths
    )  # what an interrupted encrypt or decrypt left, when no one else has the file open
    # The key is found once this process holds the file's shared lock: an encrypt or decrypt another process
    # is running is waited out first, and the key fits the file as it is after it.
    store = Store(paths.database, unlock=lambda: encryption.unlock_key(paths.database, ask))
    index = None if store.key is not None else paths.index_file
    return LongTermMemory(store, index, settings.embedding_model, settings.tau_days)
