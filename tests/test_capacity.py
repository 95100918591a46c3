"""Capacity limits and eviction (SEMCACHE_MAX_ENTRIES, SEMCACHE_EVICTION_POLICY) on both stores.

Each policy evicts the entries it names; an evicted entry is gone from every read (check, search,
get, listings, exports, counts) and counted; concurrent writers in two processes never leave the index
over its capacity (``CAPACITY_SLACK``); an index filled before capacities existed takes one on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.cache import CachePolicy, SemanticCache
from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.base import CAPACITY_SLACK, Capacity, VectorStore
from tests.conftest import unique_index_name

IDENTITY = EmbedderIdentity("test", "capacity-vectors", 16)
REPO = Path(__file__).resolve().parent.parent
#: How long the concurrent writers may take on a busy machine (a deadline, not a measurement).
WRITERS_DEADLINE_S = 180.0

StoreFactory = Callable[..., VectorStore]


def vector(number: int) -> np.ndarray:
    values = np.random.default_rng(number).standard_normal(IDENTITY.dimension).astype(np.float32)
    return values / np.linalg.norm(values)


def entry(
    key: str, scope: str = "default", *, expires_in: float | None = None, created: float | None = None
) -> CacheEntry:
    now = time.time()
    return CacheEntry(
        key,
        scope,
        f"prompt {key}",
        f"response {key}",
        {},
        now if created is None else created,
        None if expires_in is None else now + expires_in,
    )


@pytest.fixture
async def capacity_store(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[StoreFactory]:
    """``factory(capacity, name=None)``: an unopened store of ``store_kind`` held to ``capacity``."""
    made: list[VectorStore] = []
    default = unique_index_name()

    def factory(capacity: Capacity, name: str | None = None) -> VectorStore:
        store: VectorStore
        if store_kind == "local":
            from engine.stores.local import LocalStore

            store = LocalStore(tmp_path / "data", name=name or default, capacity=capacity)
        else:
            from engine.stores.redis import RedisStore

            store = RedisStore(request.getfixturevalue("redis_url"), name=name or default, capacity=capacity)
        made.append(store)
        return store

    yield factory
    for store in made:
        with contextlib.suppress(Exception):
            await store.drop()
        await store.close()


async def bound(store: VectorStore) -> VectorStore:
    await store.open()
    await store.bind(IDENTITY)
    return store


async def put(store: VectorStore, *entries: CacheEntry) -> None:
    """One upsert per entry, so each gets its own write time."""
    for item in entries:
        await store.upsert([(item, vector(hash(item.key) % 10_000))])


async def hit(store: VectorStore, key: str, times: int = 1) -> None:
    for _ in range(times):
        await store.record_lookup(hit_key=key, latency_ms=1.0)
    await store.counters()  # the local store writes its batched lookups first


async def keys_of(store: VectorStore) -> set[str]:
    return {e.key for batch in [b async for b in store.iter_entries()] for e in batch}


async def test_lru_evicts_the_least_recently_hit(capacity_store: StoreFactory) -> None:
    store = await bound(capacity_store(Capacity(max_entries=3, policy="lru")))
    await put(store, entry("a"), entry("b"), entry("c"))
    await hit(store, "a")
    await put(store, entry("d"))
    assert await keys_of(store) == {"a", "c", "d"}
    await hit(store, "c")
    await put(store, entry("e"))
    assert await keys_of(store) == {"c", "d", "e"}  # a's hit is older than d's write
    assert (await store.counters()).evictions == 2
    info = await store.info()
    assert (info.max_entries, info.eviction_policy, info.evictions) == (3, "lru", 2)


async def test_lfu_evicts_the_least_often_hit_and_ages(capacity_store: StoreFactory) -> None:
    store = await bound(capacity_store(Capacity(max_entries=3, policy="lfu")))
    await put(store, entry("a"), entry("b"), entry("c"))
    await hit(store, "a", 2)
    await hit(store, "c", 1)
    await put(store, entry("d"))
    assert await keys_of(store) == {"a", "c", "d"}  # b had no hit
    # Nothing is hit any more: with ageing, new entries climb past a's old two hits and a goes in the end,
    # where plain LFU would keep it for ever.
    for key in ("e", "f", "g", "h", "i"):
        await put(store, entry(key))
    assert "a" not in await keys_of(store)
    assert await store.count() == 3


async def test_ttl_evicts_the_soonest_expiring_then_the_oldest_immortal(capacity_store: StoreFactory) -> None:
    store = await bound(capacity_store(Capacity(max_entries=3, policy="ttl")))
    start = time.time()
    await put(
        store,
        entry("a", expires_in=1000),
        entry("b", expires_in=100),
        entry("c", created=start - 50),
    )
    await put(store, entry("d", expires_in=500))
    assert await keys_of(store) == {"a", "c", "d"}
    await put(store, entry("e", created=start - 10))
    assert await keys_of(store) == {"a", "c", "e"}
    await put(store, entry("f"))
    assert await keys_of(store) == {"c", "e", "f"}
    await put(store, entry("g"))
    assert await keys_of(store) == {"e", "f", "g"}  # c was the oldest of those that never expire


async def test_a_cap_per_scope_evicts_within_the_scope_only(capacity_store: StoreFactory) -> None:
    store = await bound(capacity_store(Capacity(max_entries_per_scope=2, policy="lru")))
    await put(store, entry("x1", "x"), entry("y1", "y"), entry("x2", "x"), entry("y2", "y"), entry("x3", "x"))
    assert await keys_of(store) == {"x2", "x3", "y1", "y2"}
    assert (await store.list_entries(scope="x")).total == 2


async def test_an_evicted_entry_is_gone_from_every_read(capacity_store: StoreFactory, embedder) -> None:  # type: ignore[no-untyped-def]
    store = capacity_store(Capacity(max_entries=2, policy="lru"))
    cache = SemanticCache(store, embedder, CachePolicy())
    await cache.start()
    first = await cache.store("How do I reset my password?", "Use the reset link.")
    await cache.store("What is the capital of France?", "Paris.")
    await cache.store("How tall is Mount Everest?", "8,849 metres.")
    assert (await cache.check("How do I reset my password?")).is_hit is False
    assert (await cache.check("how can I reset my password")).is_hit is False
    assert await store.get(first.key) is None
    vectors = await embedder.embed(["How do I reset my password?"])
    assert all(m.entry.key != first.key for m in await store.search(vectors[0], scope="default", k=5))
    page = await store.list_entries()
    assert page.total == 2 and first.key not in {e.key for e in page.entries}
    assert first.key not in await keys_of(store)
    assert await store.count() == 2
    assert (await store.counters()).evictions == 1
    assert (await cache.index_info()).evictions == 1


async def test_feedback_of_an_evicted_entry_goes_with_it(capacity_store: StoreFactory) -> None:
    store = await bound(capacity_store(Capacity(max_entries=1)))
    await put(store, entry("a"))
    await store.record_feedback("a", "query", correct=False)
    await put(store, entry("b"))
    await put(store, entry("a"))  # the same key again is a new entry: no feedback carried
    assert await store.feedback(["a"]) == {}


async def test_expired_entries_make_room_first_and_are_not_evictions(capacity_store: StoreFactory) -> None:
    store = await bound(capacity_store(Capacity(max_entries=2, policy="lru")))
    await put(store, entry("old", expires_in=1.0), entry("kept"))
    deadline = time.monotonic() + 30
    while await store.get("old") is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await put(store, entry("new"))
    assert await keys_of(store) == {"kept", "new"}
    assert (await store.counters()).evictions == 0


async def test_a_batch_larger_than_the_capacity_keeps_the_capacity(capacity_store: StoreFactory) -> None:
    store = await bound(capacity_store(Capacity(max_entries=5)))
    told: list[int] = []
    store.on_evict = told.append  # type: ignore[attr-defined]
    now = time.time()
    await store.upsert(
        [(CacheEntry(f"k{i:03d}", "default", "p", "r", {}, now), vector(i)) for i in range(20)]
    )
    assert await store.count() == 5
    assert (await store.counters()).evictions == 15
    assert sum(told) == 15  # what a server's metrics are told


async def test_two_processes_writing_never_exceed_the_capacity(
    capacity_store: StoreFactory, store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    cap, per_writer, batch = 50, 300, 10
    name = unique_index_name()
    store = await bound(capacity_store(Capacity(max_entries=cap), name=name))
    location = str(tmp_path / "data") if store_kind == "local" else request.getfixturevalue("redis_url")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.capacity_writer",
                store_kind,
                location,
                name,
                str(start),
                str(per_writer),
                str(batch),
                str(cap),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for start in (0, 100_000)
    ]
    deadline = time.monotonic() + WRITERS_DEADLINE_S
    highest = 0
    try:
        while any(w.poll() is None for w in writers):
            assert time.monotonic() < deadline, "the writers did not finish in time"
            highest = max(highest, await store.count())
            await asyncio.sleep(0.01)
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
    outputs = [w.communicate() for w in writers]
    assert all(w.returncode == 0 for w in writers), outputs
    assert highest <= cap + CAPACITY_SLACK
    assert await store.count() == cap
    assert len(await keys_of(store)) == cap
    assert (await store.counters()).evictions == 2 * per_writer - cap


async def test_an_index_filled_without_a_capacity_takes_one_on(
    capacity_store: StoreFactory, store_kind: str, tmp_path: Path
) -> None:
    name = unique_index_name()
    plain = await bound(capacity_store(Capacity(), name=name))
    await put(plain, *(entry(f"k{i}", created=time.time() - 100 + i) for i in range(10)))
    await plain.close()
    if store_kind == "local":  # make it a file of schema 2, written before capacities existed
        with sqlite3.connect(tmp_path / "data" / f"{name}.sqlite3") as conn:
            conn.execute("DROP INDEX entries_rank")
            conn.execute("DROP INDEX entries_scope_rank")
            conn.execute("ALTER TABLE entries DROP COLUMN evict_rank")
            conn.execute("DROP TABLE scope_sizes")
            conn.execute("DELETE FROM meta WHERE k IN ('policy', 'lfu_age')")
            conn.execute("DELETE FROM counters WHERE name = 'evictions'")
            conn.execute("UPDATE meta SET v = 2 WHERE k = 'schema'")
    limited = await bound(capacity_store(Capacity(max_entries=5, policy="lru"), name=name))
    assert await keys_of(limited) == {"k5", "k6", "k7", "k8", "k9"}  # at start, the oldest first
    assert (await limited.counters()).evictions == 5
    await put(limited, entry("new"))
    assert await limited.count() == 5
    assert await keys_of(limited) == {"k6", "k7", "k8", "k9", "new"}  # the oldest went first


def test_the_index_command_prints_capacity_policy_evictions_and_memory(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SEMCACHE_DATA_DIR": str(tmp_path / "cli"),
        "SEMCACHE_MAX_ENTRIES": "3",
        "SEMCACHE_EVICTION_POLICY": "lfu",
    }
    run = [sys.executable, "-m", "semcache_tui.cli"]
    subprocess.run([*run, "demo", "-q"], cwd=tmp_path, env=env, check=True, capture_output=True)
    shown = subprocess.run([*run, "index"], cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    lines = shown.stdout.splitlines()
    assert "  capacity: 3 / 3 entries" in lines
    assert "  eviction policy: lfu (least often hit first)" in lines
    # One read of the counter tells no rate: the total alone.
    evicted = next(line for line in lines if line.startswith("  evictions: "))
    assert re.fullmatch(r"  evictions: [1-9][\d,]*", evicted), evicted
    assert any(re.fullmatch(r"  memory per entry: [\d.]+ (B|KiB|MiB)", line) for line in lines), lines
    as_json = subprocess.run(
        [*run, "index", "--json"], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    body = json.loads(as_json.stdout)
    assert (body["documents"], body["max_entries"], body["max_entries_per_scope"]) == (3, 3, None)
    assert body["eviction_policy"] == "lfu" and body["evictions"] == int(evicted.split()[-1].replace(",", ""))
    assert body["evictions_per_minute"] is None
    assert body["memory_per_entry_bytes"] == pytest.approx(body["memory_bytes"] / 3)


async def index_with_rate(http: Any, deadline_s: float = 60.0) -> dict[str, Any]:
    """``GET /cache/index`` until the server has read the eviction counter long enough to tell a rate."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        response = await http.get("/cache/index")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["evictions_per_minute"] is not None:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError("the server never told an eviction rate")


