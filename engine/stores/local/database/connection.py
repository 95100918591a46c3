"""Opening the SQLite file and running transactions on it: the connection settings (WAL, a full sync at
every commit, how long to wait for another process's lock), explicit read and write transactions, the
mapping of SQLite failures to operator-readable errors, and the file's size on disk."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from engine.errors import BackendUnavailableError

#: How long a statement waits for another process's write lock before we report the file as locked.
BUSY_TIMEOUT_S = 10.0


def _describe(exc: sqlite3.Error) -> str:
    return str(exc) or type(exc).__name__


def translate(exc: BaseException, path: Path) -> BaseException:
    """An engine error with a hint for the SQLite failures we can name; anything else unchanged."""
    if not isinstance(exc, sqlite3.Error):
        return exc
    text = _describe(exc).lower()
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return BackendUnavailableError(
            f"the data file {path} is corrupted ({_describe(exc)})",
            f"stop every semcache process, move {path.name} (and its -wal/-shm files) out of "
            f"{path.parent} and restart with an empty cache, or restore it from a backup",
        )
    if "locked" in text or "busy" in text:
        return BackendUnavailableError(
            f"the data file {path} stayed locked by another process for over {BUSY_TIMEOUT_S:.0f} s",
            "check for a stuck semcache process using the same data folder, then retry",
        )
    if "readonly" in text or "read-only" in text:
        return BackendUnavailableError(
            f"the data file {path} is read-only", f"give this user write access to {path.parent}"
        )
    if "full" in text:
        return BackendUnavailableError(
            f"the disk holding {path} is full",
            "free some space, or run `semcache-tui purge` to drop expired entries",
        )
    return BackendUnavailableError(
        f"the data file {path} cannot be used ({_describe(exc)})",
        f"check that {path.parent} exists, is on a local disk and is writable by this user (SEMCACHE_DATA_DIR)",
    )


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are explicit (BEGIN IMMEDIATE for writes)."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is synced at every commit, so an acknowledged write survives power loss as well
        # as a killed process. Lookup counters are batched (~1 s) so this costs one sync per write call.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    # IMMEDIATE takes the write lock up front, so two processes never both read-then-write and deadlock.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextlib.contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One consistent view of the file across several statements."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def size_on_disk(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            total += (path.parent / (path.name + suffix)).stat().st_size
    return total
