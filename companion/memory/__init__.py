"""Long-term memory: the SQLite memory file, embeddings, the FAISS index and retrieval.

`open_memory` is the one way in: it unlocks the file when it is encrypted, opens it and returns the
`LongTermMemory` over it (the engine, the app and every command use it). Heavy libraries load on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from companion.config import MemorySettings
    from companion.memory.db.store import Store
    from companion.memory.operations import LongTermMemory
    from companion.paths import Paths


TRIES = 3  # a passphrase typed at the terminal may be mistyped: asked again, this many times in all


def _unlocked(paths: Paths, ask: Callable[[str], str] | None) -> Store:
    """The memory file's store, unlocked; a passphrase typed at the terminal that does not open it is asked
    again (one from the environment or a key in the keyring is not: typing would not change it)."""
    from companion.errors import WrongKeyError
    from companion.memory import encryption
    from companion.memory.db.store import Store

    typed: list[str] = []

    def asking(prompt: str) -> str:
        assert ask is not None
        if typed:
            prompt = "That passphrase does not open the memory file; type it again: "
        typed.append(prompt)
        return ask(prompt)

    while True:
        tries = len(typed)
        try:
            return Store(
                paths.database, unlock=lambda: encryption.unlock_key(paths.database, asking if ask else None)
            )
        except WrongKeyError:
            if len(typed) == tries or len(typed) >= TRIES:  # not typed this time, or typed enough times
                raise


def open_memory(
    paths: Paths, settings: MemorySettings, ask: Callable[[str], str] | None = None
) -> LongTermMemory:
    """The memory file, unlocked when it is encrypted (`ask` prompts for a passphrase), and its long-term
    memory. An encrypted file's FAISS index (the embeddings in the clear) is kept in memory only, rebuilt at
    start. Close it with `LongTermMemory.close()`."""
    from companion.memory import encryption
    from companion.memory.operations import LongTermMemory

    encryption.recover(
        paths
    )  # what an interrupted encrypt or decrypt left, when no one else has the file open
    # The key is found once this process holds the file's shared lock: an encrypt or decrypt another process
    # is running is waited out first, and the key fits the file as it is after it.
    store = _unlocked(paths, ask)
    index = None if store.key is not None else paths.index_file
    return LongTermMemory(store, index, settings.embedding_model, settings.tau_days)
