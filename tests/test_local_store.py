"""The embedded store on a real folder: real SQLite, real usearch graphs, real child processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from engine.errors import BackendUnavailableError, IndexMismatchError, IndexMissingError, InvalidInputError
from engine.models import CacheEntry, EmbedderIdentity, EntryFeedback
from engine.stores.base import LATENCY_WINDOW, VectorStore
from engine.stores.local import LocalStore
from engine.stores.local import database as db
from tests.support.local_store_child import IDENTITY as CHILD_IDENTITY
from tests.support.local_store_child import SCOPE as CHILD_SCOPE
from tests.support.local_store_child import child_key, child_vector

REPO = Path(__file__).resolve().parent.parent
DIM = 16
IDENTITY = EmbedderIdentity("test", "random-unit", DIM)
OpenStore = Callable[..., Awaitable[LocalStore]]


def unit(rng: np.random.Generator, n: int = 1, dim: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def entry(
    key: str, scope: str = "default", *, expires_at: float | None = None, response: str = ""
) -> CacheEntry:
    return CacheEntry(
        key=key,
        scope=scope,
        prompt=f"prompt of {key}",
        response=response or f"response of {key}",
        metadata={"key": key},
        created_at=time.time(),
        expires_at=expires_at,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def open_store(data_dir: Path) -> AsyncIterator[OpenStore]:
    """Opens bound stores on ``data_dir`` (several share it, like two replicas) and closes them after."""
    stores: list[LocalStore] = []

    async def factory(identity: EmbedderIdentity = IDENTITY, name: str = "idx") -> LocalStore:
        store = LocalStore(data_dir, name=name)
        stores.append(store)
        await store.open()
        await store.bind(identity)
        return store

    yield factory
    for store in stores:
        await store.close()


def spawn_child(
    data_dir: Path, start: int, count: int, batch: int = 1, hold: float = 0.0
) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "tests.support.local_store_child",
        str(data_dir),
        "idx",
        str(start),
        str(count),
    ]
    return subprocess.Popen(
        [*command, str(batch), str(hold)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def read_line(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        assert child.stderr is not None
        raise AssertionError(f"child ended early: {child.stderr.read()[-2000:]}")
    return line.strip()


async def test_satisfies_the_protocol(data_dir: Path) -> None:
    store = LocalStore(data_dir, name="idx")
    assert isinstance(store, VectorStore)
    assert store.kind == "local" and store.name == "idx"
    assert await store.open() is None
    assert store.recorded_identity is None
    await store.close()


async def test_round_trip(open_store: OpenStore) -> None:
    store = await open_store()
    vectors = unit(np.random.default_rng(1), 20)
    await store.upsert([(entry(f"k{i}"), vectors[i]) for i in range(20)])

    got = await store.get("k7")
    assert got is not None and got.response == "response of k7" and got.metadata == {"key": "k7"}
    assert await store.get("missing") is None
    assert await store.count() == 20
    matches = await store.search(vectors[7], scope="default", k=3)
    assert matches[0].entry.key == "k7"
    assert matches[0].distance == pytest.approx(0.0, abs=1e-5)
    assert [m.distance for m in matches] == sorted(m.distance for m in matches)
    expected = sorted(1.0 - float(vectors[i] @ vectors[7]) for i in range(20))[:3]
    assert [m.distance for m in matches] == pytest.approx(expected, abs=1e-5)
    page = await store.list_entries(offset=0, limit=5)
    assert page.total == 20 and len(page.entries) == 5
    assert (await store.list_entries(contains="OF K13")).total == 1
    assert await store.delete("k7") is True
    assert await store.delete("k7") is False
    assert await store.get("k7") is None
    assert "k7" not in [m.entry.key for m in await store.search(vectors[7], scope="default", k=5)]


async def test_upsert_same_key_updates_in_place(open_store: OpenStore) -> None:
    store = await open_store()
    old, new = unit(np.random.default_rng(2), 2)
    await store.upsert([(entry("same", response="first"), old)])
    await store.upsert([(entry("same", response="second"), new)])
    assert await store.count() == 1
    got = await store.get("same")
    assert got is not None and got.response == "second"
    matches = await store.search(new, scope="default", k=5)
    assert len(matches) == 1 and matches[0].distance == pytest.approx(0.0, abs=1e-5)
    assert (await store.search(old, scope="default", k=5))[0].distance > 0.01


async def test_scopes_are_isolated(open_store: OpenStore) -> None:
    store = await open_store()
    vector = unit(np.random.default_rng(3))[0]
    others = unit(np.random.default_rng(4), 10)
    await store.upsert(
        [(entry("in-a", "a"), vector)] + [(entry(f"b{i}", "b"), v) for i, v in enumerate(others)]
    )
    assert {m.entry.scope for m in await store.search(vector, scope="b", k=20)} == {"b"}
    assert [m.entry.key for m in await store.search(vector, scope="a", k=20)] == ["in-a"]
    assert await store.search(vector, scope="nowhere", k=5) == []
    # The same key stored under another scope leaves the first scope.
    await store.upsert([(entry("in-a", "b"), vector)])
    assert await store.search(vector, scope="a", k=5) == []
    assert (await store.search(vector, scope="b", k=1))[0].entry.key == "in-a"


async def test_max_distance_filters(open_store: OpenStore) -> None:
    store = await open_store()
    vectors = unit(np.random.default_rng(5), 30)
    await store.upsert([(entry(f"k{i}"), v) for i, v in enumerate(vectors)])
    query = vectors[0]
    limit = 0.9
    within = sorted(d for d in (1.0 - vectors @ query) if d <= limit)
    matches = await store.search(query, scope="default", k=30, max_distance=limit)
    assert 1 < len(matches) < 30
    assert [m.distance for m in matches] == pytest.approx(within, abs=1e-5)
    exact_only = await store.search(query, scope="default", k=5, max_distance=0.0)
    assert [m.entry.key for m in exact_only] == ["k0"]


async def test_expired_entries_are_never_served_and_are_purged(open_store: OpenStore) -> None:
    store = await open_store()
    rng = np.random.default_rng(6)
    query = unit(rng)[0]
    past = time.time() - 1.0
    # Thirty expired entries right next to the query, three live ones further away: the live ones must
    # still come back, although the graph's nearest labels are all expired.
    near = [query + 0.01 * unit(rng)[0] for _ in range(30)]
    await store.upsert(
        [(entry(f"old{i}", expires_at=past), v / np.linalg.norm(v)) for i, v in enumerate(near)]
    )
    await store.upsert(
        [(entry(f"live{i}", expires_at=time.time() + 3600), v) for i, v in enumerate(unit(rng, 3))]
    )
    await store.upsert([(entry("soon", expires_at=time.time() + 0.3), query)])
    assert await store.get("soon") is not None
    await asyncio.sleep(0.4)

    assert await store.get("old0") is None and await store.get("soon") is None
    matches = await store.search(query, scope="default", k=3)
    assert sorted(m.entry.key for m in matches) == ["live0", "live1", "live2"]
    assert await store.count() == 3
    assert {e.key for e in (await store.list_entries(limit=100)).entries} == {"live0", "live1", "live2"}
    assert await store.purge_expired() == 31
    assert await store.purge_expired() == 0
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 3


async def test_identity_mismatch_names_both_and_never_recreates(
    open_store: OpenStore, data_dir: Path
) -> None:
    store = await open_store()
    await store.upsert([(entry("kept"), unit(np.random.default_rng(7))[0])])
    await store.close()

    for other in (
        EmbedderIdentity("test", "another-model", DIM),
        EmbedderIdentity("test", "random-unit", DIM * 2),
    ):
        reopened = LocalStore(data_dir, name="idx")
        assert await reopened.open() == IDENTITY
        with pytest.raises(IndexMismatchError) as raised:
            await reopened.bind(other)
        text = str(raised.value)
        assert IDENTITY.describe() in text and other.describe() in text and "migrate" in text
        assert await reopened.count() == 1
        await reopened.close()


async def test_clear_keeps_the_binding(open_store: OpenStore, data_dir: Path) -> None:
    store = await open_store()
    vectors = unit(np.random.default_rng(8), 5)
    await store.upsert([(entry(f"k{i}"), v) for i, v in enumerate(vectors)])
    assert await store.clear() == 5
    assert await store.count() == 0
    assert await store.search(vectors[0], scope="default", k=5) == []
    await store.close()

    reopened = LocalStore(data_dir, name="idx")
    assert await reopened.open() == IDENTITY
    with pytest.raises(IndexMismatchError):
        await reopened.bind(EmbedderIdentity("test", "another-model", DIM))
    await reopened.bind(IDENTITY)
    await reopened.upsert([(entry("after"), vectors[0])])
    assert [m.entry.key for m in await reopened.search(vectors[0], scope="default", k=5)] == ["after"]
    await reopened.close()


async def test_counters_are_shared_by_stores_on_one_folder(open_store: OpenStore) -> None:
    first = await open_store()
    second = await open_store()
    await first.upsert([(entry("hit-me", expires_at=time.time() + 60), unit(np.random.default_rng(9))[0])])
    extend_to = time.time() + 7200
    await first.record_lookup(hit_key="hit-me", latency_ms=2.0, extend_to=extend_to)
    await first.record_lookup(hit_key=None, latency_ms=4.0)
    await first.record_lookup(hit_key=None, latency_ms=6.0)

    deadline = time.monotonic() + 3.0
    while (await second.counters()).hits == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    counters = await second.counters()
    assert (counters.hits, counters.misses) == (1, 2)
    assert counters.recent_latencies_ms == [2.0, 4.0, 6.0]
    seen = await second.get("hit-me")
    assert seen is not None and seen.hit_count == 1 and seen.expires_at == pytest.approx(extend_to)

    for i in range(LATENCY_WINDOW + 5):
        await second.record_lookup(hit_key=None, latency_ms=float(i))
    counters = await second.counters()
    assert len(counters.recent_latencies_ms) == LATENCY_WINDOW
    assert counters.recent_latencies_ms[-1] == float(LATENCY_WINDOW + 4)
    assert (await first.counters()).misses == 2 + LATENCY_WINDOW + 5


async def test_acknowledged_writes_survive_kill_9(data_dir: Path) -> None:
    child = spawn_child(data_dir, start=0, count=100_000, batch=3)
    acknowledged: list[str] = []
    try:
        assert read_line(child) == "bound"
        while len(acknowledged) < 60:
            line = read_line(child)
            assert line.startswith("ok ")
            acknowledged.append(line[3:])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL

    store = LocalStore(data_dir, name="idx")
    assert await store.open() == CHILD_IDENTITY
    await store.bind(CHILD_IDENTITY)
    for key in acknowledged:
        assert await store.get(key) is not None, key
    number = int(acknowledged[-1].split("-")[1])
    found = await store.search(child_vector(number), scope=CHILD_SCOPE, k=1)
    assert found[0].entry.key == acknowledged[-1]
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    await store.close()


async def test_another_process_sees_writes_within_a_second(open_store: OpenStore, data_dir: Path) -> None:
    store = await open_store(CHILD_IDENTITY)
    assert await store.search(child_vector(500), scope=CHILD_SCOPE, k=1) == []
    child = spawn_child(data_dir, start=500, count=1, hold=30.0)
    try:
        assert read_line(child) == "bound"
        assert read_line(child) == f"ok {child_key(500)}"
        acknowledged = time.monotonic()
        found_get = found_search = None
        while time.monotonic() - acknowledged < 1.0 and not (found_get and found_search):
            found_get = found_get or await store.get(child_key(500))
            found_search = found_search or await store.search(child_vector(500), scope=CHILD_SCOPE, k=1)
            await asyncio.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert found_get is not None
    assert found_search and found_search[0].entry.key == child_key(500)


async def test_concurrent_writers_in_two_processes(open_store: OpenStore, data_dir: Path) -> None:
    reader = await open_store(CHILD_IDENTITY)
    # Overlapping ranges: both processes write entries 150..199.
    children = [spawn_child(data_dir, 0, 200, batch=7), spawn_child(data_dir, 150, 200, batch=5)]
    for child in children:
        _, errors = child.communicate(timeout=120)
        assert child.returncode == 0, errors[-2000:]

    assert await reader.count() == 350
    with sqlite3.connect(reader.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(DISTINCT key) FROM entries").fetchone()[0] == 350
    await asyncio.sleep(0.3)  # past the refresh interval, so the reader applies both processes' writes
    for number in range(0, 350, 7):
        found = await reader.search(child_vector(number), scope=CHILD_SCOPE, k=1)
        assert found and found[0].entry.key == child_key(number)
        assert found[0].distance == pytest.approx(0.0, abs=1e-5)


async def test_reopen_uses_the_snapshot_and_later_changes(open_store: OpenStore, data_dir: Path) -> None:
    vectors = unit(np.random.default_rng(10), 60)
    writer = await open_store()
    await writer.upsert([(entry(f"k{i}"), vectors[i]) for i in range(50)])
    await writer.close()  # writes the snapshot, covering k0..k49
    assert (data_dir / "idx.hnsw" / "CURRENT").exists()

    other = await open_store()
    await other.upsert([(entry(f"k{i}"), vectors[i]) for i in range(50, 60)])
    assert await other.delete("k3")
    await other.upsert([(entry("k4", response="moved"), vectors[59])])
    # ``other`` stays open: its changes are not in any snapshot, only in SQLite.

    third = await open_store()
    assert (await third.info()).extra["graph_from_snapshot"] is True
    assert [m.entry.key for m in await third.search(vectors[55], scope="default", k=1)] == ["k55"]
    assert "k3" not in [m.entry.key for m in await third.search(vectors[3], scope="default", k=5)]
    assert (await third.search(vectors[4], scope="default", k=1))[0].distance > 0.01
    assert {m.entry.key for m in await third.search(vectors[59], scope="default", k=2)} == {"k4", "k59"}


async def test_damaged_snapshot_is_rebuilt_from_the_data_file(open_store: OpenStore, data_dir: Path) -> None:
    vectors = unit(np.random.default_rng(11), 20)
    store = await open_store()
    await store.upsert([(entry(f"k{i}"), vectors[i]) for i in range(20)])
    await store.close()
    for path in (data_dir / "idx.hnsw").rglob("*.usearch"):
        path.write_bytes(b"not a graph")
    reopened = await open_store()
    assert [m.entry.key for m in await reopened.search(vectors[12], scope="default", k=1)] == ["k12"]


async def test_a_snapshot_from_cosine_graphs_is_rebuilt(open_store: OpenStore, data_dir: Path) -> None:
    """Graphs saved before they switched to inner product (their pointer names no metric) are not loaded:
    the graphs are rebuilt from SQLite, and searches answer as before."""
    import json

    vectors = unit(np.random.default_rng(12), 20)
    store = await open_store()
    await store.upsert([(entry(f"k{i}"), vectors[i]) for i in range(20)])
    await store.close()
    pointer_file = data_dir / "idx.hnsw" / "CURRENT"
    pointer = json.loads(pointer_file.read_text())
    assert pointer["metric"] == "ip"
    del pointer["metric"]
    pointer_file.write_text(json.dumps(pointer))
    reopened = await open_store()
    assert [m.entry.key for m in await reopened.search(vectors[12], scope="default", k=1)] == ["k12"]
    assert (await reopened.info()).extra["graph_from_snapshot"] is False
    await reopened.close()  # and a snapshot of the rebuilt graphs replaces the old one
    assert json.loads(pointer_file.read_text())["metric"] == "ip"


async def test_corrupted_data_file_is_named(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "idx.sqlite3").write_bytes(b"this is not sqlite" * 100)
    store = LocalStore(data_dir, name="idx")
    with pytest.raises(BackendUnavailableError) as raised:
        await store.open()
    assert "idx.sqlite3" in raised.value.message and "corrupted" in raised.value.message
    assert raised.value.hint and "backup" in raised.value.hint
    health = await store.health()
    assert health.status == "down" and "corrupted" in health.detail


async def test_unusable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = LocalStore(blocker / "data", name="idx")
    with pytest.raises(BackendUnavailableError) as raised:
        await store.open()
    assert raised.value.hint and "SEMCACHE_DATA_DIR" in raised.value.hint
    health = await store.health()
    assert health.status == "down" and str(blocker / "data") in health.detail


async def test_bad_input_is_refused(open_store: OpenStore, data_dir: Path) -> None:
    unbound = LocalStore(data_dir, name="fresh")
    with pytest.raises(IndexMissingError):
        await unbound.upsert([(entry("k"), unit(np.random.default_rng(12))[0])])
    await unbound.close()
    store = await open_store()
    with pytest.raises(InvalidInputError) as raised:
        await store.upsert([(entry("k"), np.ones(DIM + 1, dtype=np.float32))])
    assert str(DIM + 1) in raised.value.message
    with pytest.raises(InvalidInputError):
        await store.search(np.zeros(DIM, dtype=np.float32), scope="default", k=1)


async def test_info_and_health(open_store: OpenStore, data_dir: Path) -> None:
    store = await open_store()
    await store.upsert([(entry(f"k{i}"), v) for i, v in enumerate(unit(np.random.default_rng(13), 4))])
    info = await store.info()
    assert (info.name, info.store, info.documents, info.identity) == ("idx", "local", 4, IDENTITY)
    assert (info.algorithm, info.metric) == ("HNSW", "COSINE")
    assert info.parameters["M"] == LocalStore.DEFAULT_M == 24 and info.parameters["ef_construction"] == 200
    assert info.memory_bytes and info.extra["path"] == str(data_dir / "idx.sqlite3")
    assert info.extra["size_on_disk_bytes"] > 0
    health = await store.health()
    assert health.status == "ok"
    assert health.facts["entries"] == 4 and health.facts["size_on_disk_bytes"] > 0


async def test_graph_memory_is_what_the_graphs_hold(data_dir: Path) -> None:
    """The graph memory the Index screen and `index` report is the graphs' content, which their snapshot
    saves byte for byte, and their copies', and grows with M; usearch's ``memory_usage`` reported the same for M 16 and M 24
    (the arenas it reserves ahead)."""
    vectors = unit(np.random.default_rng(16), 2000)
    reported = {}
    for m in (16, 24):
        folder = data_dir / f"m{m}"
        store = LocalStore(folder, name="idx", hnsw_m=m)
        try:
            await store.bind(IDENTITY)
            await store.upsert([(entry(f"k{i}"), vectors[i]) for i in range(2000)])
            await store.settle()  # a snapshot the writes started is not being written while we ask
            reported[m] = (await store.info()).memory_bytes
        finally:
            await store.close()
        saved = sum(path.stat().st_size for path in (folder / "idx.hnsw").rglob("*.usearch"))
        # Beside each graph, its float16 copies: a vector, a label and a live flag per entry.
        copies = 2000 * (2 * IDENTITY.dimension + 8 + 1)
        assert reported[m] == saved + copies
    assert reported[24] > reported[16]


async def test_a_new_snapshot_replaces_older_ones(open_store: OpenStore, data_dir: Path) -> None:
    snapshots = data_dir / "idx.hnsw"
    vectors = unit(np.random.default_rng(14), 10)
    store = await open_store()
    await store.upsert([(entry(f"k{i}"), vectors[i]) for i in range(5)])
    # Left behind by a process killed while it was saving.
    (snapshots / "000000000000-deadbeef").mkdir(parents=True)
    (snapshots / "CURRENT.000000000000-deadbeef.tmp").write_text("{")
    await store.close()
    first = {p.name for p in snapshots.iterdir() if p.is_dir()}
    assert len(first) == 1 and not list(snapshots.glob("*.tmp"))

    store = await open_store()
    await store.upsert([(entry(f"k{i}"), vectors[i]) for i in range(5, 10)])
    await store.close()
    second = {p.name for p in snapshots.iterdir() if p.is_dir()}
    assert len(second) == 1 and second != first

    reopened = await open_store()
    info = await reopened.info()
    assert info.extra["graph_from_snapshot"] is True and info.extra["graph_labels"] == 10


async def test_searches_go_on_while_a_snapshot_is_written(open_store: OpenStore, data_dir: Path) -> None:
    """A snapshot of a million entries takes a third of a second to write; searches must not wait for it.
    Here the write is held up by another process's reader of the snapshot folder (its shared lock), as
    when a replica starts while this one saves."""
    import fcntl

    vectors = unit(np.random.default_rng(15), 20)
    store = await open_store()
    await store.upsert([(entry(f"k{i}"), vectors[i]) for i in range(20)])
    assert (await store.search(vectors[3], scope="default", k=1))[0].entry.key == "k3"
    snapshots = data_dir / "idx.hnsw"
    snapshots.mkdir(exist_ok=True)
    with open(snapshots / ".lock", "a+b") as reader:
        fcntl.flock(reader.fileno(), fcntl.LOCK_SH)
        saving = asyncio.ensure_future(asyncio.to_thread(store._follower.save_snapshot))
        # The graphs are written before the pointer switch waits for the lock: wait for that point.
        while not list(snapshots.glob("CURRENT.*.tmp")):
            assert not saving.done(), "the snapshot was written without waiting for the reader's lock"
            await asyncio.sleep(0.01)
        found = await asyncio.wait_for(store.search(vectors[7], scope="default", k=1), timeout=60)
        assert found[0].entry.key == "k7" and not saving.done()
        fcntl.flock(reader.fileno(), fcntl.LOCK_UN)
    await saving
    assert not store._follower.dirty


async def test_iter_entries_walks_every_live_entry_once(open_store: OpenStore) -> None:
    store = await open_store()
    rng = np.random.default_rng(11)
    keys = [f"k{i:04d}" for i in range(1234)]
    await store.upsert([(entry(key), v) for key, v in zip(keys, unit(rng, len(keys)), strict=True)])
    await store.upsert([(entry(f"t{i}", "tenant"), v) for i, v in enumerate(unit(rng, 7))])
    await store.upsert([(entry("gone", expires_at=time.time() - 1.0), unit(rng)[0])])
    # A lookup still buffered in this process counts, as it does in list_entries.
    await store.record_lookup(hit_key="k0500", latency_ms=1.0)

    batches = [batch async for batch in store.iter_entries(batch=100)]
    walked = [e.key for batch in batches for e in batch]
    assert len(walked) == len(set(walked)) == len(keys) + 7
    assert set(walked) == {*keys, *(f"t{i}" for i in range(7))}
    assert all(1 <= len(batch) <= 100 for batch in batches)
    by_key = {e.key: e for batch in batches for e in batch}
    assert by_key["k0500"].hit_count == 1 and by_key["k0501"].hit_count == 0
    assert by_key["k0007"].response == "response of k0007" and by_key["k0007"].metadata == {"key": "k0007"}
    tenant = [e.key async for batch in store.iter_entries(batch=3, scope="tenant") for e in batch]
    assert sorted(tenant) == [f"t{i}" for i in range(7)]


async def test_iter_entries_is_not_shifted_by_writes_during_the_walk(open_store: OpenStore) -> None:
    store = await open_store()
    rng = np.random.default_rng(12)
    keys = [f"m{i:03d}" for i in range(300)]
    await store.upsert([(entry(key), v) for key, v in zip(keys, unit(rng, len(keys)), strict=True)])
    walked: list[str] = []
    async for batch in store.iter_entries(batch=50):
        if not walked:
            # Entries removed behind and ahead of the walk, and new ones before it: with offsets, each
            # would shift later entries and one would be skipped or repeated.
            await store.delete("m010")
            await store.delete("m250")
            await store.upsert([(entry(f"a{i}"), v) for i, v in enumerate(unit(rng, 5))])
        walked.extend(e.key for e in batch)
    assert len(walked) == len(set(walked))
    assert set(walked) == set(keys) - {"m250"}  # m010 was already handed out when it was deleted


async def test_get_vectors_returns_the_stored_vectors(open_store: OpenStore) -> None:
    store = await open_store()
    vectors = unit(np.random.default_rng(13), 3)
    await store.upsert([(entry(f"v{i}"), v) for i, v in enumerate(vectors)])
    got = await store.get_vectors(["v2", "missing", "v0"])
    assert set(got) == {"v0", "v2"}
    assert got["v0"].dtype == np.float32 and got["v0"].shape == (DIM,)
    np.testing.assert_allclose(got["v0"], vectors[0], atol=1e-6)
    np.testing.assert_allclose(got["v2"], vectors[2], atol=1e-6)
    assert await store.get_vectors([]) == {}


async def test_a_data_folder_from_before_feedback_opens_and_gains_it(data_dir: Path) -> None:
    old = LocalStore(data_dir, name="idx")
    await old.open()
    await old.bind(IDENTITY)
    await old.upsert([(entry("kept"), unit(np.random.default_rng(3))[0])])
    await old.record_lookup(hit_key="kept", latency_ms=2.0)
    await old.close()
    # What schema 1 wrote: no feedback tables, no feedback counters.
    with sqlite3.connect(data_dir / "idx.sqlite3") as conn:
        conn.execute("DROP TABLE feedback")
        conn.execute("DROP TABLE refused")
        conn.execute("DELETE FROM counters WHERE name LIKE 'feedback_%'")
        conn.execute("UPDATE meta SET v = 1 WHERE k = 'schema'")
    conn.close()

    store = LocalStore(data_dir, name="idx")
    try:
        assert await store.open() == IDENTITY
        assert (await store.get("kept")) is not None and (await store.counters()).hits == 1
        assert await store.feedback(["kept"]) == {}
        reported = await store.record_feedback("kept", "q", False)
        assert reported == EntryFeedback(1, 0, frozenset({"q"}))
        assert (await store.counters()).feedback_wrong == 1
    finally:
        await store.close()
    with sqlite3.connect(data_dir / "idx.sqlite3") as conn:
        assert conn.execute("SELECT v FROM meta WHERE k = 'schema'").fetchone()[0] == db.SCHEMA_VERSION
    conn.close()


def test_search_breadth_grows_only_for_big_graphs() -> None:
    from engine.stores.breadth import REDIS_REACH, ef_for, usearch_reach

    m16, m24 = usearch_reach(16), usearch_reach(24)
    assert ef_for(0, 64, m16) == 64
    assert ef_for(300_000, 64, m16) == 76  # recall@1 was already 1.000 at 300,000 with 64
    assert ef_for(1_000_000, 64, m16) == 256 == ef_for(1_000_000, 64, REDIS_REACH)
    assert ef_for(1_000_000, 64, m24) == 128  # a denser graph reaches further per unit of ef
    assert ef_for(300_000, 64, m24) == 64
    assert ef_for(1_000_000, 512, m24) == 512  # an operator's wider setting is never narrowed
    # Only measured connectivities narrow the breadth: between them the sparser one's reach, below 16 16's.
    assert usearch_reach(20) == usearch_reach(8) == m16 and usearch_reach(48) == m24


async def test_a_snapshot_built_with_another_m_serves_and_is_rebuilt(data_dir: Path) -> None:
    """A snapshot whose graphs were built with another M (the embedded store's default was 16) is loaded,
    so the first search does not wait for a full build; its graphs are rebuilt with the configured M
    beside it, then swapped in, with the same answers, and the next snapshot holds the rebuilt graphs."""
    import json

    vectors = unit(np.random.default_rng(14), 300)
    old = LocalStore(data_dir, name="idx", hnsw_m=16)
    await old.bind(IDENTITY)
    await old.upsert([(entry(f"k{i}", scope=f"s{i % 2}"), vectors[i]) for i in range(300)])
    expected = [[m.entry.key for m in await old.search(v, scope="s0", k=3)] for v in vectors[:40]]
    await old.close()
    pointer_file = data_dir / "idx.hnsw" / "CURRENT"
    assert json.loads(pointer_file.read_text())["m"] == 16

    store = LocalStore(data_dir, name="idx")  # the default M
    try:
        await store.open()
        assert [m.entry.key for m in await store.search(vectors[0], scope="s0", k=3)] == expected[0]
        info = await store.info()
        # Loaded (an M 16 graph: the snapshot's); the rebuild may already be done, so only after settle
        # is the M of the graphs certain.
        assert info.extra["graph_from_snapshot"] is True and info.parameters["M"] == 24
        await store.settle()  # the rebuild runs in the background
        graphs = store._follower.graphs
        assert graphs is not None and graphs.outdated() == []
        after = (await store.info()).extra
        assert (after["graphs_outdated"], after["graph_connectivity"]) == (0, [24])
        assert [
            [m.entry.key for m in await store.search(v, scope="s0", k=3)] for v in vectors[:40]
        ] == expected
    finally:
        await store.close()
    pointer = json.loads(pointer_file.read_text())
    assert (pointer["m"], pointer["outdated"]) == (24, [])
    # The snapshot it replaced covered the same changes; it is deleted all the same.
    assert [p.name for p in (data_dir / "idx.hnsw").iterdir() if p.is_dir()] == [pointer["folder"]]


async def test_closing_stops_a_rebuild_under_way(data_dir: Path) -> None:
    """A compaction (a rebuild of minutes at a million entries) gives up when the store closes, instead of
    holding the close; the graph it would have replaced stays, and the store reopens as usual."""
    vectors = unit(np.random.default_rng(15), 50)
    store = LocalStore(data_dir, name="idx")
    try:
        await store.bind(IDENTITY)
        await store.upsert([(entry(f"k{i}"), vectors[i]) for i in range(50)])
        graphs = store._follower.graphs
        assert graphs is not None
        before = graphs.graph("default")
        store._follower.stop()
        assert await asyncio.to_thread(store._follower.compact, ["default"]) == 0
        assert graphs.graph("default") is before
    finally:
        await store.close()
    reopened = LocalStore(data_dir, name="idx")
    try:
        await reopened.open()
        assert await reopened.compact(["default"]) == 1  # stopping lasts until the store is opened again
        assert [m.entry.key for m in await reopened.search(vectors[7], scope="default", k=1)] == ["k7"]
    finally:
        await reopened.close()


def test_hnsw_settings_reach_the_embedded_store(tmp_path: Path) -> None:
    from engine.config import Settings
    from engine.stores import create_store

    store = create_store(
        Settings(
            store_kind="local",
            data_dir=tmp_path,
            hnsw_m=24,
            hnsw_ef_construction=150,
            hnsw_ef_runtime=128,
        )
    )
    assert isinstance(store, LocalStore)
    assert (store.hnsw_m, store.ef_construction, store.ef_search) == (24, 150, 128)
    default = create_store(Settings(store_kind="local", data_dir=tmp_path))
    assert isinstance(default, LocalStore) and default.hnsw_m == LocalStore.DEFAULT_M
