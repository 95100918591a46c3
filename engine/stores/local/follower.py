"""Keeps one process's HNSW graphs in step with the data file's change sequence.

Other processes write to the same SQLite file; instead of rebuilding, the follower applies what changed
after the sequence its graphs cover (rows with a newer ``seq``, tombstones), and snapshots the graphs so
the next process to open a large cache starts from the snapshot plus a short delta. It owns its own
SQLite connection, so a long build never holds up the store's reads or writes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from engine.models import EmbedderIdentity
from engine.stores.local import database as db
from engine.stores.local.graphs import ScopeGraphs

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A scope's graph is rebuilt once it removed this many labels and this share of those it holds: below
#: that, the dead nodes cost less than a rebuild (a 100,000-label graph rebuilds in seconds).
COMPACT_MIN_REMOVED = 10_000
COMPACT_RATIO = 0.25
#: How long a report of the graphs' size waits for a change under way before it gives the last size read.
GRAPH_BYTES_WAIT_S = 0.5


class GraphFollower:
    """Blocking methods: call them from a worker thread."""

    def __init__(
        self,
        path: Path,
        snapshot_dir: Path,
        *,
        m: int,
        ef_construction: int,
        ef_search: int,
        copies: bool = True,
    ) -> None:
        self.path = path
        self.snapshot_dir = snapshot_dir
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        self.with_copies = copies
        self.graphs: ScopeGraphs | None = None
        #: The change sequence of the last snapshot written or loaded (-1: none).
        self.snapshot_seq = -1
        self.from_snapshot = False
        self._conn: sqlite3.Connection | None = None
        self._instance = ""
        self._lock = threading.Lock()
        #: Set by ``stop``: a compaction under way gives up (a rebuild of a million entries takes minutes,
        #: and closing a store must not wait for it; the next process to open the store does it again).
        self._stopping = threading.Event()
        self._graph_bytes: int | None = None

    def attach(self, conn: sqlite3.Connection, instance: str) -> None:
        self._conn, self._instance = conn, instance
        self._stopping.clear()

    def stop(self) -> None:
        """Make a compaction under way give up (before closing)."""
        self._stopping.set()

    @property
    def dirty(self) -> bool:
        return self.graphs is not None and self.graphs.seq != self.snapshot_seq

    def build(self, identity: EmbedderIdentity) -> None:
        """Create the graphs once: from the snapshot when it is usable, then bring them up to date."""
        with self._lock:
            if self.graphs is not None or self._conn is None:
                return
            graphs = ScopeGraphs(
                identity.dimension,
                m=self.m,
                ef_construction=self.ef_construction,
                ef_search=self.ef_search,
                copies=self.with_copies,
            )
            newest = self._translated(lambda conn: db.change_state(conn).seq)
            self.from_snapshot = graphs.load(self.snapshot_dir, self._instance, newest)
            if self.from_snapshot:
                self.snapshot_seq = graphs.seq
            self.graphs = graphs
        self.sync()

    def sync(self) -> None:
        """Apply every change after the graphs' sequence (other processes' writes and ours)."""
        with self._lock:
            if self.graphs is not None and self._conn is not None:
                graphs = self.graphs
                self._translated(lambda conn: _apply_changes(graphs, conn))

    def compact(self, scopes: list[str] | None = None) -> int:
        """Rebuild the graphs of ``scopes`` (default: those ``ScopeGraphs.wasteful`` names) without their
        removed labels and with the configured parameters; return how many were rebuilt. Searches go on
        against the old graph meanwhile: it is swapped for the new one only once that is built and caught
        up. Syncing (this process's writes waiting to show in its graphs) waits only while the scope's
        vectors are read, and for the catch-up; ``stop`` makes it give up between batches."""
        graphs = self.graphs
        if graphs is None or self._conn is None:
            return 0
        if scopes is None:
            with graphs.lock:
                scopes = graphs.wasteful(COMPACT_MIN_REMOVED, COMPACT_RATIO)
        rebuilt = 0
        for scope in scopes:
            with self._lock:  # graphs.seq stays put while the scope's rows are read
                seq = graphs.seq
                with graphs.lock:
                    labels = graphs.labels(scope)
                rows = self._translated(functools.partial(db.rows_by_id, ids=labels.tolist()))
            fresh = graphs.new_scope()
            for start in range(0, len(rows), 4096):
                if self._stopping.is_set():
                    return rebuilt
                fresh.put(*_labelled(rows[start : start + 4096]))
            with self._lock:
                if self.graphs is not graphs:  # closed or rebuilt meanwhile
                    return rebuilt
                caught_up = self._translated(functools.partial(_changes_of_scope, seq=seq, scope=scope))
                if caught_up is None:  # the tombstones since ``seq`` were pruned: try again later
                    continue
                removed, changed = caught_up
                if removed:
                    fresh.drop(np.asarray(removed, dtype=np.uint64))
                if changed:
                    fresh.put(*_labelled(changed))
                with graphs.lock:
                    graphs.swap(scope, fresh)
                self.snapshot_seq = -1  # the snapshot holds the dead nodes: write a new one
            rebuilt += 1
        return rebuilt

    def graph_bytes(self, wait: float = GRAPH_BYTES_WAIT_S) -> int | None:
        """The graphs' size (``ScopeGraphs.memory_bytes``), read under this follower's lock so no change runs
        meanwhile while searches go on; the last size read when a change holds the lock longer than
        ``wait`` (a build or a catch-up), ``None`` before any was read."""
        if self._lock.acquire(timeout=wait):
            try:
                if self.graphs is not None:
                    self._graph_bytes = self.graphs.memory_bytes()
            finally:
                self._lock.release()
        return self._graph_bytes

    def save_snapshot(self) -> None:
        """Write the graphs to the snapshot folder. Holds this follower's lock, under which every change
        to the graphs is applied (``sync``, ``compact``), so the graphs and their ``seq`` stay put; not
        the graphs' lock, so searches go on while it writes (a million entries: 0.33 s, every minute
        while writes come in, during which every search used to wait)."""
        graphs = self.graphs
        if graphs is None:
            return
        with self._lock:
            if self.graphs is not graphs:  # closed or rebuilt meanwhile
                return
            try:
                graphs.save(self.snapshot_dir, self._instance)
            except Exception as exc:  # derived data: a failed snapshot only makes the next open slower
                log.warning("could not write the graph snapshot in %s: %s", self.snapshot_dir, exc)
                return
            self.snapshot_seq = graphs.seq

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self.graphs = None
            self.snapshot_seq = -1

    def _translated(self, work: Callable[[sqlite3.Connection], T]) -> T:
        assert self._conn is not None
        try:
            return work(self._conn)
        except sqlite3.Error as exc:
            raise db.translate(exc, self.path) from exc


def _apply_changes(graphs: ScopeGraphs, conn: sqlite3.Connection) -> None:
    with db.read_transaction(conn):
        state = db.change_state(conn)
        if state.seq == graphs.seq:
            return
        if state.seq < graphs.seq:  # the file was replaced by an older one (a restored backup)
            with graphs.lock:
                graphs.reset()
        if graphs.seq < state.floor:  # tombstones we need are gone (clear, pruning): keep live ids only
            live = db.ids_by_scope(conn)
            with graphs.lock:
                graphs.keep_only(live)
        removed = db.removed_since(conn, graphs.seq)
        with graphs.lock:
            graphs.remove(removed)
        for batch in db.changed_since(conn, graphs.seq):
            with graphs.lock:  # per batch, so searches interleave with a long build
                graphs.add(batch)
        with graphs.lock:
            graphs.seq = state.seq


def _labelled(rows: list[tuple[int, str, bytes]]) -> tuple[np.ndarray, np.ndarray]:
    """The labels and float32 vectors of (id, scope, vector bytes) rows."""
    labels = np.asarray([id_ for id_, _, _ in rows], dtype=np.uint64)
    vectors = np.frombuffer(b"".join(blob for _, _, blob in rows), dtype=np.float32)
    return labels, vectors.reshape(len(rows), -1)


def _changes_of_scope(
    conn: sqlite3.Connection, seq: int, scope: str
) -> tuple[list[int], list[tuple[int, str, bytes]]] | None:
    """What changed in ``scope`` after ``seq`` (removed ids, written rows), or ``None`` when the
    tombstones needed were pruned."""
    with db.read_transaction(conn):
        if db.change_state(conn).floor > seq:
            return None
        removed = [id_ for id_, s in db.removed_since(conn, seq) if s == scope]
        changed = [row for batch in db.changed_since(conn, seq) for row in batch if row[1] == scope]
    return removed, changed


def folder_size(folder: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for path in folder.rglob("*"):
            with contextlib.suppress(OSError):
                total += path.stat().st_size if path.is_file() else 0
    return total
