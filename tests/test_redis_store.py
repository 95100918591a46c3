"""The Redis store against a real Redis Stack started by the test session (tests/support/redis_fixtures.py).

Vectors are small synthetic unit vectors with known cosine distances, so each rule is checked exactly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
import redis

from engine.config import Settings
from engine.errors import BackendUnavailableError, IndexMismatchError, IndexMissingError, SemcacheError
from engine.keys import entry_key
from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.redis import RedisStore
from engine.stores.redis import query as q
from engine.stores.redis import schema as s
from engine.stores.redis.connection import make_client
from tests.support.redis_server import RedisServer, free_port

DIM = 8
IDENTITY = EmbedderIdentity("test", "synthetic", DIM)


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def at_distance(distance: float) -> np.ndarray:
    """A unit vector whose cosine distance to ``unit(1)`` is ``distance``."""
    cos = 1.0 - distance
    return unit(cos, float(np.sqrt(max(0.0, 1.0 - cos * cos))))


def entry(prompt: str, scope: str = "default", ttl: float | None = None, **metadata: object) -> CacheEntry:
    now = time.time()
    return CacheEntry(
        key=entry_key(scope, prompt),
        scope=scope,
        prompt=prompt,
        response=f"answer to {prompt}",
        metadata=dict(metadata),
        created_at=now,
        expires_at=now + ttl if ttl is not None else None,
    )


def name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    opened = RedisStore(redis_url, name=name())
    await opened.open()
    await opened.bind(IDENTITY)
    yield opened
    await _drop(opened)


async def _drop(store: RedisStore) -> None:
    try:
        await store.client.execute_command("FT.DROPINDEX", store.name, "DD")
        await store.client.delete(
            store.keys.meta, store.keys.stats, store.keys.latencies, store.keys.hits, store.keys.feedback
        )
    except Exception:
        pass
    await store.close()


# -- the test Redis itself ------------------------------------------------------------------------------


def test_redis_fixture_has_search_module(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    modules = {m[b"name"].decode() for m in client.module_list()}
    assert "search" in modules
    client.close()


def test_plain_redis_fixture_has_no_search_module(plain_redis_url: str) -> None:
    client = redis.Redis.from_url(plain_redis_url)
    assert client.module_list() == []
    client.close()


def test_redis_server_restarts_on_the_same_port(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory()
    port = server.port
    server.stop()
    assert not server.running
    server.start()
    assert server.port == port and server.client().ping()


# -- entries -------------------------------------------------------------------------------------------


async def test_round_trip_keeps_every_field_and_keys_are_prefixed(store: RedisStore) -> None:
    item = entry("What is HNSW?", metadata_ok=True, tokens=3)
    await store.upsert([(item, unit(1))])
    got = await store.get(item.key)
    assert got is not None
    assert (got.prompt, got.response, got.scope, got.metadata) == (
        item.prompt,
        item.response,
        "default",
        {"metadata_ok": True, "tokens": 3},
    )
    assert got.created_at == pytest.approx(item.created_at, abs=1e-3) and got.expires_at is None
    assert await store.client.exists(f"{store.name}:{item.key}") == 1
    matches = await store.search(unit(1), scope="default", k=3)
    assert [m.entry.key for m in matches] == [item.key] and matches[0].distance == 0.0
    # Storing the same key again updates in place: no duplicate.
    await store.upsert([(item, unit(1))])
    assert await store.count() == 1


async def test_ttl_is_a_redis_expiry(store: RedisStore) -> None:
    lasting, forever, short = entry("lasting", ttl=100), entry("forever"), entry("short", ttl=1)
    await store.upsert([(lasting, unit(1)), (forever, unit(1, 0.1)), (short, unit(1, 0.2))])
    ttl_ms = await store.client.pttl(store.keys.entry(lasting.key))
    assert 95_000 < ttl_ms <= 100_000
    assert await store.client.ttl(store.keys.entry(forever.key)) == -1
    await asyncio.sleep(1.3)
    assert await store.get(short.key) is None
    assert short.key not in {m.entry.key for m in await store.search(unit(1), scope="default", k=10)}
    # Re-storing without a TTL removes the expiry.
    await store.upsert([(entry("lasting"), unit(1))])
    assert await store.client.ttl(store.keys.entry(lasting.key)) == -1


async def test_scopes_are_isolated(store: RedisStore) -> None:
    a, b = entry("refund policy?", scope="tenant-a"), entry("refund policy?", scope="tenant.b:x")
    await store.upsert([(a, unit(1)), (b, unit(1))])
    assert a.key != b.key
    for scope, item in (("tenant-a", a), ("tenant.b:x", b)):
        assert [m.entry.key for m in await store.search(unit(1), scope=scope, k=10)] == [item.key]
        got = await store.search(unit(1), scope=scope, k=10, max_distance=0.5)
        assert [m.entry.key for m in got] == [item.key]
    assert await store.search(unit(1), scope="tenant", k=10) == []


async def test_scopes_are_exact_in_letter_case(store: RedisStore) -> None:
    tenant = entry("refund policy?", scope="TenantA")
    await store.upsert([(tenant, unit(1))])
    for other in ("tenanta", "TENANTA", "tenantA"):
        assert await store.search(unit(1), scope=other, k=10) == []
        assert await store.search(unit(1), scope=other, k=10, max_distance=0.5) == []
        page = await store.list_entries(scope=other)
        assert (page.total, page.entries) == (0, [])
    assert [m.entry.key for m in await store.search(unit(1), scope="TenantA", k=10)] == [tenant.key]


async def test_an_index_whose_scopes_fold_case_is_redefined_on_open(redis_url: str) -> None:
    """An index created before scopes were exact (its scope TAG folds case) keeps its entries and stops
    serving one tenant's answers to another as soon as a store opens it."""
    old = RedisStore(redis_url, name=name())
    try:
        await old.open()
        args = [str(a) if not isinstance(a, int) else a for a in s.create_args(old.keys, DIM, s.Hnsw())]
        args.remove("CASESENSITIVE")  # the definition earlier versions wrote
        await old.client.execute_command(*args)
        await old.client.hset(old.keys.meta, mapping=s.identity_to_meta(IDENTITY, s.VECTOR, s.Hnsw()))
        tenant = entry("refund policy?", scope="TenantA")
        await old.client.hset(
            old.keys.entry(tenant.key), mapping=q.entry_to_hash(tenant, unit(1).tobytes(), time.time())
        )
        folded = s.IndexFacts.parse(await old.client.execute_command("FT.INFO", old.name))
        assert folded.scope_folds_case
        leaked = await old.client.execute_command(
            "FT.SEARCH", old.name, "@scope:{tenanta}", "NOCONTENT", "DIALECT", 2
        )
        assert q.results(leaked)[0] == 1  # the defect this redefinition removes

        assert await old.open() == IDENTITY
        await old.bind(IDENTITY)
        await old.wait_indexed()
        facts = s.IndexFacts.parse(await old.client.execute_command("FT.INFO", old.name))
        assert not facts.scope_folds_case and facts.documents == 1
        assert await old.search(unit(1), scope="tenanta", k=10) == []
        assert (await old.list_entries(scope="tenanta")).total == 0
        assert [m.entry.key for m in await old.search(unit(1), scope="TenantA", k=10)] == [tenant.key]
    finally:
        await _drop(old)


