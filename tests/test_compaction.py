"""Graph compaction of the embedded store: after heavy deletes or evictions a scope's HNSW graph is rebuilt
without its dead nodes, online (searches keep answering from the old graph meanwhile, writes made during
the rebuild are kept), and searches give the same results before and after."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.base import Capacity
from engine.stores.local import LocalStore
from engine.stores.local import store as local_store_module

DIM = 32
IDENTITY = EmbedderIdentity("test", "compaction-vectors", DIM)
#: How long automatic compaction may take to happen on a busy machine (a deadline, not a measurement).
DEADLINE_S = 60.0


def clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    centres = rng.standard_normal((20, DIM)).astype(np.float32)
    data = centres[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)


async def fill(store: LocalStore, data: np.ndarray, first: int = 0, batch: int = 200) -> None:
    now = time.time()
    for start in range(0, len(data), batch):
        await store.upsert(
            [
                (CacheEntry(f"e{first + i:05d}", "default", f"p{i}", f"r{i}", {}, now), data[i])
                for i in range(start, min(start + batch, len(data)))
            ]
        )


def exact(data: np.ndarray, first_live: int, queries: np.ndarray) -> list[list[tuple[str, float]]]:
    live = data[first_live:]
    found = []
    for query in queries:
        unit = query / np.linalg.norm(query)
        distances = 1.0 - live @ unit.astype(np.float32)
        order = np.argsort(distances, kind="stable")[:5]
        found.append([(f"e{first_live + i:05d}", round(float(max(0.0, distances[i])), 6)) for i in order])
    return found


async def results(store: LocalStore, queries: np.ndarray) -> list[list[tuple[str, float]]]:
    found = []
    for query in queries:
        matches = await store.search(query, scope="default", k=5)
        found.append([(m.entry.key, round(m.distance, 6)) for m in matches])
    return found


async def test_compaction_after_evictions_keeps_results_identical(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    data = clustered(rng, 3000)
    store = LocalStore(tmp_path, name="idx", capacity=Capacity(max_entries=600))
    await store.open()
    await store.bind(IDENTITY)
    try:
        await fill(store, data)  # 2,400 evicted: the graph holds 600 live nodes and 2,400 dead ones
        info = await store.info()
        assert info.extra["graph_labels"] == 600 and store.removed_since_compaction == 2400
        queries = np.concatenate([data[2400 + rng.integers(0, 600, 40)] + 0.05, clustered(rng, 20)])
        before = await results(store, queries)
        compaction = asyncio.ensure_future(store.compact())
        during = []
        while not compaction.done():  # searches keep answering, with the same answers
            during.append(await results(store, queries[:3]))
            await asyncio.sleep(0)
        assert await compaction == 1
        assert all(answer == during[0] for answer in during)
        after = await results(store, queries)
        # Identical to exact search over the live entries; a graph full of dead nodes can only have missed
        # some (it did here: the walk strays through removed nodes), never found others.
        truth = exact(data, 2400, queries)
        assert [[key for key, _ in row] for row in after] == [[key for key, _ in row] for row in truth]
        np.testing.assert_allclose(
            [[d for _, d in row] for row in after], [[d for _, d in row] for row in truth], atol=1e-5
        )
        same = sum(b == a for b, a in zip(before, after, strict=True))
        # Measured: 56 of 60 in every run since graphs are built on one thread (``ADD_THREADS``; 53-56
        # varied from run to run when they were built on several); compaction gives every answer back (above).
        assert same >= len(queries) - 5
        info = await store.info()
        assert store.removed_since_compaction == 0 and info.extra["graph_labels"] == 600
    finally:
        await store.close()


async def test_writes_made_while_compacting_are_kept(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    data = clustered(rng, 2000)
    store = LocalStore(tmp_path, name="idx")
    await store.open()
    await store.bind(IDENTITY)
    try:
        await fill(store, data)
        await store.clear()
        await fill(store, data[:500])
        more = clustered(rng, 100)
        compaction = asyncio.ensure_future(store.compact())
        await fill(store, more, first=10_000, batch=10)
        for i in range(0, 50):
            await store.delete(f"e{i:05d}")
        await compaction
        await store.compact()
        for i, vector in enumerate(more):
            matches = await store.search(vector, scope="default", k=1)
            assert matches[0].entry.key == f"e{10_000 + i:05d}"
        for i in range(0, 50):
            matches = await store.search(data[i], scope="default", k=1)
            assert matches[0].entry.key != f"e{i:05d}"
        info = await store.info()
        assert info.extra["graph_labels"] == await store.count() == 550
    finally:
        await store.close()


async def test_compaction_runs_by_itself_after_heavy_removals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_store_module, "COMPACT_MIN_REMOVED", 300)
    rng = np.random.default_rng(5)
    store = LocalStore(tmp_path, name="idx", capacity=Capacity(max_entries=200))
    await store.open()
    await store.bind(IDENTITY)
    try:
        await fill(store, clustered(rng, 1000), batch=50)
        deadline = time.monotonic() + DEADLINE_S
        while store.removed_since_compaction >= 300:
            assert time.monotonic() < deadline, "no compaction happened"
            await asyncio.sleep(0.1)
        assert (await store.info()).extra["graph_labels"] == 200
    finally:
        await store.close()
