"""Write a file so a reader (or a crash) sees the old content or the new, never half of it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: Path, suffix: str = ".partial") -> Iterator[Path]:
    """A temporary path beside ``target`` to write; on success it is synced to disk and renamed over
    ``target`` in one step, on any failure it is removed and ``target`` is left as it was."""
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(partial)
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