async def test_range_query_returns_only_entries_within_the_distance(store: RedisStore) -> None:
    distances = [0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.5]
    items = [entry(f"prompt at {d}") for d in distances]
    await store.upsert([(item, at_distance(d)) for item, d in zip(items, distances, strict=True)])
    got = await store.search(unit(1), scope="default", k=100, max_distance=0.15)
    assert [m.entry.prompt for m in got] == ["prompt at 0.0", "prompt at 0.05", "prompt at 0.1"]
    assert [m.distance for m in got] == pytest.approx([0.0, 0.05, 0.1], abs=1e-4)
    assert len(await store.search(unit(1), scope="default", k=2, max_distance=2.0)) == 2
    # An exact repeat at 0 is kept: float32 noise around 0 is snapped to 0.
    assert [m.entry.prompt for m in await store.search(unit(1), scope="default", k=5, max_distance=0.0)] == [
        "prompt at 0.0"
    ]
    nearest = await store.search(unit(1), scope="default", k=10)
    assert [m.distance for m in nearest] == sorted(m.distance for m in nearest) and len(nearest) == 7


async def test_delete_purge_and_listing(store: RedisStore) -> None:
    items = [entry(f"paged question {i}?") for i in range(12)]
    items.append(entry("what is the capital of France?", scope="geo"))
    await store.upsert([(item, unit(1, i / 10)) for i, item in enumerate(items)])
    page = await store.list_entries(offset=0, limit=5)
    rest = await store.list_entries(offset=5, limit=10)
    assert page.total == rest.total == 13 and len(page.entries) == 5 and len(rest.entries) == 8
    assert len({e.key for e in page.entries + rest.entries}) == 13
    assert (await store.list_entries(scope="geo")).total == 1
    only = await store.list_entries(contains="QUESTION 1")
    assert {e.prompt for e in only.entries} == {
        "paged question 1?",
        "paged question 10?",
        "paged question 11?",
    }
    interior = await store.list_entries(contains="is the capital")  # narrowed in Redis by the word "the"
    assert [e.prompt for e in interior.entries] == ["what is the capital of France?"]
    assert await store.delete(items[0].key) and not await store.delete(items[0].key)
    doomed = entry("doomed", ttl=0.5)
    await store.upsert([(doomed, unit(0, 1))])
    await asyncio.sleep(0.7)
    await store.purge_expired()
    assert await store.get(doomed.key) is None
    assert await store.count() == 12


