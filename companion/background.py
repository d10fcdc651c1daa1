"""Background work runs at the lowest CPU priority: on a busy machine an upkeep job (its model, its embedding
batches) takes what the chat, its recall and the screen leave over, and on an idle one it runs at full speed.

Linux only: there `nice` is per thread, so one thread (and the llama.cpp and torch worker threads it starts,
which inherit it) can yield without slowing the rest of the process. Elsewhere it would lower the whole process,
the chat included, so nothing is done.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

BACKGROUND_NICE = 19


def lower_this_thread() -> None:
    """The calling thread yields the CPU to everything else, for the rest of its life (a thread cannot raise
    its priority back without privileges: call it only on threads that do nothing but background work)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