#: The fields ``GET /cache/index`` had before capacities: kept as they were (the API is a drop-in).
INDEX_FIELDS = {
    "name", "store", "documents", "identity", "algorithm", "metric", "parameters", "fields", "memory_bytes",
    "indexing_failures", "extra",
}  # fmt: skip
CAPACITY_FIELDS = {
    "max_entries", "max_entries_per_scope", "eviction_policy", "evictions", "evictions_per_minute",
    "memory_per_entry_bytes",
}  # fmt: skip


@contextlib.asynccontextmanager
async def five_stored(cache: SemanticCache, tmp_path: Path) -> AsyncIterator[Any]:
    """An HTTP client of the server app over ``cache`` (in process, through its lifespan) once five
    pairs were stored in one batch; the cache is closed afterwards."""
    import httpx

    from engine.config import Settings
    from engine.server import create_app

    app = create_app(Settings.load(data_dir=tmp_path / "data"), cache)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                items = [
                    {"prompt": f"question number {n} about topic {n}", "response": f"answer {n}"}
                    for n in range(5)
                ]
                assert (await http.post("/cache/store/batch", json={"items": items})).status_code == 200
                yield http
    finally:
        await cache.close()


async def test_the_index_route_shows_capacity_policy_evictions_and_their_rate(
    capacity_store: StoreFactory, tmp_path: Path, embedder: Any
) -> None:
    store = capacity_store(Capacity(max_entries=4, max_entries_per_scope=3, policy="ttl"))
    async with five_stored(SemanticCache(store, embedder, CachePolicy()), tmp_path) as http:
        body = await index_with_rate(http)
        assert set(body) == INDEX_FIELDS | CAPACITY_FIELDS
        assert body["documents"] == 3  # the scope's limit is the tighter one
        assert (body["max_entries"], body["max_entries_per_scope"]) == (4, 3)
        assert (body["eviction_policy"], body["evictions"]) == ("ttl", 2)
        assert body["evictions_per_minute"] == 0.0  # nothing evicted since the server first read it
        assert body["memory_bytes"], body
        assert body["memory_per_entry_bytes"] == pytest.approx(body["memory_bytes"] / 3)

        more = [{"prompt": f"another question {n} on subject {n}", "response": "x"} for n in range(2)]
        assert (await http.post("/cache/store/batch", json={"items": more})).status_code == 200
        after = (await http.get("/cache/index")).json()
        assert (after["documents"], after["evictions"]) == (3, 4)
        assert after["evictions_per_minute"] > 0.0
        stats = (await http.get("/cache/stats")).json()
        assert (stats["total_entries"], stats["evictions"]) == (3, 4)  # in stats too

        schema = (await http.get("/openapi.json")).json()["components"]["schemas"]["IndexInfoOut"]
        assert set(schema["required"]) <= INDEX_FIELDS  # the new fields are all optional
        for name in CAPACITY_FIELDS:
            assert schema["properties"][name].get("description"), name


