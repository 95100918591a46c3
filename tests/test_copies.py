"""The float16 copies that re-rank a graph's candidates (engine/stores/local/copies.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.stores.local.copies import ERROR_BOUND, VectorCopies

DIM = 24


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def labels(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.uint64)


def test_copies_give_each_label_its_own_distance() -> None:
    rng = np.random.default_rng(1)
    vectors = unit(rng, 6)
    copies = VectorCopies(DIM)
    copies.put(labels(3, 1, 2), vectors[:3])  # any order within a batch
    copies.put(labels(7, 9), vectors[3:5])
    query = vectors[0]
    found = copies.distances(labels(1, 2, 3, 7, 9, 8), query)
    exact = 1.0 - np.stack([vectors[1], vectors[2], vectors[0], vectors[3], vectors[4]]) @ query
    assert np.all(np.abs(found[:5] - exact) <= ERROR_BOUND)
    assert found[5] == np.inf  # never stored
    assert len(copies) == 5


def test_replacing_dropping_and_storing_again() -> None:
    rng = np.random.default_rng(2)
    vectors = unit(rng, 4)
    copies = VectorCopies(DIM)
    copies.put(labels(1, 2), vectors[:2])
    copies.put(labels(1), vectors[2:3])  # an update keeps its label
    assert abs(copies.distances(labels(1), vectors[2])[0]) <= ERROR_BOUND
    copies.drop(labels(2, 5))  # 5 was never there
    assert copies.distances(labels(2), vectors[1])[0] == np.inf and len(copies) == 1
    copies.put(labels(2), vectors[3:4])  # the dead slot comes back to life
    assert abs(copies.distances(labels(2), vectors[3])[0]) <= ERROR_BOUND and len(copies) == 2


def test_labels_out_of_order_are_merged_in() -> None:
    """SQLite's ids only grow, so labels come in order; one that does not is still found."""
    rng = np.random.default_rng(3)
    vectors = unit(rng, 5)
    copies = VectorCopies(DIM)
    copies.put(labels(10, 20, 30), vectors[:3])
    copies.drop(labels(20))
    copies.put(labels(15, 40), vectors[3:5])
    assert len(copies) == 4
    for label, vector in ((10, vectors[0]), (30, vectors[2]), (15, vectors[3]), (40, vectors[4])):
        assert abs(copies.distances(labels(label), vector)[0]) <= ERROR_BOUND
    assert copies.distances(labels(20), vectors[1])[0] == np.inf


def test_dead_slots_are_packed_away() -> None:
    rng = np.random.default_rng(4)
    vectors = unit(rng, 4000)
    copies = VectorCopies(DIM)
    copies.put(np.arange(1, 4001, dtype=np.uint64), vectors)
    full = copies.nbytes
    copies.drop(np.arange(1, 3001, dtype=np.uint64))
    assert len(copies) == 1000 and copies.nbytes == full // 4  # packed: 3,000 dead of 4,000 slots
    assert abs(copies.distances(labels(3500), vectors[3499])[0]) <= ERROR_BOUND


def test_a_snapshot_of_the_copies_reads_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vectors = unit(rng, 50)
    copies = VectorCopies(DIM)
    copies.put(np.arange(1, 51, dtype=np.uint64), vectors)
    copies.drop(labels(7))
    copies.save(tmp_path / "l.npz", tmp_path / "v.npy")
    loaded = VectorCopies.load(tmp_path / "l.npz", tmp_path / "v.npy", DIM)
    assert len(loaded) == 49 and loaded.nbytes == copies.nbytes  # the dead slot too, packed later
    query = vectors[9]
    wanted = np.arange(1, 51, dtype=np.uint64)
    assert np.array_equal(loaded.distances(wanted, query), copies.distances(wanted, query))
    with pytest.raises(ValueError, match="float16 copies of 32 dimensions"):
        VectorCopies.load(tmp_path / "l.npz", tmp_path / "v.npy", 32)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1e-6, 1e-3, 1.0, 1e3]))
def test_the_error_bound_holds_for_any_unit_vectors(seed: int, scale: float) -> None:
    """Whatever the spread of the components (one dominant or all alike), a copy's distance to a unit
    query is within ``ERROR_BOUND`` of the float32 vector's: the bound the store's re-rank relies on."""
    rng = np.random.default_rng(seed)
    raw = rng.standard_normal((64, DIM)) * rng.uniform(0, scale, (64, DIM)) + rng.standard_normal((64, 1))
    vectors = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
    copies = VectorCopies(DIM)
    copies.put(np.arange(1, 65, dtype=np.uint64), vectors)
    for query in vectors[:8]:
        exact = 1.0 - vectors @ query
        found = copies.distances(np.arange(1, 65, dtype=np.uint64), query)
        assert float(np.max(np.abs(found - exact))) <= ERROR_BOUND
