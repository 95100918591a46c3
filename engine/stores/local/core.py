"""``LocalCore``: the state and plumbing every part of ``LocalStore`` stands on.

Construction (paths, HNSW parameters, the graph follower, the pending lookups), running SQLite work under
the right lock, opening the file lazily (every operation starts with ``open``), reaching the graphs, and
the background tasks (counter flushes, maintenance) that ``close`` waits for.

Threads: three SQLite connections, each behind its own lock, so a long graph build (the follower's) or a
write waiting for a disk sync (``_writer``) never holds up a ``get`` (``_reader``). Sub-millisecond work
(``get``, ``search``) runs on the event loop when its lock is free, because handing it to a thread would
cost more than the work; anything that may take longer goes to ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from engine.config import INDEX_NAME_RULE, valid_index_name
from engine.errors import BackendUnavailableError, ConfigError
from engine.models import EmbedderIdentity
from engine.stores.local import database as db
from engine.stores.local.follower import GraphFollower
from engine.stores.local.graphs import ScopeGraphs
from engine.stores.local.lookups import PendingLookups

# The name the store logged under before it was split into modules, so log configuration keeps matching.
log = logging.getLogger("engine.stores.local.store")
T = TypeVar("T")

#: How stale a search may be with respect to other processes' writes.
REFRESH_INTERVAL_S = 0.25
#: How often a busy store purges expired entries and considers a graph snapshot.
MAINTENANCE_INTERVAL_S = 60.0
#: Graph changes since the last snapshot that make a new one worth writing.
SNAPSHOT_AFTER_CHANGES = 1000


class LocalCore:
    """State and plumbing of ``LocalStore``; the mixins beside it build on this."""

    def __init__(
        self,
        data_dir: Path,
        name: str = "semantic_cache",
        *,
        hnsw_m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
    ) -> None:
        if not valid_index_name(name) or name.strip(".") == "":
            raise ConfigError("CACHE_INDEX_NAME", name, f"use {INDEX_NAME_RULE}")
        self.name = name
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / f"{name}.sqlite3"
        self.snapshot_dir = self.data_dir / f"{name}.hnsw"
        self.hnsw_m, self.ef_construction, self.ef_search = hnsw_m, ef_construction, ef_search
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_lock, self._read_lock = threading.Lock(), threading.Lock()
        self._identity: EmbedderIdentity | None = None
        self._follower = GraphFollower(
            self.path, self.snapshot_dir, m=hnsw_m, ef_construction=ef_construction, ef_search=ef_search
        )
        self._last_check = 0.0
        self._next_maintenance = time.monotonic() + MAINTENANCE_INTERVAL_S
        self._pending = PendingLookups()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()

    # -- plumbing ----------------------------------------------------------------------------------------

    def _translated(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise db.translate(exc, self.path) from exc

    def _run(self, lock: threading.Lock, fn: Callable[..., T], *args: Any) -> T:
        with lock:
            return self._translated(fn, *args)

    async def _thread(self, lock: threading.Lock, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(self._run, lock, fn, *args)

    async def _quick(self, lock: threading.Lock, fn: Callable[..., T], *args: Any) -> T:
        """Run short work inline when ``lock`` is free; wait for it in a thread otherwise."""
        if lock.acquire(blocking=False):
            try:
                return self._translated(fn, *args)
            finally:
                lock.release()
        return await self._thread(lock, fn, *args)

    @property
    def _conn(self) -> sqlite3.Connection:
        assert self._reader is not None
        return self._reader

    @property
    def _wconn(self) -> sqlite3.Connection:
        assert self._writer is not None
        return self._writer

    # -- opening -----------------------------------------------------------------------------------------

    @property
    def recorded_identity(self) -> EmbedderIdentity | None:
        return self._identity

    async def open(self) -> EmbedderIdentity | None:
        if self._reader is None:
            await asyncio.to_thread(self._open_sync)
        return self._identity

    def _open_sync(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(
                f"cannot create the data folder {self.data_dir} ({exc.strerror or exc})",
                "set SEMCACHE_DATA_DIR to a folder this user can create and write",
            ) from exc
        connections: list[sqlite3.Connection] = []
        try:
            for _ in range(3):
                connections.append(db.connect(self.path))
            db.setup(connections[0], self.path)
            self._identity = db.read_identity(connections[0])
            self._follower.attach(connections[2], db.instance(connections[0]))
        except sqlite3.Error as exc:
            for conn in connections:
                conn.close()
            raise db.translate(exc, self.path) from exc
        except BaseException:
            for conn in connections:
                conn.close()
            raise
        self._writer, self._reader = connections[:2]

    # -- graphs and background work ----------------------------------------------------------------------

    async def _ensure_graphs(self) -> ScopeGraphs | None:
        if self._follower.graphs is None and self._identity is not None:
            await asyncio.to_thread(self._follower.build, self._identity)
        return self._follower.graphs

    async def _sync(self) -> None:
        await asyncio.to_thread(self._follower.sync)

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("background work of the local store failed: %s", task.exception())
