"""RemoteCache: the CacheService of a running server, against the real app (ASGI) and a closed port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from engine.cache import CachePolicy, SemanticCache, StoreRequest
from engine.client import RemoteCache
from engine.config import Settings
from engine.errors import AuthenticationError, BackendUnavailableError, InvalidInputError
from engine.server import create_app
from engine.service import CacheService
from tests.conftest import SharedEmbedder

KEY = "client-test-key-0123456789"


@pytest.fixture
async def served(tmp_path: Path, embedder: SharedEmbedder) -> AsyncIterator[tuple[SemanticCache, object]]:
    from engine.stores.local import LocalStore

    cache = SemanticCache(LocalStore(tmp_path / "data", name="client"), embedder, CachePolicy(threshold=0.2))
    app = create_app(Settings.load(data_dir=tmp_path / "data", api_key=KEY), cache)
    async with app.router.lifespan_context(app):
        yield cache, app
    await cache.close()


def remote(app: object, api_key: str | None = KEY) -> RemoteCache:
    return RemoteCache("http://semcache.test", api_key=api_key, transport=httpx.ASGITransport(app=app))  # type: ignore[arg-type]


async def test_remote_cache_is_a_cache_service(served: tuple[SemanticCache, object]) -> None:
    cache, app = served
    client = remote(app)
    assert isinstance(client, CacheService)
    identity = await client.start()
    assert identity == cache.embedder.identity
    assert client.policy.threshold == 0.2 and client.policy.verify_candidates is True

    entry = await client.store(
        "Convert 5 km to miles", "3.1 miles.", scope="units", metadata={"src": "t"}, ttl=0
    )
    assert entry.scope == "units" and entry.metadata == {"src": "t"} and entry.expires_at is None
    assert (await client.get(entry.key)) == entry

    exact = await client.check("convert 5 km to miles", scope="units")
    assert (
        exact.is_hit and exact.exact and exact.best is not None and exact.best.entry.response == "3.1 miles."
    )

    # Verification turns down a near neighbour with another number; the client says the same as the server.
    other = await client.check("Convert 50 km to miles", scope="units", threshold=0.5)
    assert not other.is_hit and other.rejected and other.rejected[0][1] == "numbers differ: 50 vs 5"
    assert [(c.served, c.reason) for c in other.candidates] == [(False, "numbers differ: 50 vs 5")]
    nearest = await client.nearest("Convert 50 km to miles", scope="units", k=3)
    assert len(nearest) == 1
    for threshold in (0.0, 0.5, 2.0):
        assert client.judge("Convert 50 km to miles", nearest[0], threshold) == cache.judge(
            "Convert 50 km to miles", nearest[0], threshold
        )
        over_http = await client.verdicts(
            "Convert 50 km to miles", nearest, scope="units", threshold=threshold
        )
        local = await cache.verdicts(
            "Convert 50 km to miles",
            await cache.nearest("Convert 50 km to miles", scope="units", k=3),
            scope="units",
            threshold=threshold,
        )
        assert [(c.passed, c.served, c.reason) for c in over_http] == [
            (c.passed, c.served, c.reason) for c in local
        ]

    # Feedback through the client: the server counts it.
    reported = await client.feedback("convert five km to miles", entry.key, False, scope="units")
    assert (reported.wrong, reported.right, reported.evicted) == (1, 0, False)
    assert (await client.stats()).feedback_wrong == 1

    page = await client.list_entries(scope="units")
    assert page.total == 1 and page.entries[0].key == entry.key
    stats = await client.stats()
    assert stats.entries == 1 and stats.hits == 1 and stats.misses == 1
    info = await client.index_info()
    assert info.documents == 1 and info.identity == identity
    health = await client.health()
    assert health.status == "healthy" and health.component("store") is not None

    assert await client.delete(entry.key) is True
    assert await client.delete(entry.key) is False
    assert await client.get(entry.key) is None
    await client.store("a", "b")
    assert await client.clear() == 1

    # A batch goes through /cache/store/batch: all or nothing, under the keys the server derives.
    stored = await client.store_many(
        [
            StoreRequest("What is HNSW?", "A graph index.", "units"),
            StoreRequest("What is RDB?", "A snapshot."),
        ]
    )
    assert {e.key for e in stored} == {e.key for e in (await client.list_entries()).entries}
    assert (await client.get(stored[0].key)) is not None and stored[0].scope == "units"
    with pytest.raises(InvalidInputError, match="empty"):
        await client.store_many([StoreRequest("fine?", "fine"), StoreRequest("", "x")])
    assert (await client.stats()).entries == 2
    await client.close()


async def test_remote_errors_come_back_as_engine_errors(served: tuple[SemanticCache, object]) -> None:
    _, app = served
    for key in (None, "wrong-key"):
        client = remote(app, api_key=key)
        with pytest.raises(AuthenticationError, match="API key missing or wrong"):
            await client.stats()
        await client.close()
    client = remote(app)
    with pytest.raises(InvalidInputError, match="threshold"):
        await client.check("hello", threshold=3.0)
    with pytest.raises(InvalidInputError, match="empty"):
        await client.store("", "x")
    await client.close()


async def test_unreachable_server_is_backend_unavailable_naming_the_url() -> None:
    from tests.support.server_process import free_port

    url = f"http://127.0.0.1:{free_port()}"
    client = RemoteCache(url, api_key="whatever", timeout=5.0)
    with pytest.raises(BackendUnavailableError, match=f"cannot reach the semcache server at {url}"):
        await client.check("hello")
    health = await client.health()
    assert health.status == "unhealthy" and health.components[0].name == "server"
    await client.close()