def test_the_index_command_through_a_server_prints_the_servers_rate(tmp_path: Path) -> None:
    import httpx

    from tests.support.cli import run_cli
    from tests.support.server_process import ServerProcess

    server = ServerProcess(
        tmp_path / "server", {"SEMCACHE_MAX_ENTRIES": "2", "SEMCACHE_EVICTION_POLICY": "lru"}
    ).start()
    try:
        server.wait_ready()
        items = [
            {"prompt": f"question number {n} about topic {n}", "response": f"answer {n}"} for n in range(4)
        ]
        with httpx.Client(base_url=server.url, timeout=60.0) as http:
            assert http.post("/cache/store/batch", json={"items": items}).status_code == 200
            deadline = time.monotonic() + 60.0
            while http.get("/cache/index").json()["evictions_per_minute"] is None:
                assert time.monotonic() < deadline, "the server never told an eviction rate"
                time.sleep(0.1)
        shown = run_cli(tmp_path / "cli", "index", "--server", server.url)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert "  capacity: 2 / 2 entries" in lines
        assert "  eviction policy: lru (least recently hit first)" in lines
        assert "  evictions: 2 (0.0/min)" in lines
        assert any(re.fullmatch(r"  memory per entry: [\d.]+ (B|KiB|MiB)", line) for line in lines), lines
        as_json = run_cli(tmp_path / "cli", "index", "--server", server.url, "--json")
        assert as_json.returncode == 0, as_json.stderr
        body = json.loads(as_json.stdout)
        assert (body["max_entries"], body["eviction_policy"], body["evictions"]) == (2, "lru", 2)
        assert body["evictions_per_minute"] == 0.0
        assert body["memory_per_entry_bytes"] == pytest.approx(body["memory_bytes"] / 2)
    finally:
        server.stop()


async def test_evictions_are_counted_in_metrics_and_stats(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from engine.stores.local import LocalStore

    store = LocalStore(tmp_path / "data", name="server", capacity=Capacity(max_entries=2))
    async with five_stored(SemanticCache(store, embedder, CachePolicy()), tmp_path) as http:
        metrics = (await http.get("/metrics")).text
        assert "semcache_cache_evictions_total 3.0" in metrics
        assert (await store.counters()).evictions == 3
