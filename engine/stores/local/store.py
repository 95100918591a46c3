"""``LocalStore``: the embedded store, the default on a machine without a server.

SQLite (``database``) holds every entry and its exact float32 vector and is the only thing that must
survive; each process keeps HNSW graphs in memory (``graphs``) that follow SQLite's change sequence
(``follower``), and snapshots them to disk so reopening a large cache does not rebuild them from scratch.

Threads: three SQLite connections, each behind its own lock, so a long graph build (the follower's) or a
write waiting for a disk sync (``_writer``) never holds up a ``get`` (``_reader``). Sub-millisecond work
(``get``, ``search``) runs on the event loop when its lock is free, because handing it to a thread would
cost more than the work; anything that may take longer goes to ``asyncio.to_thread``.

The class reads top to bottom: construction, plumbing, life cycle, reads, writes, keeping the graphs
fresh, listing, counters, feedback, inspection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from engine.config import INDEX_NAME_RULE, valid_index_name
from engine.errors import (
    BackendUnavailableError,
    ConfigError,
    IndexMissingError,
    InvalidInputError,
    NotFoundError,
    SemcacheError,
)
from engine.models import (
    CacheEntry,
    ComponentHealth,
    EmbedderIdentity,
    EntryFeedback,
    EntryPage,
    IndexInfo,
    Match,
    StoreCounters,
    clamp_distance,
)
from engine.stores.base import Capacity, check_expiry, mismatch_error, unit_vector
from engine.stores.breadth import ef_for, usearch_reach
from engine.stores.local import database as db
from engine.stores.local.copies import ERROR_BOUND
from engine.stores.local.follower import COMPACT_MIN_REMOVED, COMPACT_RATIO, GraphFollower, folder_size
from engine.stores.local.graphs import DTYPE, Candidates, ScopeGraphs
from engine.stores.local.lookups import FLUSH_DELAY_S, PendingLookups

__all__ = ["LocalStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How stale a search may be with respect to other processes' writes.
REFRESH_INTERVAL_S = 0.25
#: How often a busy store purges expired entries and considers a graph snapshot.
MAINTENANCE_INTERVAL_S = 60.0
#: Graph changes since the last snapshot that make a new one worth writing.
SNAPSHOT_AFTER_CHANGES = 1000


class LocalStore:
    kind = "local"
    #: The graphs' connectivity unless SEMCACHE_HNSW_M says otherwise: at a million entries an M 16 graph
    #: found the nearest entry 0.986-0.995 of the time however wide the search, M 24 0.999 at half the
    #: breadth, in two thirds of the time (breadth.py).
    DEFAULT_M = 24

    def __init__(
        self,
        data_dir: Path,
        name: str = "semantic_cache",
        *,
        hnsw_m: int | None = None,
        ef_construction: int = 200,
        ef_search: int = 64,
        rerank_copies: bool = True,
        capacity: Capacity | None = None,
    ) -> None:
        if not valid_index_name(name):
            raise ConfigError("CACHE_INDEX_NAME", name, INDEX_NAME_RULE)
        self.name = name
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / f"{name}.sqlite3"
        self.snapshot_dir = self.data_dir / f"{name}.hnsw"
        self.hnsw_m = hnsw_m or self.DEFAULT_M
        self.ef_construction, self.ef_search = ef_construction, ef_search
        self.capacity = capacity or Capacity()
        #: Told how many entries each of this process's writes evicted (the server's metrics).
        self.on_evict: Callable[[int], None] | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_lock, self._read_lock = threading.Lock(), threading.Lock()
        #: The identity the file records (read on open, recorded by bind); ``None`` for a file never bound.
        self._recorded: EmbedderIdentity | None = None
        self.rerank_copies = rerank_copies
        self._follower = GraphFollower(
            self.path,
            self.snapshot_dir,
            m=self.hnsw_m,
            ef_construction=ef_construction,
            ef_search=ef_search,
            copies=rerank_copies,
        )
        self._last_check = 0.0
        self._next_maintenance = time.monotonic() + MAINTENANCE_INTERVAL_S
        self._pending = PendingLookups()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._compacting = False

    # -- plumbing: SQLite work under the right lock ------------------------------------------------------

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

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    # -- life cycle: open (lazily, every operation starts with it), bind, close, drop -------------------

    @property
    def recorded_identity(self) -> EmbedderIdentity | None:
        return self._recorded

    async def exists(self) -> bool:
        return self.path.exists()

    async def open(self) -> EmbedderIdentity | None:
        if self._reader is None:
            await asyncio.to_thread(self._open_sync)
        return self._recorded

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
            db.setup(connections[0], self.path, self.capacity.policy)
            self._recorded = db.read_identity(connections[0])
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

    async def bind(self, identity: EmbedderIdentity) -> None:
        await self.open()
        recorded = await self._thread(self._write_lock, db.bind, self._wconn, identity)
        self._recorded = recorded
        if recorded != identity:
            raise mismatch_error(self.name, recorded, identity)
        # A capacity configured (or lowered) since the index was last written applies from the start.
        evicted = await self._thread(
            self._write_lock, db.enforce_capacity, self._wconn, self.capacity, time.time()
        )
        if evicted and self.on_evict is not None:
            self.on_evict(evicted)
        await self._ensure_graphs()

    async def settle(self) -> None:
        """Wait for the background work started so far (maintenance: purging, the graphs' snapshot;
        compaction). For an orderly close, and for benchmarks that time searches apart from it."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def close(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._follower.stop()  # a compaction under way gives up rather than hold the close for minutes
        await self.settle()
        if self._reader is None:
            return
        try:
            await self._flush()
        except SemcacheError as exc:
            log.warning("lookup counters of %s were not saved: %s", self.name, exc)
        if self._follower.dirty:
            await asyncio.to_thread(self._follower.save_snapshot)
        for lock, conn in ((self._write_lock, self._writer), (self._read_lock, self._reader)):
            with lock:
                if conn is not None:
                    conn.close()
        await asyncio.to_thread(self._follower.close)
        self._writer = self._reader = None

    async def drop(self) -> int:
        held = await self.count()
        await self.close()

        def remove_files() -> None:
            # The database with its WAL and shared-memory files, then the graph snapshots.
            for path in self.data_dir.glob(f"{self.path.name}*"):
                path.unlink(missing_ok=True)
            shutil.rmtree(self.snapshot_dir, ignore_errors=True)

        await asyncio.to_thread(remove_files)
        return held

    # -- reads -------------------------------------------------------------------------------------------

    async def get(self, key: str) -> CacheEntry | None:
        await self.open()
        entry = await self._quick(self._read_lock, db.get, self._conn, key, time.time())
        return None if entry is None else self._pending.overlay(entry)

    async def search(
        self,
        vector: np.ndarray,
        *,
        scope: str,
        k: int,
        max_distance: float | None = None,
        with_vectors: bool = False,
    ) -> list[Match]:
        await self.open()
        if k <= 0 or self._recorded is None:
            return []
        query = self._vector(vector, self._recorded)
        graphs = await self._ensure_graphs()
        if graphs is None:
            return []
        await self._refresh_if_stale(graphs)
        # int8 graph distances are approximate: take extra candidates and re-rank them (graphs.py).
        wanted = max(2 * k, k + 10)
        count = wanted
        while True:
            found = await self._quick(graphs.lock, graphs.search, scope, query, count)
            if found.labels.size == 0:
                return []
            ranked, enough = await self._quick(
                self._read_lock,
                self._rank,
                found,
                query,
                scope,
                k,
                wanted,
                max_distance,
                with_vectors,
                time.time(),
            )
            # Candidates expired (or deleted) but still in the graph took places: ask for more.
            if enough or count >= found.total:
                return ranked
            count *= 4

    def _rank(
        self,
        found: Candidates,
        query: np.ndarray,
        scope: str,
        k: int,
        wanted: int,
        max_distance: float | None,
        with_vectors: bool,
        now: float,
    ) -> tuple[list[Match], bool]:
        """The ``k`` nearest live entries among the candidates, by their exact float32 vectors, and whether
        a wider search could not change them (without copies: ``wanted`` live candidates were read)."""
        if found.distances is None:  # the int8 order only: every candidate's float32 vector decides
            rows = self._live_rows(found.labels, scope, now)
            enough = len(rows) >= min(wanted, found.total)
        else:
            rows, enough = self._served_rows(found, scope, k, max_distance, now)
        if not rows:
            return [], enough
        vectors = np.frombuffer(b"".join(row[-1] for row in rows), dtype=np.float32).reshape(len(rows), -1)
        distances = 1.0 - vectors @ query
        matches: list[Match] = []
        for position in np.argsort(distances, kind="stable")[:k]:
            distance = clamp_distance(float(distances[position]))
            if max_distance is not None and distance > max_distance:
                break
            entry = self._pending.overlay(db.entry_from_row(rows[position]))
            # The candidates' vectors were read for the re-ranking: handing them out costs a copy.
            stored = vectors[position].copy() if with_vectors else None
            matches.append(Match(entry, distance, stored))
        return matches, enough

    def _served_rows(
        self, found: Candidates, scope: str, k: int, max_distance: float | None, now: float
    ) -> tuple[list[tuple[Any, ...]], bool]:
        """The rows of the candidates that can be served, nearest first by their float16 copies: the first
        ``k`` live ones, and any other within twice ``ERROR_BOUND`` of those (its float32 vector may be
        nearer), none farther than ``max_distance`` can be (a miss reads no row). Also whether a wider search
        could not change them: ``k`` were found, or candidates too far to serve were left."""
        labels, distances = found.labels, found.distances
        assert distances is not None
        limit = labels.size
        if max_distance is not None:
            limit = int(np.searchsorted(distances, max_distance + ERROR_BOUND, side="right"))
        rows: list[tuple[Any, ...]] = []
        read = 0
        while len(rows) < k and read < limit:
            end = min(limit, read + k - len(rows))
            # In the same statement (one read of the file, not two): the candidates the copies cannot tell
            # from the last of these. Any left unread is farther than every row read by its float32 vector.
            end = min(limit, int(np.searchsorted(distances, distances[end - 1] + 2 * ERROR_BOUND, "right")))
            rows += self._live_rows(labels[read:end], scope, now)
            read = end
        return rows, len(rows) >= k or limit < labels.size

    def _live_rows(self, labels: np.ndarray, scope: str, now: float) -> list[tuple[Any, ...]]:
        """The rows of the live entries among ``labels`` (each ends with its float32 vector)."""
        return [row for row in db.candidates(self._conn, labels.tolist(), now) if row[2] == scope]

    async def count(self) -> int:
        await self.open()
        return await self._thread(self._read_lock, db.count, self._conn, time.time())

    # -- writes ------------------------------------------------------------------------------------------

    def _vector(self, vector: np.ndarray, identity: EmbedderIdentity) -> np.ndarray:
        array = np.asarray(vector, dtype=np.float32).reshape(-1)
        if array.size != identity.dimension:
            raise InvalidInputError(
                f"a vector of {array.size} dimensions was given to index {self.name}, which holds "
                f"{identity.describe()}",
                "embed with the embedder the index is bound to",
            )
        return unit_vector(array)

    def _written_identity(self) -> EmbedderIdentity:
        """The identity writes must carry: the one the file records (so never before the first bind)."""
        if self._recorded is None:
            raise IndexMissingError(
                f"index {self.name} is not bound to an embedder yet",
                "start the cache (it binds the index to the configured embedder) before storing",
            )
        return self._recorded

    async def upsert(self, items: Sequence[tuple[CacheEntry, np.ndarray]]) -> None:
        if not items:
            return
        await self.open()
        identity = self._written_identity()
        check_expiry([entry for entry, _ in items])
        rows = [(entry, self._vector(vector, identity)) for entry, vector in items]
        evicted = await self._thread(
            self._write_lock, db.upsert, self._wconn, rows, self.capacity, time.time()
        )
        if evicted and self.on_evict is not None:
            self.on_evict(evicted)
        # Acknowledged above; now make our own graphs show the write before we return.
        if await self._ensure_graphs() is not None:
            await self._sync()

    async def delete(self, key: str) -> bool:
        await self.open()
        deleted = await self._thread(self._write_lock, db.delete, self._wconn, key, time.time())
        await self._sync()
        return deleted

    async def clear(self) -> int:
        await self.open()
        cleared = await self._thread(self._write_lock, db.clear, self._wconn, time.time())
        await self._sync()
        return cleared

    async def purge_expired(self) -> int:
        await self.open()
        purged = await self._thread(self._write_lock, db.purge_expired, self._wconn, time.time())
        if purged:
            await self._sync()
        return purged

    # -- keeping the graphs fresh with every process's writes; periodic maintenance ----------------------

    async def _ensure_graphs(self) -> ScopeGraphs | None:
        if self._follower.graphs is None and self._recorded is not None:
            await asyncio.to_thread(self._follower.build, self._recorded)
            graphs = self._follower.graphs
            if graphs is not None and not self._compacting:
                with graphs.lock:
                    outdated = graphs.outdated()
                if outdated:
                    # A snapshot built with other parameters (an older default M, a changed setting) serves
                    # at once; its graphs are rebuilt with the configured ones beside it, as a compaction.
                    log.info("rebuilding %d graph(s) of %s with M %d", len(outdated), self.name, self.hnsw_m)
                    self._compact_in_background(outdated)
        return self._follower.graphs

    async def _sync(self) -> None:
        await asyncio.to_thread(self._follower.sync)
        graphs = self._follower.graphs
        if graphs is not None and not self._compacting and graphs.removed >= COMPACT_MIN_REMOVED:
            with graphs.lock:
                wasteful = graphs.wasteful(COMPACT_MIN_REMOVED, COMPACT_RATIO)
            if wasteful:
                self._compact_in_background(wasteful)

    def _compact_in_background(self, scopes: list[str]) -> None:
        self._compacting = True  # at once, so the next write does not start a second one
        self._spawn(self.compact(scopes))

    @property
    def removed_since_compaction(self) -> int:
        """Labels removed from this process's graphs since they were built or compacted (dead nodes)."""
        graphs = self._follower.graphs
        return graphs.removed if graphs is not None else 0

    async def compact(self, scopes: list[str] | None = None) -> int:
        """Rebuild the graphs of ``scopes`` (default: every scope with removed labels, or built with other
        parameters than the configured ones) without their dead nodes, online: searches keep using the old
        graphs until the new ones are swapped in. Returns how many graphs were rebuilt. Runs by itself after
        heavy deletes or evictions (``COMPACT_MIN_REMOVED``) and after loading an outdated snapshot."""
        await self.open()
        graphs = await self._ensure_graphs()
        if graphs is None:
            return 0
        if scopes is None:
            with graphs.lock:
                scopes = sorted({*graphs.wasteful(1, 0.0), *graphs.outdated()})
        self._compacting = True
        try:
            return await asyncio.to_thread(self._follower.compact, scopes)
        finally:
            self._compacting = False

    async def _refresh_if_stale(self, graphs: ScopeGraphs) -> None:
        now = time.monotonic()
        if now - self._last_check < REFRESH_INTERVAL_S:
            return
        self._last_check = now
        state = await self._quick(self._read_lock, db.change_state, self._conn)
        if state.seq != graphs.seq:
            await self._sync()
        if now >= self._next_maintenance:
            self._next_maintenance = now + MAINTENANCE_INTERVAL_S
            self._spawn(self._maintain())

    async def _maintain(self) -> None:
        await self.purge_expired()
        graphs = self._follower.graphs
        if graphs is not None and self._follower.dirty and graphs.size >= SNAPSHOT_AFTER_CHANGES:
            await asyncio.to_thread(self._follower.save_snapshot)

    # -- listing: the panel's pages, exports' batches and their vectors ----------------------------------

    async def list_entries(
        self, *, offset: int = 0, limit: int = 50, scope: str | None = None, contains: str | None = None
    ) -> EntryPage:
        await self.open()
        entries, total = await self._thread(
            self._read_lock,
            lambda: db.list_entries(
                self._conn, offset=offset, limit=limit, scope=scope, contains=contains, now=time.time()
            ),
        )
        return EntryPage([self._pending.overlay(e) for e in entries], total, offset, limit)

    async def iter_entries(
        self, *, batch: int = 500, scope: str | None = None
    ) -> AsyncIterator[list[CacheEntry]]:
        await self.open()
        batch = max(1, batch)
        after: str | None = None
        while True:
            # One short read per batch, so a long export never holds the read lock between batches.
            entries = await self._thread(
                self._read_lock, db.entries_after, self._conn, after, batch, scope, time.time()
            )
            if not entries:
                return
            after = entries[-1].key
            # This process's lookups not yet written count, as in list_entries.
            yield [self._pending.overlay(entry) for entry in entries]
            if len(entries) < batch:
                return

    async def get_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored float32 vector of each key present (for exports); absent keys are left out."""
        await self.open()
        if not keys:
            return {}
        return await self._thread(self._read_lock, db.vectors, self._conn, keys)

    # -- counters: each lookup is recorded in the pending buffer (``lookups``), written in one transaction
    # when full or ``FLUSH_DELAY_S`` after the first unwritten lookup; reading the counters writes it first.

    async def record_lookup(
        self, *, hit_key: str | None, latency_ms: float, extend_to: float | None = None
    ) -> None:
        await self.open()
        self._pending.record(hit_key, latency_ms, extend_to)
        if self._pending.full:
            await self._flush()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(FLUSH_DELAY_S, self._flush_later)

    def _flush_later(self) -> None:
        self._flush_timer = None
        self._spawn(self._flush())

    async def _flush(self) -> None:
        if self._pending.empty or self._writer is None:
            return
        batch = self._pending.take()
        try:
            await self._thread(
                self._write_lock,
                lambda: db.record_lookups(
                    self._wconn,
                    hits=batch.hits,
                    misses=batch.misses,
                    latencies=batch.latencies,
                    hit_counts=batch.hit_counts,
                    extend_to=batch.extend_to,
                    policy=self.capacity.policy,
                ),
            )
        except BaseException:
            self._pending.merge(batch)
            raise

    async def counters(self) -> StoreCounters:
        await self.open()
        await self._flush()
        totals, latencies = await self._thread(self._read_lock, db.counters, self._conn)
        return StoreCounters(
            hits=totals["hits"],
            misses=totals["misses"],
            recent_latencies_ms=latencies,
            feedback_wrong=totals["feedback_wrong"],
            feedback_right=totals["feedback_right"],
            evictions=totals["evictions"],
        )

    # -- feedback: written at once, read with the candidates ---------------------------------------------

    async def record_feedback(self, entry_key: str, query_key: str, correct: bool) -> EntryFeedback:
        await self.open()
        recorded = await self._thread(
            self._write_lock, db.record_feedback, self._wconn, entry_key, query_key, correct, time.time()
        )
        if recorded is None:
            raise NotFoundError(
                f"no entry {entry_key} in index {self.name} to report feedback on",
                "it expired or was deleted; report feedback with the key of a hit the cache just served",
            )
        return recorded

    async def feedback(self, entry_keys: Sequence[str]) -> dict[str, EntryFeedback]:
        await self.open()
        if not entry_keys:
            return {}
        return await self._quick(self._read_lock, db.feedback, self._conn, entry_keys, time.time())

    # -- notes: the index's own bookkeeping (an import in progress) -------------------------------------

    async def set_note(self, name: str, value: dict[str, Any] | None) -> None:
        await self.open()
        await self._thread(self._write_lock, db.set_note, self._wconn, name, value)

    async def notes(self) -> dict[str, dict[str, Any]]:
        await self.open()
        return await self._quick(self._read_lock, db.notes, self._conn)

    # -- inspection --------------------------------------------------------------------------------------

    async def info(self) -> IndexInfo:
        await self.open()
        # Not built here: a panel asking for info should not pay for a graph it never searches.
        graphs = self._follower.graphs
        documents = await self.count()
        state = await self._thread(self._read_lock, db.change_state, self._conn)
        totals, _ = await self._thread(self._read_lock, db.counters, self._conn)
        dimension = self._recorded.dimension if self._recorded else None
        return IndexInfo(
            name=self.name,
            store=self.kind,
            documents=documents,
            identity=self._recorded,
            algorithm="HNSW",
            metric="COSINE",
            parameters={
                "M": self.hnsw_m,
                "ef_construction": self.ef_construction,
                "ef_runtime": self.ef_search,
                # The widest search among the graphs (breadth.py; each graph's own M sets its reach);
                # before the graphs are built, as wide as a graph of every entry would be.
                "query_ef_runtime": graphs.widest_ef
                if graphs is not None
                else ef_for(documents, self.ef_search, usearch_reach(self.hnsw_m)),
                "graph_dtype": DTYPE.replace("i", "int"),
                # Candidates ordered by float16 copies in memory, or by their rows (SEMCACHE_RERANK_COPIES).
                "rerank": "float16 copies, float32 distances" if self.rerank_copies else "float32 rows",
            },
            fields=[
                {"name": "vector", "type": "VECTOR", "dimension": dimension, "metric": "COSINE"},
                {"name": "scope", "type": "TAG"},
                {"name": "prompt", "type": "TEXT"},
                {"name": "response", "type": "TEXT"},
                {"name": "expires_at", "type": "NUMERIC"},
            ],
            # Not loaded here: the snapshot's size stands for the graphs' (usearch saves its memory image).
            memory_bytes=(await asyncio.to_thread(self._follower.graph_bytes) if graphs is not None else None)
            or folder_size(self.snapshot_dir)
            or None,
            extra={
                "path": str(self.path),
                "size_on_disk_bytes": db.size_on_disk(self.path) + folder_size(self.snapshot_dir),
                "snapshot_path": str(self.snapshot_dir),
                "graph_loaded": graphs is not None,
                "graph_scopes": graphs.scopes if graphs is not None else 0,
                "graph_labels": graphs.size if graphs is not None else 0,
                "graph_from_snapshot": self._follower.from_snapshot,
                # Graphs of an older snapshot built with other parameters, being rebuilt with these.
                "graphs_outdated": len(graphs.outdated()) if graphs is not None else 0,
                "graph_connectivity": graphs.connectivities if graphs is not None else [],
                "change_sequence": state.seq,
            },
            max_entries=self.capacity.max_entries or None,
            max_entries_per_scope=self.capacity.max_entries_per_scope or None,
            eviction_policy=self.capacity.policy,
            evictions=totals["evictions"],
        )

    async def health(self) -> ComponentHealth:
        started = time.perf_counter()
        facts: dict[str, Any] = {"path": str(self.path)}
        if not self.data_dir.is_dir() or not os.access(self.data_dir, os.W_OK | os.X_OK):
            problem = "does not exist" if not self.data_dir.exists() else "is not a writable folder"
            return ComponentHealth("store", "down", f"data folder {self.data_dir} {problem}", None, facts)
        try:
            await self.open()
            facts["entries"] = await self._quick(self._read_lock, db.count, self._conn, time.time())
        except SemcacheError as exc:
            return ComponentHealth("store", "down", str(exc), None, facts)
        facts["size_on_disk_bytes"] = db.size_on_disk(self.path) + folder_size(self.snapshot_dir)
        latency = (time.perf_counter() - started) * 1000.0
        # The path is a fact (the panel puts it after the detail: "local store at .../idx.sqlite3").
        return ComponentHealth("store", "ok", "local store", latency, facts)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("background work of the local store failed: %s", task.exception())
