"""Giving memory back: a panel that loads and closes models (migrations) must not keep their memory."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util


def return_freed_memory() -> None:
    """Hand the memory of a closed model back to the system. glibc keeps freed blocks in per-thread arenas,
    and a model's session is loaded and freed from worker threads: without a trim the RSS creeps up at
    each migration although nothing is kept (bench/panel_memory.py)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
