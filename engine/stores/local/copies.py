"""Float16 copies of one scope's vectors, in memory, that re-rank its graph's candidates.

Why: the graph holds int8 vectors, whose order finds the exact nearest entry only ~98% of the time, so
its candidates are re-ranked with better vectors. Those used to be the float32 vectors in SQLite: every
search read its 15 candidates' rows, 0.16 ms when the data file is in the page cache and 0.4-0.5 ms
when it is not (measured at a million entries; the rows are 2.7 KB each, spread over a 2.7 GB file). The
copies make that re-rank a memory read, and a search reads only the rows it serves: none for a miss.
Float16 and not float32: half the memory (768 B/entry at 384 dimensions), and its error is bounded (see
``ERROR_BOUND``): the store reads the rows of the first candidates and of any within twice the bound
of them, and orders those by their float32 vectors, so what it serves, and every distance it reports,
is what a float32 re-rank gives. (Measured at a million entries, two sets of 1,000 QQP paraphrases, 15
candidates: the copies' order alone put the float32 re-rank's nearest entry first for 1,999 of 2,000.)

Why copies beside int8 graphs rather than graphs of 16-bit vectors, which would need no re-rank and cost
384 B/entry more instead of 776: measured at a million entries (M 24, ef 128, built on one thread,
searched alone), a float16 graph searched in 0.70 ms and a bfloat16 one in 0.51-0.54 ms (with
AVX512-BF16; slower on CPUs without it) against 0.39-0.43 ms for int8, and they built in 1,061 and 810 s
against 538 s.

Labels are SQLite ids, which only grow, so new labels append to a sorted array and a lookup is a binary
search (no dictionary of a million Python ints). A removed label leaves a dead slot until a quarter of
the slots are dead; then the live ones are packed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The most a float16 copy's inner product with a unit float32 query can differ from the float32 vector's:
#: each stored component is rounded with a relative error of at most 2**-11, so the error is at most
#: 2**-11 * sum(|q_i| |x_i|) <= 2**-11 for unit vectors (Cauchy-Schwarz), plus float32 accumulation.
ERROR_BOUND = 1e-3
#: Dead slots are packed away once there are this many and they are a quarter of the slots.
_PACK_MIN = 1024
_PACK_RATIO = 0.25


class VectorCopies:
    """Float16 copies by label. Not thread-safe: the owner (``ScopeGraphs``) guards it with its lock."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._labels = np.empty(0, dtype=np.uint64)
        self._vectors = np.empty((0, dimension), dtype=np.float16)
        self._live = np.empty(0, dtype=bool)
        self._used = 0  # slots in use, live or dead, at the front of the arrays
        self._dead = 0

    def __len__(self) -> int:
        return self._used - self._dead

    @property
    def nbytes(self) -> int:
        """The bytes the slots in use hold (the arrays reserve more ahead, untouched until used)."""
        return self._used * (self.dimension * 2 + 9)

    def put(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace the copies of ``labels`` (unique) from their float32 ``vectors``."""
        labels = np.asarray(labels, dtype=np.uint64).reshape(-1)
        if labels.size == 0:
            return
        order = np.argsort(labels, kind="stable")
        labels, copies = labels[order], np.asarray(vectors, dtype=np.float16)[order]
        slots, present = self._find(labels)
        if present.any():
            revived = int((~self._live[slots[present]]).sum())
            self._vectors[slots[present]] = copies[present]
            self._live[slots[present]] = True
            self._dead -= revived
        fresh = ~present
        if not fresh.any():
            return
        if self._used and labels[fresh][0] <= self._labels[self._used - 1]:
            self._merge(labels[fresh], copies[fresh])  # not seen from SQLite's ids, which only grow
        else:
            self._append(labels[fresh], copies[fresh])

    def drop(self, labels: np.ndarray) -> None:
        slots, live = self._find(np.asarray(labels, dtype=np.uint64).reshape(-1), live_only=True)
        slots = slots[live]
        self._live[slots] = False
        self._dead += int(slots.size)
        if self._dead >= _PACK_MIN and self._dead >= _PACK_RATIO * self._used:
            self._pack()

    def distances(self, labels: np.ndarray, query: np.ndarray) -> np.ndarray:
        """1 - the inner product of each label's copy with ``query`` (within ``ERROR_BOUND`` of the float32
        vectors'); infinite for a label with no copy."""
        labels = np.asarray(labels, dtype=np.uint64).reshape(-1)
        slots, present = self._find(labels, live_only=True)
        found = np.full(labels.size, np.inf, dtype=np.float32)
        if present.any():
            found[present] = 1.0 - self._vectors[slots[present]].astype(np.float32) @ query
        return found

    # -- snapshots ------------------------------------------------------------------------------------------

    def save(self, labels_path: Path, vectors_path: Path) -> None:
        """Write the slots in use as they are, dead ones with their live flags: views, never a copy of the
        vectors (776 MB at a million entries, every minute while writes come in)."""
        with open(labels_path, "wb") as handle:
            np.savez(handle, labels=self._labels[: self._used], live=self._live[: self._used])
        np.save(vectors_path, self._vectors[: self._used])

    @classmethod
    def load(cls, labels_path: Path, vectors_path: Path, dimension: int) -> VectorCopies:
        """Raises ``ValueError`` for files that do not hold copies of ``dimension`` (a damaged snapshot)."""
        with np.load(labels_path, allow_pickle=False) as saved:
            labels, live = saved["labels"], saved["live"]
        vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)  # read once, by ``_reserve``
        if (
            labels.dtype != np.uint64
            or live.dtype != np.bool_
            or live.shape != labels.shape
            or vectors.dtype != np.float16
            or vectors.shape != (labels.size, dimension)
            or (labels.size > 1 and not bool(np.all(labels[1:] > labels[:-1])))
        ):
            raise ValueError(f"{vectors_path.name} does not hold float16 copies of {dimension} dimensions")
        copies = cls(dimension)
        copies._labels, copies._vectors, copies._live = labels, vectors, live
        copies._used = labels.size
        copies._dead = int(labels.size - np.count_nonzero(live))
        # Room to grow from the start: the first writes after an open must not copy every vector under
        # the graphs' lock (a million entries' copies take about 0.3 s to move), which searches wait for.
        copies._reserve(labels.size + max(labels.size // 4, 1024))
        return copies

    # -- slots ----------------------------------------------------------------------------------------------

    def _find(self, labels: np.ndarray, *, live_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Each label's slot and whether it has one (live or dead; live only with ``live_only``)."""
        used = self._labels[: self._used]
        slots = np.searchsorted(used, labels)
        if not self._used:
            return slots, np.zeros(labels.size, dtype=bool)
        present = used[np.minimum(slots, self._used - 1)] == labels
        if live_only:
            present[present] = self._live[slots[present]]
        return slots, present

    def _append(self, labels: np.ndarray, copies: np.ndarray) -> None:
        needed = self._used + labels.size
        if needed > self._labels.size:
            # Doubling: a million entries reallocate about 20 times on their way in; untouched reserve
            # costs no resident memory.
            self._reserve(max(needed, 2 * self._labels.size, 1024))
        end = self._used + labels.size
        self._labels[self._used : end] = labels
        self._vectors[self._used : end] = copies
        self._live[self._used : end] = True
        self._used = end

    def _reserve(self, capacity: int) -> None:
        labels = np.empty(capacity, dtype=np.uint64)
        vectors = np.empty((capacity, self.dimension), dtype=np.float16)
        live = np.zeros(capacity, dtype=bool)
        labels[: self._used] = self._labels[: self._used]
        vectors[: self._used] = self._vectors[: self._used]
        live[: self._used] = self._live[: self._used]
        self._labels, self._vectors, self._live = labels, vectors, live

    def _merge(self, labels: np.ndarray, copies: np.ndarray) -> None:
        self._pack()
        all_labels = np.concatenate([self._labels, labels])
        order = np.argsort(all_labels, kind="stable")
        self._labels, self._vectors = all_labels[order], np.concatenate([self._vectors, copies])[order]
        self._live = np.ones(all_labels.size, dtype=bool)
        self._used = all_labels.size

    def _pack(self) -> None:
        live = self._live[: self._used]
        self._labels = self._labels[: self._used][live].copy()
        self._vectors = self._vectors[: self._used][live].copy()
        self._live = np.ones(self._labels.size, dtype=bool)
        self._used, self._dead = self._labels.size, 0