# -- counters ------------------------------------------------------------------------------------------


async def test_counters_are_shared_by_replicas(redis_url: str) -> None:
    index = name()
    one, two = RedisStore(redis_url, name=index), RedisStore(redis_url, name=index)
    try:
        for replica in (one, two):
            await replica.open()
            await replica.bind(IDENTITY)
        item = entry("shared?")
        await one.upsert([(item, unit(1))])
        await one.record_lookup(hit_key=item.key, latency_ms=2.0)
        await two.record_lookup(hit_key=item.key, latency_ms=4.0)
        await two.record_lookup(hit_key=None, latency_ms=6.0)
        for replica in (one, two):
            counters = await replica.counters()
            assert (counters.hits, counters.misses) == (2, 1)
            assert sorted(counters.recent_latencies_ms) == [2.0, 4.0, 6.0]
            got = await replica.get(item.key)
            assert got is not None and got.hit_count == 2
        assert await two.count() == 1
        extended = time.time() + 500
        await one.record_lookup(hit_key=item.key, latency_ms=1.0, extend_to=extended)
        got = await two.get(item.key)
        assert got is not None and got.expires_at == pytest.approx(extended, abs=0.01)
        assert 495 < await two.client.ttl(two.keys.entry(item.key)) <= 500
    finally:
        await _drop(one)
        await two.close()


# -- identity ------------------------------------------------------------------------------------------


async def test_identity_mismatch_is_refused_and_nothing_is_dropped(store: RedisStore, redis_url: str) -> None:
    await store.upsert([(entry("kept"), unit(1))])
    for other in (EmbedderIdentity("test", "synthetic", 16), EmbedderIdentity("test", "another-model", DIM)):
        second = RedisStore(redis_url, name=store.name)
        assert await second.open() == IDENTITY
        with pytest.raises(IndexMismatchError) as info:
            await second.bind(other)
        assert IDENTITY.describe() in str(info.value) and other.describe() in str(info.value)
        assert "semcache-tui migrate" in str(info.value)
        assert await second.count() == 1
        await second.close()


