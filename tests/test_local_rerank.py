"""The embedded store's re-rank: candidates ordered by float16 copies in memory, served by their rows' float32
vectors, so a search reads only the rows it can serve (engine/stores/local/copies.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from engine.stores.local import LocalStore
from engine.stores.local.copies import VectorCopies
from tests.test_local_store import IDENTITY, entry, unit

ROW_READ = re.compile(r"FROM entries WHERE id IN \(([^)]*)\)")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def rows_read(statements: list[str]) -> list[int]:
    """How many candidate rows each statement of a search read."""
    return [len(match.group(1).split(",")) for s in statements if (match := ROW_READ.search(s))]


async def test_served_order_is_the_float32_order_even_where_the_copies_tie(data_dir: Path) -> None:
    """Pairs of entries closer than float16 can tell apart: the copies order some of them wrongly, and the
    store still serves the float32 order, with float32 distances (it reads the rows of every candidate
    within twice the copies' error bound of the last one served)."""
    rng = np.random.default_rng(21)
    bases = unit(rng, 40)
    twins = bases + rng.standard_normal(bases.shape).astype(np.float32) * 3e-4
    data = np.concatenate([bases, twins / np.linalg.norm(twins, axis=1, keepdims=True)])
    queries = bases + rng.standard_normal(bases.shape).astype(np.float32) * 0.05
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    # The case this is about happens here: the copies alone would serve the wrong twin for some queries.
    copies = VectorCopies(IDENTITY.dimension)
    copies.put(np.arange(len(data), dtype=np.uint64), data)
    every = np.arange(len(data), dtype=np.uint64)
    inverted = sum(int(np.argmin(copies.distances(every, q)) != np.argmin(1.0 - data @ q)) for q in queries)
    assert inverted >= 3

    store = LocalStore(data_dir, name="idx")
    try:
        await store.bind(IDENTITY)
        await store.upsert([(entry(f"k{i}"), data[i]) for i in range(len(data))])
        for query in queries:
            exact = 1.0 - data @ query
            for k in (1, 3):
                matches = await store.search(query, scope="default", k=k)
                assert [m.entry.key for m in matches] == [f"k{i}" for i in np.argsort(exact)[:k]]
                assert [m.distance for m in matches] == pytest.approx(
                    [float(1.0 - data[int(m.entry.key[1:])] @ query) for m in matches], abs=1e-6
                )
    finally:
        await store.close()


async def test_a_search_reads_only_the_rows_it_can_serve(data_dir: Path) -> None:
    """A nearest-entry search reads one row, not its 11 candidates'; a miss under a distance limit reads
    none (the copies tell no candidate is that near)."""
    rng = np.random.default_rng(22)
    vectors = unit(rng, 300)
    store = LocalStore(data_dir, name="idx")
    try:
        await store.bind(IDENTITY)
        await store.upsert([(entry(f"k{i}"), vectors[i]) for i in range(300)])
        await store.search(vectors[0], scope="default", k=1)  # builds the graphs
        statements: list[str] = []
        store._conn.set_trace_callback(statements.append)
        try:
            hit = await store.search(vectors[5], scope="default", k=1)
            hit_reads = rows_read(statements)
            statements.clear()
            far = -vectors[5]  # the farthest a query can be from k5; its neighbours are far from it too
            miss = await store.search(far, scope="default", k=5, max_distance=0.05)
            miss_reads = rows_read(statements)
            statements.clear()
            knn = await store.search(vectors[9], scope="default", k=5)
            knn_reads = rows_read(statements)
        finally:
            store._conn.set_trace_callback(None)
        assert [m.entry.key for m in hit] == ["k5"] and hit_reads == [1]
        assert miss == [] and miss_reads == []
        assert len(knn) == 5 and knn[0].entry.key == "k9" and sum(knn_reads) == 5
    finally:
        await store.close()


async def test_a_snapshot_without_copies_serves_and_gets_them(data_dir: Path) -> None:
    """A snapshot written before the copies existed is loaded and serves at once (its candidates re-ranked
    from their rows), and its graphs are rebuilt with copies in the background, with the same answers; the
    next snapshot holds the copies, and a store opened from it needs no rebuild."""
    vectors = unit(np.random.default_rng(23), 300)
    first = LocalStore(data_dir, name="idx")
    await first.bind(IDENTITY)
    await first.upsert([(entry(f"k{i}", scope=f"s{i % 2}"), vectors[i]) for i in range(300)])
    await first.delete("k4")
    expected = [[m.entry.key for m in await first.search(v, scope="s0", k=3)] for v in vectors[:40]]
    await first.close()
    folder = data_dir / "idx.hnsw"
    pointer_file = folder / "CURRENT"
    pointer = json.loads(pointer_file.read_text())
    assert sorted(pointer["copies"]) == ["s0", "s1"]
    # What a snapshot of the release before looked like: no copies.
    del pointer["copies"]
    pointer_file.write_text(json.dumps(pointer))
    for copy_file in (folder / pointer["folder"]).glob("*.np[yz]"):
        copy_file.unlink()

    store = LocalStore(data_dir, name="idx")
    try:
        await store.open()
        assert [m.entry.key for m in await store.search(vectors[0], scope="s0", k=3)] == expected[0]
        assert (await store.info()).extra["graph_from_snapshot"] is True
        await store.settle()  # the rebuild runs in the background
        graphs = store._follower.graphs
        assert graphs is not None and graphs.outdated() == []
        assert [len(graphs.copies(scope) or ()) for scope in ("s0", "s1")] == [149, 150]
        assert [
            [m.entry.key for m in await store.search(v, scope="s0", k=3)] for v in vectors[:40]
        ] == expected
    finally:
        await store.close()
    assert sorted(json.loads(pointer_file.read_text())["copies"]) == ["s0", "s1"]

    reopened = LocalStore(data_dir, name="idx")
    try:
        await reopened.open()
        assert [m.entry.key for m in await reopened.search(vectors[2], scope="s0", k=3)] == expected[2]
        extra = (await reopened.info()).extra
        assert (extra["graph_from_snapshot"], extra["graphs_outdated"]) == (True, 0)
        graphs = reopened._follower.graphs
        assert graphs is not None and len(graphs.copies("s0") or ()) == 149
    finally:
        await reopened.close()


async def test_copies_turned_off_hold_none_and_read_every_candidates_row(data_dir: Path) -> None:
    """SEMCACHE_RERANK_COPIES=off saves the copies' memory: searches re-rank from the candidates' rows (11
    for one entry), the memory reported is the graph's alone, and a snapshot with copies is opened without
    loading them or rebuilding anything."""
    from engine.config import Settings
    from engine.stores import create_store

    vectors = unit(np.random.default_rng(24), 200)
    with_copies = LocalStore(data_dir, name="idx")
    await with_copies.bind(IDENTITY)
    await with_copies.upsert([(entry(f"k{i}"), vectors[i]) for i in range(200)])
    await with_copies.close()  # writes a snapshot with copies

    store = create_store(Settings.load(data_dir=data_dir, index_name="idx", rerank_copies=False))
    assert isinstance(store, LocalStore)
    try:
        await store.open()
        await store.search(vectors[0], scope="default", k=1)  # loads the graphs
        statements: list[str] = []
        store._conn.set_trace_callback(statements.append)
        try:
            matches = await store.search(vectors[7], scope="default", k=1)
        finally:
            store._conn.set_trace_callback(None)
        assert [m.entry.key for m in matches] == ["k7"] and rows_read(statements) == [11]
        graphs = store._follower.graphs
        assert graphs is not None and graphs.copies("default") is None and graphs.outdated() == []
        info = await store.info()
        assert info.parameters["rerank"] == "float32 rows" and info.extra["graphs_outdated"] == 0
        graph_file = next((data_dir / "idx.hnsw").rglob("*.usearch"))
        assert info.memory_bytes == graph_file.stat().st_size
    finally:
        await store.close()
