"""The Redis store under Redis's own ``maxmemory`` eviction, and what Health says about the policy.

Entries Redis evicts disappear from results and counts and the index stays consistent; the eviction ranks
of a capacity drop them at the next purge. Health is degraded when ``maxmemory-policy`` could evict the
cache's bookkeeping keys (allkeys-*), not when it only evicts keys with an expiry (volatile-*).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.base import Capacity
from engine.stores.redis import RedisStore
from tests.conftest import unique_index_name

IDENTITY = EmbedderIdentity("test", "capacity-vectors", 16)
#: Entries written at most while waiting for Redis to evict some (a bound, not a measurement).
MAX_WRITES = 20_000


def vector(number: int) -> np.ndarray:
    values = np.random.default_rng(number).standard_normal(IDENTITY.dimension).astype(np.float32)
    return values / np.linalg.norm(values)


async def test_entries_evicted_by_redis_disappear_from_results_and_counts(
    redis_server_factory: Callable[..., Any],
) -> None:
    server = redis_server_factory()
    store = RedisStore(server.url, name=unique_index_name(), capacity=Capacity(max_entries=1_000_000))
    await store.open()
    await store.bind(IDENTITY)
    client = store.client
    used = int((await client.info("memory"))["used_memory"])
    await client.config_set("maxmemory-policy", "volatile-lru")
    await client.config_set("maxmemory", used + 4 * 1024 * 1024)
    written = 0
    filler = "x" * 20_000
    while int((await client.info("stats"))["evicted_keys"]) == 0:
        assert written < MAX_WRITES, "Redis never evicted anything"
        now = time.time()
        await store.upsert(
            [
                (CacheEntry(f"k{n:06d}", "default", f"prompt {n}", filler, {}, now, now + 3600), vector(n))
                for n in range(written, written + 10)
            ]
        )
        written += 10
    # Redis evicted some entries (and only entries: they alone have an expiry).
    for _ in range(3):
        now = time.time()
        await store.upsert(
            [
                (CacheEntry(f"k{n:06d}", "default", f"p {n}", filler, {}, now, now + 3600), vector(n))
                for n in range(written, written + 10)
            ]
        )
        written += 10
    # Redis evicts before any command while over the limit: lift it, so what is left holds still.
    await client.config_set("maxmemory", 0)
    present = {
        store.keys.entry_key(key.decode())
        async for key in client.scan_iter(match=f"{store.name}:*", _type="HASH")
    }
    assert 0 < len(present) < written
    assert await store.count() == len(present)
    assert (await store.list_entries(limit=1)).total == len(present)
    listed = {e.key for batch in [b async for b in store.iter_entries()] for e in batch}
    assert listed == present
    evicted = [f"k{n:06d}" for n in range(written) if f"k{n:06d}" not in present]
    for key in evicted[:20]:
        number = int(key[1:])
        assert await store.get(key) is None
        matches = await store.search(vector(number), scope="default", k=3)
        assert key not in {m.entry.key for m in matches}
    for key in sorted(present)[:5]:
        matches = await store.search(vector(int(key[1:])), scope="default", k=1)
        assert matches and matches[0].entry.key == key
    info = await store.info()
    assert info.indexing_failures == 0 and info.documents == len(present)
    # The ranks of entries Redis evicted go at the next purge, so the capacity counts only real entries.
    await store.purge_expired()
    assert await client.zcard(store.keys.rank) == len(present)
    assert (await store.health()).facts["bookkeeping_evictable"] is False
    await store.drop()


async def test_health_says_when_maxmemory_policy_could_evict_the_bookkeeping(
    redis_server_factory: Callable[..., Any],
) -> None:
    server = redis_server_factory()
    store = RedisStore(server.url, name=unique_index_name())
    await store.open()
    client = store.client
    await client.config_set("maxmemory", 512 * 1024 * 1024)
    await client.config_set("maxmemory-policy", "allkeys-lru")
    health = await store.health()
    assert health.status == "degraded" and health.facts["bookkeeping_evictable"] is True
    assert "allkeys-lru" in health.detail and "bookkeeping" in health.detail
    await client.config_set("maxmemory-policy", "volatile-lru")
    health = await store.health()
    assert health.status == "ok" and health.facts["bookkeeping_evictable"] is False
    await client.config_set("maxmemory", 0)
    await client.config_set("maxmemory-policy", "allkeys-lru")
    assert (await store.health()).status == "ok"  # no limit: nothing is ever evicted
    await store.close()