async def test_an_index_created_by_the_seed_service_is_detected(store: RedisStore, redis_url: str) -> None:
    index = name()
    client = store.client
    # The seed's layout (RedisVL SemanticCache): no scope, no recorded identity.
    await client.execute_command(
        "FT.CREATE", index, "ON", "HASH", "PREFIX", 1, f"{index}:", "SCHEMA",
        "prompt", "TEXT", "response", "TEXT", "inserted_at", "NUMERIC", "updated_at", "NUMERIC",
        "prompt_vector", "VECTOR", "FLAT", 6, "TYPE", "FLOAT32", "DIM", DIM, "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip
    await client.hset(
        f"{index}:seed1",
        mapping={
            "prompt": "seeded?",
            "response": "yes",
            "inserted_at": 1.0,
            "prompt_vector": unit(1).tobytes(),
        },
    )
    seed = RedisStore(redis_url, name=index)
    try:
        recorded = await seed.open()
        assert recorded is not None and recorded.dimension == DIM and recorded.provider == "unknown"
        with pytest.raises(IndexMismatchError, match=f"{DIM} dims.*16 dims"):
            await seed.bind(EmbedderIdentity("test", "synthetic", 16))
        await seed.bind(IDENTITY)  # same dimension: adopted, its entries land in the default scope
        await seed.wait_indexed()
        assert seed.recorded_identity == IDENTITY
        matches = await seed.search(unit(1), scope="default", k=3, max_distance=0.1)
        assert [m.entry.prompt for m in matches] == ["seeded?"]
    finally:
        await _drop(seed)


# -- clearing ------------------------------------------------------------------------------------------


async def test_clear_returns_the_real_count_and_keeps_the_index(store: RedisStore) -> None:
    await store.upsert([(entry(f"q{i}"), unit(1, i)) for i in range(25)])
    await store.record_lookup(hit_key=entry("q1").key, latency_ms=1.0)
    assert await store.clear() == 25
    assert await store.count() == 0
    assert store.name in await store.list_indexes()
    info = await store.info()
    assert info.parameters["dimension"] == DIM and info.identity == IDENTITY
    await store.upsert([(entry("after"), unit(1))])
    assert [m.entry.prompt for m in await store.search(unit(1), scope="default", k=3)] == ["after"]
    assert (await store.get(entry("after").key)).hit_count == 0  # type: ignore[union-attr]


async def test_seed_dropindex_dd_still_clears_and_the_store_recovers(store: RedisStore) -> None:
    await store.upsert([(entry(f"q{i}"), unit(1, i)) for i in range(5)])
    await store.record_lookup(hit_key=None, latency_ms=1.0)
    await store.client.execute_command("FT.DROPINDEX", store.name, "DD")
    assert await store.client.keys(f"{store.name}:*") == []  # every entry was under the prefix
    assert await store.client.exists(store.keys.meta) == 1  # bookkeeping is not, so DD never sees it
    # A running (bound) store recreates the index instead of failing until a restart.
    assert await store.search(unit(1), scope="default", k=3) == []
    await store.upsert([(entry("again"), unit(1))])
    assert [m.entry.prompt for m in await store.search(unit(1), scope="default", k=3)] == ["again"]
    assert (await store.counters()).misses == 1


async def test_a_missing_index_is_named_when_not_bound(redis_url: str) -> None:
    lost = RedisStore(redis_url, name=name())
    try:
        assert await lost.open() is None
        with pytest.raises(IndexMissingError) as info:
            await lost.count()
        assert lost.name in str(info.value) and "CACHE_INDEX_NAME" in str(info.value)
    finally:
        await lost.close()


# -- operator errors -----------------------------------------------------------------------------------


async def test_a_redis_without_search_says_redis_stack_is_needed(plain_redis_url: str) -> None:
    plain = RedisStore(plain_redis_url, name=name())
    with pytest.raises(BackendUnavailableError) as info:
        await plain.open()
    await plain.close()
    message = str(info.value)
    assert "no search module" in message and "Redis Stack" in message and "Redis 8" in message
    assert "\n" not in message and info.value.__cause__ is None and info.value.__suppress_context__


async def test_credentials_password_acl_user_and_wrong_password(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory(password="right-horse-battery")
    host = f"127.0.0.1:{server.port}"
    wrong = RedisStore(f"redis://:wrong-staple@{host}", name=name())
    with pytest.raises(BackendUnavailableError) as info:
        await wrong.open()
    await wrong.close()
    assert "refused the credentials" in str(info.value) and "wrong-staple" not in str(info.value)
    assert "REDIS_PASSWORD" in str(info.value)

    missing = RedisStore(f"redis://{host}", name=name())
    with pytest.raises(BackendUnavailableError, match="credentials"):
        await missing.open()
    await missing.close()

    settings = Settings(redis_url=f"redis://{host}", redis_password="right-horse-battery", index_name=name())
    via_env = RedisStore.from_settings(settings)
    assert await via_env.open() is None and via_env.name == settings.index_name
    await via_env.bind(IDENTITY)
    await via_env.client.execute_command(
        "ACL", "SETUSER", "cacheuser", "on", ">user-pass", "~*", "&*", "+@all"
    )
    as_user = RedisStore(f"redis://cacheuser:user-pass@{host}", name=via_env.name)
    assert await as_user.open() == IDENTITY
    await as_user.close()
    bad_user = RedisStore(f"redis://cacheuser:nope-nope@{host}", name=via_env.name)
    with pytest.raises(BackendUnavailableError) as info:
        await bad_user.open()
    assert "cacheuser" in str(info.value) and "nope-nope" not in str(info.value)
    await bad_user.close()
    # A password typed into REDIS_URL without percent-encoding its '/', '#', '?' or '@' still connects,
    # and no part of it reaches an error message.
    odd = "sl/ash#hash?q@at"
    await via_env.client.execute_command("ACL", "SETUSER", "odduser", "on", f">{odd}", "~*", "&*", "+@all")
    raw = Settings(redis_url=f"redis://odduser:{odd}@{host}", index_name=via_env.name)
    as_odd = RedisStore.from_settings(raw)
    assert await as_odd.open() == IDENTITY
    assert odd not in as_odd.safe_url and "ash" not in as_odd.safe_url
    await as_odd.close()
    wrong_odd = RedisStore.from_settings(
        Settings(redis_url=f"redis://odduser:{odd}x@{host}", index_name=via_env.name)
    )
    with pytest.raises(BackendUnavailableError) as info:
        await wrong_odd.open()
    assert "refused the credentials" in str(info.value) and "ash" not in str(info.value)
    await wrong_odd.close()
    await via_env.close()


async def test_unreachable_redis_is_one_line_with_the_password_redacted() -> None:
    url = f"redis://admin:hunter2secret@127.0.0.1:{free_port()}/0"
    gone = RedisStore(url, name=name())
    with pytest.raises(BackendUnavailableError) as info:
        await gone.open()
    await gone.close()
    message = str(info.value)
    assert "cannot reach Redis at redis://admin:***@127.0.0.1" in message
    assert "hunter2secret" not in message and "\n" not in message and "start Redis Stack" in message
    health = await RedisStore(url, name=name()).health()
    assert health.status == "down" and "hunter2secret" not in health.detail


async def test_redis_going_away_and_coming_back(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory(appendonly=True)
    flaky = RedisStore(server.url, name=name())
    try:
        await flaky.open()
        await flaky.bind(IDENTITY)
        await flaky.upsert([(entry("survives?"), unit(1))])
        server.stop()
        for _ in range(2):
            with pytest.raises(BackendUnavailableError, match="cannot reach Redis"):
                await flaky.search(unit(1), scope="default", k=1)
        assert (await flaky.health()).status == "down"
        server.start()
        await flaky.wait_indexed()
        assert [m.entry.prompt for m in await flaky.search(unit(1), scope="default", k=1)] == ["survives?"]
        await flaky.record_lookup(hit_key=None, latency_ms=1.0)
        assert (await flaky.health()).status == "ok"
    finally:
        await flaky.close()


async def test_a_pooled_connection_the_server_killed_is_replaced_by_the_next_command(
    store: RedisStore, redis_url: str
) -> None:
    await store.upsert([(entry("still here"), unit(1))])
    pooled = await store.client.client_id()
    killer = redis.Redis.from_url(redis_url)
    try:
        assert killer.client_kill_filter(_id=pooled) == 1
    finally:
        killer.close()
    # The one immediate retry reconnects: the caller never sees the dead connection.
    assert [m.entry.prompt for m in await store.search(unit(1), scope="default", k=1)] == ["still here"]
    assert await store.client.client_id() != pooled


def test_the_synchronous_client_also_replaces_a_killed_connection(redis_url: str) -> None:
    client = make_client(redis_url, None, sync=True)
    killer = redis.Redis.from_url(redis_url)
    try:
        pooled = client.client_id()
        assert killer.client_kill_filter(_id=pooled) == 1
        assert client.ping() is True
        assert client.client_id() != pooled
    finally:
        killer.close()
        client.close()


# -- inspection ----------------------------------------------------------------------------------------


async def test_info_health_and_index_list(redis_url: str) -> None:
    tuned = RedisStore(redis_url, name=name(), hnsw_m=24, hnsw_ef_construction=150, hnsw_ef_runtime=40)
    try:
        await tuned.open()
        await tuned.bind(IDENTITY)
        await tuned.upsert([(entry("x"), unit(1))])
        info = await tuned.info()
        assert (info.store, info.documents, info.algorithm, info.metric) == ("redis", 1, "HNSW", "COSINE")
        assert info.parameters["M"] == 24 and info.parameters["ef_construction"] == 150
        assert info.parameters["ef_runtime"] == 40 and info.indexing_failures == 0
        assert info.memory_bytes and info.memory_bytes > 0
        assert {"prompt", "scope", "prompt_vector"} <= {f["attribute"] for f in info.fields}
        health = await tuned.health()
        assert health.status == "ok" and health.latency_ms is not None
        facts = health.facts
        assert facts["redis_version"].startswith("7.") and facts["search_version"].startswith("2.")
        for fact in ("used_memory", "maxmemory", "maxmemory_policy", "connected_clients", "ops_per_sec"):
            assert fact in facts
        assert facts["persistence"] == "none" or facts["persistence"].startswith(("RDB", "AOF"))
        assert tuned.name in await tuned.list_indexes()
    finally:
        await _drop(tuned)


async def test_knn_breadth_grows_with_the_index(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big index is searched wider (breadth.py): the EF_RUNTIME each KNN query sends follows the index's
    size, read again once ``DOCUMENTS_MAX_AGE`` has passed. One entry per unit of ef stands in for the
    million-entry scale, and the query Redis received is read back from its SLOWLOG."""
    from engine.stores import breadth
    from engine.stores.redis import store as redis_store

    monkeypatch.setattr(breadth, "REDIS_REACH", 1)
    monkeypatch.setattr(redis_store, "DOCUMENTS_MAX_AGE", 0.0)
    admin = redis.Redis.from_url(redis_url)
    threshold = admin.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    store = RedisStore(redis_url, name=name(), hnsw_ef_runtime=4)
    try:
        await store.open()
        await store.bind(IDENTITY)

        async def sent_ef() -> int:
            admin.slowlog_reset()
            admin.config_set("slowlog-log-slower-than", 0)
            try:
                await store.search(unit(1), scope="default", k=1)
            finally:
                admin.config_set("slowlog-log-slower-than", threshold)
            for logged in admin.slowlog_get(128):
                args = [a.decode(errors="replace") for a in logged["command"].split()]
                if args[:2] == ["FT.SEARCH", store.name] and "ef" in args:
                    return int(args[args.index("ef") + 1])
            raise AssertionError("no KNN query reached Redis")

        assert await sent_ef() == 4  # an empty index: the configured breadth
        await store.upsert([(entry(f"p{i}"), unit(1, i / 10)) for i in range(10)])
        assert await sent_ef() == 10  # ten entries at one entry per unit of ef
        assert (await store.info()).parameters["query_ef_runtime"] == 10
        assert (await store.info()).parameters["ef_runtime"] == 4  # the index's own setting, unchanged
    finally:
        admin.close()
        await _drop(store)


async def test_from_settings_reads_url_name_and_hnsw(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, index_name="from_settings_idx", hnsw_m=8, hnsw_ef_runtime=99)
    made = RedisStore.from_settings(settings)
    assert (made.name, made.hnsw.m, made.hnsw.ef_runtime) == ("from_settings_idx", 8, 99)
    assert made.kind == "redis"
    # Unset, M is Redis's own default (indexes were created with it; breadth.py), not the embedded store's.
    assert RedisStore.from_settings(Settings(redis_url=redis_url)).hnsw.m == RedisStore.DEFAULT_M == 16
    tls = RedisStore.from_settings(Settings(redis_url="rediss://u:pw@example.invalid:6380/0"))
    assert tls.client.connection_pool.connection_class.__name__ == "SSLConnection"
    assert "pw" not in repr(tls)
    await made.close()
    await tls.close()


# -- walking every entry ---------------------------------------------------------------------------------

#: The offset cap the walk must get past; lowered from Redis Stack's 10000 so the test stays small.
CAP = 100


@pytest.fixture
async def capped_store(redis_server_factory: Callable[..., RedisServer]) -> AsyncIterator[RedisStore]:
    """A bound store on a private Redis whose FT.SEARCH offsets stop at ``CAP`` (MAXSEARCHRESULTS)."""
    server = redis_server_factory()
    client = server.client()
    reply = client.execute_command("FT.CONFIG", "GET", "MAXSEARCHRESULTS")
    # redis-py parses the reply into {name: value}; older clients leave RediSearch's [[name, value]].
    old = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    client.execute_command("FT.CONFIG", "SET", "MAXSEARCHRESULTS", CAP)
    opened = RedisStore(server.url, name=name())
    try:
        await opened.open()
        await opened.bind(IDENTITY)
        yield opened
    finally:
        await _drop(opened)
        client.execute_command("FT.CONFIG", "SET", "MAXSEARCHRESULTS", old)
        client.close()


def random_units(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


async def fill(store: RedisStore, n: int, scope: str = "default", seed: int = 7) -> list[CacheEntry]:
    items = [entry(f"walked question {scope} {i}?", scope=scope) for i in range(n)]
    vectors = random_units(np.random.default_rng(seed), n)
    for start in range(0, n, 500):
        await store.upsert(list(zip(items[start : start + 500], vectors[start : start + 500], strict=True)))
    return items


async def test_the_cap_stops_offset_paging(capped_store: RedisStore) -> None:
    """The premise of the next tests: past CAP, FT.SEARCH paging no longer reaches the entries."""
    await fill(capped_store, 3 * CAP)
    reached: set[str] = set()
    for offset in range(0, 3 * CAP, 50):
        try:
            page = await capped_store.list_entries(offset=offset, limit=50)
        except SemcacheError:  # some versions refuse the offset instead of returning nothing
            break
        reached |= {e.key for e in page.entries}
    assert len(reached) <= CAP < 3 * CAP


async def test_iter_entries_returns_every_entry_once_past_the_offset_cap(capped_store: RedisStore) -> None:
    items = await fill(capped_store, 3 * CAP + 50)
    others = await fill(capped_store, 20, scope="other", seed=8)
    hit = items[-1].key
    await capped_store.record_lookup(hit_key=hit, latency_ms=1.0)
    await capped_store.record_lookup(hit_key=hit, latency_ms=1.0)

    batches = [batch async for batch in capped_store.iter_entries(batch=64)]
    keys = [e.key for batch in batches for e in batch]
    assert len(keys) == len(set(keys)) == len(items) + len(others)
    assert set(keys) == {e.key for e in items + others}
    assert all(1 <= len(batch) <= 64 for batch in batches)
    walked = {e.key: e for batch in batches for e in batch}
    assert walked[hit].hit_count == 2 and walked[items[0].key].hit_count == 0
    assert (
        walked[items[0].key].prompt == items[0].prompt and walked[items[0].key].response == items[0].response
    )

    scoped = [e async for batch in capped_store.iter_entries(batch=500, scope="other") for e in batch]
    assert sorted(e.key for e in scoped) == sorted(e.key for e in others)


async def test_iter_entries_skips_expired_entries(store: RedisStore) -> None:
    lasting, short = entry("lasting"), entry("short-lived", ttl=0.3)
    await store.upsert([(lasting, unit(1)), (short, unit(0, 1))])
    await asyncio.sleep(0.5)
    walked = [e.key async for batch in store.iter_entries(batch=10) for e in batch]
    assert walked == [lasting.key]


async def test_cache_iter_entries_goes_past_the_offset_cap(capped_store: RedisStore, embedder) -> None:  # type: ignore[no-untyped-def]
    from engine.cache import SemanticCache

    items = await fill(capped_store, 2 * CAP + 30)
    cache = SemanticCache(capped_store, embedder)  # listing needs the store only, never the embedder
    keys = [e.key async for batch in cache.iter_entries(50) for e in batch]
    assert len(keys) == len(set(keys)) == len(items)


async def test_get_vectors_returns_the_stored_vectors(store: RedisStore) -> None:
    first, second = entry("first"), entry("second")
    await store.upsert([(first, unit(1, 2)), (second, at_distance(0.3))])
    vectors = await store.get_vectors([first.key, "no-such-key", second.key])
    assert set(vectors) == {first.key, second.key}
    assert vectors[first.key].dtype == np.float32 and vectors[first.key].shape == (DIM,)
    np.testing.assert_allclose(vectors[first.key], unit(1, 2), atol=1e-7)
    np.testing.assert_allclose(vectors[second.key], at_distance(0.3), atol=1e-7)
    assert await store.get_vectors([]) == {}


async def test_upsert_keeps_a_carried_hit_count_and_a_new_store_starts_at_zero(store: RedisStore) -> None:
    restored = entry("restored")
    restored.hit_count = 5
    fresh = entry("fresh")
    await store.record_lookup(hit_key=None, latency_ms=1.0)
    await store.upsert([(restored, unit(1)), (fresh, unit(0, 1))])
    got = await store.get(restored.key)
    assert got is not None and got.hit_count == 5
    await store.record_lookup(hit_key=restored.key, latency_ms=1.0)
    assert (await store.get(restored.key)).hit_count == 6  # type: ignore[union-attr]
    assert (await store.get(fresh.key)).hit_count == 0  # type: ignore[union-attr]
    # Storing the prompt again (an entry with no count) starts its count again.
    await store.upsert([(entry("restored"), unit(1))])
    assert (await store.get(restored.key)).hit_count == 0  # type: ignore[union-attr]


async def test_feedback_keys_live_under_our_bookkeeping_prefix(store: RedisStore) -> None:
    item = entry("reported")
    await store.upsert([(item, unit(1))])
    await store.record_feedback(item.key, "query-1", False)
    await store.record_feedback(item.key, "query-2", True)
    fb, refused = f"@semcache:{store.name}:fb", f"@semcache:{store.name}:refused:{item.key}"
    assert (store.keys.feedback, store.keys.refused(item.key)) == (fb, refused)
    assert await store.client.hgetall(fb) == {f"{item.key}:w".encode(): b"1", f"{item.key}:r".encode(): b"1"}
    assert await store.client.smembers(refused) == {b"query-1"}
    assert await store.client.hmget(store.keys.stats, ["feedback_wrong", "feedback_right"]) == [b"1", b"1"]
    assert await store.count() == 1  # never indexed as documents
    # A batch is one MULTI/EXEC: a second entry stored with the first one's reset drops its feedback too.
    await store.upsert([(entry("reported"), unit(1)), (entry("other"), unit(0, 1))])
    assert await store.client.exists(fb, refused) == 0
    await store.record_feedback(item.key, "query-1", False)
    await store.drop()
    assert [key async for key in store.client.scan_iter(match=f"@semcache:{store.name}:*")] == []


async def test_clear_removes_every_entry_past_the_offset_cap(capped_store: RedisStore) -> None:
    items = await fill(capped_store, 3 * CAP)
    await capped_store.record_lookup(hit_key=items[0].key, latency_ms=1.0)
    assert await capped_store.clear() == 3 * CAP
    assert await capped_store.count() == 0
    assert [batch async for batch in capped_store.iter_entries()] == []
