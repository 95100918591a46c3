"""The embedded store's nearest-neighbour graphs: one HNSW graph per scope, in memory, derived from SQLite.

Why usearch rather than hnswlib: it is already a dependency, it supports removing labels (updates and
deletes stay in place instead of forcing rebuilds), it saves and loads a graph in one call, and it stores
vectors quantized to int8 with SIMD kernels. Measured here at 100k x 384 (clustered, ef_search 64):
int8 searches in ~0.2 ms against ~0.47 ms for float32, builds 3x faster and takes 85 MB instead of 286 MB.
int8 alone finds the exact nearest neighbour ~90-98% of the time, so the store asks the graph for a few
more candidates than it needs and re-ranks them: by float16 copies of the vectors held in memory beside
each graph (copies.py), then the served ones by the exact float32 vectors kept in SQLite, which brings
recall@1 back to ~1.0 (bench/local_store.py) and makes every reported distance exact.

Why inner product rather than cosine in the graph: every vector is a unit vector before it reaches the
store (``unit_vector``), so both order neighbours alike, and usearch's int8 cosine re-normalises both
vectors at every distance. Measured with bench/million.py's data (QQP vectors and synthetic neighbours,
the first 20 labels re-ranked exactly), int8 inner product against int8 cosine: at 100,000 entries
0.44 vs 0.64 ms per search at ef 256 and a 12 vs 18 s build, recall@1 equal (0.999); at 1,000,000
entries 0.56 ms at ef 256 with recall@1 0.995 (cosine: 0.993), and a 235 vs 344 s build (builds on
both cores then; on one now, see ``ADD_THREADS``).

Why compaction: usearch removes a label by marking it deleted; the node keeps its memory and its place in
the graph, which searches still walk. After heavy deletes or evictions a scope's graph is rebuilt from the
float32 vectors in SQLite beside the old one, which keeps serving searches meanwhile, and swapped in
(``GraphFollower.compact``).

Why one graph per scope: usearch's Python API has no filtered search, and filtering a shared graph
after the fact loses recall (a small scope's entries are rare among the nearest labels). Scopes are few
(tenants, applications); an almost empty graph costs ~70 KB.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.stores.breadth import ef_for, usearch_reach
from engine.stores.local.copies import VectorCopies
from engine.stores.local.native import load_cxx_runtime_first

load_cxx_runtime_first()  # before usearch: see native.py

from usearch.index import Index  # noqa: E402

try:
    import fcntl
except ImportError:  # Windows: snapshots still switch atomically; only their clean-up may race
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: Quantization of the vectors inside the graph; the exact float32 vectors stay in SQLite for re-ranking.
DTYPE = "i8"
SNAPSHOT_FORMAT = 1
#: The graphs' metric (see the module's docstring); a snapshot made with another one is rebuilt.
METRIC = "ip"
_POINTER = "CURRENT"
#: Threads usearch may use to add labels. One: its parallel insertion leaves some nodes stored but
#: unreachable by search (usearch issue 735, open in 2.26.6: a node is discoverable before its lowest
#: level is linked). Measured here with int8 inner-product graphs, the share of added vectors missing from
#: their own 11 nearest on all cores against one: 0.3-0.5% at 350 labels (32 dimensions), 1.6% of small
#: batches of clustered vectors added to a 40,000-label graph, 0.13% of 2,048-vector clustered batches,
#: 2 of 7,911 sampled QQP questions (79,101 x 384, 2,048 a batch); 0 in every case on one thread. One
#: thread builds about half as fast (those QQP vectors: 10.5 s against 5.3 s; small batches 0.58 ms
#: against 0.49 ms): an entry no search can reach never hits, which no speed is worth.
ADD_THREADS = 1


class ScopeIndex:
    """One scope's graph and the float16 copies of its vectors that re-rank the graph's candidates.
    ``copies`` is ``None`` when they are turned off (SEMCACHE_RERANK_COPIES), and for a graph loaded from a
    snapshot written before copies existed until a rebuild gives it copies: its candidates are re-ranked
    from their rows."""

    def __init__(self, graph: Index, copies: VectorCopies | None) -> None:
        self.graph = graph
        self.copies = copies

    def __len__(self) -> int:
        return len(self.graph)

    def put(self, labels: np.ndarray, vectors: np.ndarray) -> int:
        """Add (or replace) ``labels``' float32 ``vectors``; return how many labels were already present.
        A label present is removed from the graph first: an update may move it."""
        labels = np.asarray(labels, dtype=np.uint64)
        present = np.asarray(self.graph.contains(labels), dtype=bool).reshape(-1)
        if present.any():
            self.graph.remove(labels[present])
        self.graph.add(labels, vectors, threads=ADD_THREADS)
        if self.copies is not None:
            self.copies.put(labels, vectors)
        return int(present.sum())

    def drop(self, labels: np.ndarray) -> int:
        """Remove ``labels``; return how many the graph held."""
        labels = np.asarray(labels, dtype=np.uint64)
        if self.copies is not None:
            self.copies.drop(labels)
        return int(self.graph.remove(labels) or 0)

    def nearest(self, vector: np.ndarray, count: int, ef: int) -> Candidates:
        if self.graph.expansion_search != ef:
            # usearch has a setter for it, which its annotations hide from mypy.
            self.graph.expansion_search = ef  # type: ignore[misc]
        labels = np.asarray(self.graph.search(vector, min(count, len(self.graph))).keys, dtype=np.uint64)
        if self.copies is None:
            return Candidates(labels, None, len(self.graph))
        distances = self.copies.distances(labels, vector)
        order = np.argsort(distances, kind="stable")
        return Candidates(labels[order], distances[order], len(self.graph))

    @property
    def nbytes(self) -> int:
        """usearch's serialized length (see ``ScopeGraphs.memory_bytes``) and the copies'."""
        return int(self.graph.serialized_length) + (self.copies.nbytes if self.copies is not None else 0)


@dataclass(frozen=True)
class Candidates:
    """A graph search's labels, nearest first, and how many labels the scope holds. ``distances`` are the
    float16 copies' (within ``copies.ERROR_BOUND`` of the exact ones, and the labels in their order), or
    ``None`` when the scope has no copies: then the labels are in the graph's int8 order, and only their
    float32 vectors tell which is nearest."""

    labels: np.ndarray
    distances: np.ndarray | None
    total: int


class ScopeGraphs:
    """Graphs keyed by scope, labelled by the entries' SQLite ids; ``seq`` is the change they cover.

    ``lock`` guards every graph: take it around each call (the store keeps the hold short). Writing a
    snapshot only reads the graphs: it runs without ``lock`` while the owner keeps changes away."""

    def __init__(
        self, dimension: int, *, m: int, ef_construction: int, ef_search: int, copies: bool = True
    ) -> None:
        self.dimension = dimension
        self.m = m
        #: Whether each graph keeps float16 copies of its vectors (SEMCACHE_RERANK_COPIES): 776 B/entry at
        #: 384 dimensions, for searches that read only the rows they serve.
        self.with_copies = copies
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.seq = 0
        self.lock = threading.Lock()
        self._scopes: dict[str, ScopeIndex] = {}
        #: Labels removed (deleted, evicted, replaced) per scope since its graph was built: dead weight.
        self._removed: dict[str, int] = {}
        #: Scopes whose graph came from a snapshot built with other parameters (M, ef_construction) or
        #: without copies: they serve as they are until a rebuild (``GraphFollower.compact``) gives them
        #: the configured parameters and copies.
        self._outdated: set[str] = set()

    def new_scope(self) -> ScopeIndex:
        """An empty graph with the configured parameters, and its copies."""
        # Inner product of unit vectors: the order cosine would give, without re-normalising.
        graph = Index(
            ndim=self.dimension,
            metric=METRIC,
            dtype=DTYPE,
            connectivity=self.m,
            expansion_add=self.ef_construction,
            expansion_search=self.ef_search,
        )
        return ScopeIndex(graph, VectorCopies(self.dimension) if self.with_copies else None)

    # -- changes (caller holds ``lock``) ---------------------------------------------------------------

    def remove(self, pairs: Iterable[tuple[int, str]]) -> None:
        by_scope: dict[str, list[int]] = {}
        for id_, scope in pairs:
            by_scope.setdefault(scope, []).append(id_)
        for scope, ids in by_scope.items():
            index = self._scopes.get(scope)
            if index is not None:
                gone = index.drop(np.asarray(ids, dtype=np.uint64))
                self._removed[scope] = self._removed.get(scope, 0) + gone

    def add(self, rows: Iterable[tuple[int, str, bytes]]) -> None:
        """Add (or replace) labels from (id, scope, float32 vector bytes) rows."""
        by_scope: dict[str, tuple[list[int], list[bytes]]] = {}
        for id_, scope, blob in rows:
            ids, blobs = by_scope.setdefault(scope, ([], []))
            ids.append(id_)
            blobs.append(blob)
        for scope, (ids, blobs) in by_scope.items():
            index = self._scopes.get(scope)
            if index is None:
                index = self._scopes[scope] = self.new_scope()
            vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), self.dimension)
            replaced = index.put(np.asarray(ids, dtype=np.uint64), vectors)
            if replaced:
                self._removed[scope] = self._removed.get(scope, 0) + replaced

    def keep_only(self, live: dict[str, np.ndarray]) -> None:
        """Drop every label not in ``live`` (after ``clear`` or when tombstones were pruned)."""
        for scope in list(self._scopes):
            index = self._scopes[scope]
            wanted = live.get(scope)
            if wanted is None or wanted.size == 0:
                del self._scopes[scope]
                self._removed.pop(scope, None)
                continue
            labels = np.asarray(index.graph.keys, dtype=np.uint64)
            stale = np.setdiff1d(labels, wanted, assume_unique=True)
            if stale.size:
                index.drop(stale)
                self._removed[scope] = self._removed.get(scope, 0) + int(stale.size)

    def reset(self) -> None:
        self._scopes.clear()
        self._removed.clear()
        self._outdated.clear()
        self.seq = 0

    # -- compaction (caller holds ``lock``) ------------------------------------------------------------

    def labels(self, scope: str) -> np.ndarray:
        index = self._scopes.get(scope)
        return (
            np.empty(0, dtype=np.uint64)
            if index is None
            else np.asarray(index.graph.keys, dtype=np.uint64).copy()
        )

    def wasteful(self, min_removed: int, ratio: float) -> list[str]:
        """Scopes whose graphs removed at least ``min_removed`` labels, and ``ratio`` of those they hold."""
        return [
            scope
            for scope, removed in self._removed.items()
            if removed >= min_removed and removed >= ratio * len(self._scopes.get(scope, ()))
        ]

    def outdated(self) -> list[str]:
        """Scopes whose graphs were built with other parameters than these graphs', or have no copies
        (from an older snapshot)."""
        return sorted(scope for scope in self._outdated if scope in self._scopes)

    def swap(self, scope: str, index: ScopeIndex) -> None:
        if len(index):
            self._scopes[scope] = index
        else:
            self._scopes.pop(scope, None)
        self._removed.pop(scope, None)
        self._outdated.discard(scope)

    @property
    def removed(self) -> int:
        return sum(self._removed.values())

    # -- reading (caller holds ``lock``) ---------------------------------------------------------------

    def search(self, scope: str, vector: np.ndarray, count: int) -> Candidates:
        """Up to ``count`` candidates, nearest first (``Candidates``)."""
        index = self._scopes.get(scope)
        if index is None or len(index) == 0:
            return Candidates(np.empty(0, dtype=np.uint64), None, 0)
        return index.nearest(vector, count, _breadth(index.graph, self.ef_search))

    def graph(self, scope: str) -> Index | None:
        index = self._scopes.get(scope)
        return None if index is None else index.graph

    def copies(self, scope: str) -> VectorCopies | None:
        index = self._scopes.get(scope)
        return None if index is None else index.copies

    @property
    def connectivities(self) -> list[int]:
        """The distinct M of the graphs (several while graphs of an older snapshot are being rebuilt)."""
        return sorted({int(index.graph.connectivity) for index in self._scopes.values()})

    @property
    def widest_ef(self) -> int:
        """The breadth of the widest search among the graphs (``ef_for``); the configured ef when empty."""
        return max(
            (_breadth(index.graph, self.ef_search) for index in self._scopes.values()), default=self.ef_search
        )

    @property
    def size(self) -> int:
        return sum(len(index) for index in self._scopes.values())

    @property
    def scopes(self) -> int:
        return len(self._scopes)

    def memory_bytes(self) -> int:
        """What the graphs and their copies hold. For a graph, usearch's serialized length, its memory
        image as a snapshot saves it. Not ``memory_usage``: that counts the arenas reserved ahead, 797
        B/entry at a million entries for M 16 and M 24 graphs alike, whose snapshots hold 532 and 596
        B/entry (and the process's RSS grew by 647 and 702 B/entry in all). It walks every node (16 ms at a
        million): call it with no change running (``GraphFollower.graph_bytes``), never under ``lock``,
        which searches wait for."""
        return sum(index.nbytes for index in self._scopes.values())

    # -- snapshots -------------------------------------------------------------------------------------

    def _signature(self, instance: str) -> dict[str, object]:
        """What a snapshot must share with these graphs to be loaded."""
        return {
            "format": SNAPSHOT_FORMAT,
            "instance": instance,
            "dimension": self.dimension,
            "dtype": DTYPE,
            "metric": METRIC,
        }

    def _build_parameters(self) -> dict[str, object]:
        """How these graphs are built: a snapshot built otherwise is loaded all the same (its graphs find the
        same entries) and marked outdated, rather than making the first search wait for a full build."""
        return {"m": self.m, "ef_construction": self.ef_construction}

    def save(self, folder: Path, instance: str) -> bool:
        """Write every graph and its copies into a new sub-folder, then switch the pointer file to it in one
        rename, so a reader (another process) sees the old snapshot or the new one, never half of one. The
        caller keeps every change away meanwhile, so the graphs and ``seq`` agree (searches may run: saving
        only reads). False when another process had saved a newer one."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{self.seq:012d}-{uuid.uuid4().hex[:8]}"
        target = folder / name
        target.mkdir()
        files: dict[str, str] = {}
        copies: list[str] = []
        for number, (scope, index) in enumerate(sorted(self._scopes.items())):
            if len(index):
                files[scope] = f"{number}.usearch"
                index.graph.save(str(target / files[scope]))
                if index.copies is not None:
                    index.copies.save(*_copy_files(target, files[scope]))
                    copies.append(scope)
        pointer = {
            **self._signature(instance),
            **self._build_parameters(),
            "outdated": self.outdated(),  # saved as they are, still to be rebuilt
            "seq": self.seq,
            "folder": name,
            "scopes": files,
            "copies": copies,
        }
        temporary = folder / f"{_POINTER}.{name}.tmp"
        temporary.write_text(json.dumps(pointer))
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        # Switching the pointer and deleting old snapshots is exclusive; loading holds the shared lock,
        # so a snapshot is never deleted while another process reads it.
        with _snapshot_lock(folder, exclusive=True):
            current = _read_pointer(folder)
            if current is not None and int(current.get("seq", -1)) > self.seq:
                temporary.unlink()
                shutil.rmtree(target, ignore_errors=True)
                return False
            os.replace(temporary, folder / _POINTER)
            # The snapshot replaced, even of the same change sequence (graphs rebuilt by a compaction).
            replaced = str(current.get("folder", "")) if current is not None else ""
            for old in folder.iterdir():
                # Older ones only (left by earlier saves, or by a process killed while saving): a
                # concurrent saver still writing a newer one keeps its files.
                stem = old.name.removeprefix(f"{_POINTER}.")
                if (stem[:12].isdigit() and stem[:12] < name[:12]) or (
                    replaced and old.name == replaced != name
                ):
                    if old.is_dir():
                        shutil.rmtree(old, ignore_errors=True)
                    else:
                        old.unlink(missing_ok=True)
        return True

    def load(self, folder: Path, instance: str, newest_seq: int) -> bool:
        """Replace the graphs with the snapshot in ``folder`` when it is usable; False otherwise (missing,
        of another format, dimension or metric, from another data file, or damaged: the graphs are derived
        data, rebuilt from SQLite, so a bad snapshot costs time, never entries). Graphs built with other
        parameters, or saved without copies, are loaded and listed by ``outdated``."""
        if not (folder / _POINTER).exists():
            return False
        try:
            with _snapshot_lock(folder, exclusive=False):
                pointer = _read_pointer(folder)
                signature = self._signature(instance)
                if (
                    pointer is None
                    or any(pointer.get(key) != value for key, value in signature.items())
                    or int(pointer["seq"]) > newest_seq
                ):
                    return False
                with_copies = {str(scope) for scope in pointer.get("copies", ())}
                scopes: dict[str, ScopeIndex] = {}
                for scope, filename in dict(pointer["scopes"]).items():
                    index = self.new_scope()  # ``load`` keeps the ef values given here, not M
                    target = folder / str(pointer["folder"])
                    index.graph.load(str(target / str(filename)))
                    if index.graph.ndim != self.dimension:
                        return False
                    index.copies = (
                        VectorCopies.load(*_copy_files(target, str(filename)), self.dimension)
                        if self.with_copies and scope in with_copies
                        else None
                    )
                    if index.copies is not None and len(index.copies) != len(index.graph):
                        return False
                    scopes[str(scope)] = index
                built_otherwise = any(
                    pointer.get(key) != value for key, value in self._build_parameters().items()
                )
        except Exception as exc:  # usearch raises plain RuntimeError/ValueError for damaged files
            log.warning("ignoring the graph snapshot in %s (%s); rebuilding from the data file", folder, exc)
            return False
        self._scopes = scopes
        listed = {str(scope) for scope in pointer.get("outdated", ())}
        self._outdated = {
            scope
            for scope, index in scopes.items()
            if built_otherwise
            or scope in listed
            or (self.with_copies and index.copies is None)
            or int(index.graph.connectivity) != self.m
        }
        self.seq = int(pointer["seq"])
        return True


def _copy_files(folder: Path, graph_file: str) -> tuple[Path, Path]:
    """The files of a graph's copies, beside the graph's: its labels and its vectors."""
    stem = graph_file.removesuffix(".usearch")
    return folder / f"{stem}.labels.npz", folder / f"{stem}.copies.npy"


def _read_pointer(folder: Path) -> dict[str, Any] | None:
    try:
        pointer = json.loads((folder / _POINTER).read_text())
    except FileNotFoundError:
        return None
    return pointer if isinstance(pointer, dict) else None


@contextlib.contextmanager
def _snapshot_lock(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """An advisory lock between processes sharing the folder (a no-op where ``fcntl`` is missing)."""
    with open(folder / ".lock", "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


def _breadth(graph: Index, configured: int) -> int:
    """How wide a search of ``graph`` looks: its own connectivity sets its reach (a graph loaded from an
    older snapshot may have another M than the configured one)."""
    return ef_for(len(graph), configured, usearch_reach(int(graph.connectivity)))
