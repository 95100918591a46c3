"""The HTTP API in process (httpx over ASGI): shapes, validation, errors, limits, metrics, batching.

The store and the model are real: both store kinds where behaviour could differ, the embedded one elsewhere.
The same API over a real socket and a real process is in test_server_process.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.cache import CachePolicy, SemanticCache
from engine.config import Settings
from engine.embeddings.batching import BatchingEmbedder
from engine.server import create_app
from tests.conftest import SharedEmbedder


@asynccontextmanager
async def serving(app: Any, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            yield client


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings.load(data_dir=tmp_path / "data", **overrides)


@pytest.fixture
async def local_cache(tmp_path: Path, embedder: SharedEmbedder) -> AsyncIterator[SemanticCache]:
    from engine.stores.local import LocalStore

    cache = SemanticCache(LocalStore(tmp_path / "data", name="server"), embedder, CachePolicy())
    yield cache
    await cache.close()


@pytest.fixture
async def client(local_cache: SemanticCache, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings(tmp_path), local_cache)) as http:
        yield http


# -- over both stores ------------------------------------------------------------------------------------


async def test_check_shapes_order_and_clamping(cache: SemanticCache, tmp_path: Path) -> None:
    async with serving(create_app(settings(tmp_path), cache)) as http:
        items = [
            {"prompt": f"What is the weather like in city {name}?", "response": name} for name in "ABCDEFG"
        ]
        stored = await http.post("/cache/store/batch", json={"items": items})
        assert stored.status_code == 200 and stored.json()["stored"] == 7

        body = (
            await http.post("/cache/check", json={"prompt": "What is the weather like in city A?"})
        ).json()
        assert body["is_hit"] and body["exact"] and body["matches"][0]["vector_distance"] == 0.0

        wide = await http.post(
            "/cache/check", json={"prompt": "What's the weather in city Q?", "threshold": 2.0}
        )
        # Verification serves few of these (another city is another question): the candidates it refused
        # are in ``rejected``, in the same shape with their reason.
        matches = wide.json()["matches"] + wide.json()["rejected"]
        assert 1 <= len(matches) <= 5
        matches.sort(key=lambda m: m["vector_distance"])
        distances = [m["vector_distance"] for m in matches]
        assert distances == sorted(distances) and all(0.0 <= d <= 2.0 for d in distances)
        for m in matches:
            assert m["cosine_similarity"] == pytest.approx(1.0 - m["vector_distance"])

        near = (await http.post("/cache/search", json={"prompt": "Tell me a joke", "k": 7})).json()
        assert len(near["matches"]) == 7  # whatever the distance

        index = (await http.get("/cache/index")).json()
        assert index["documents"] == 7 and index["identity"]["dimension"] == 384

        cleared = (await http.delete("/cache/clear")).json()
        assert cleared["deleted_count"] == 7
        await http.post("/cache/store", json={"prompt": "What is HNSW?", "response": "A graph index."})
        again = await http.post("/cache/check", json={"prompt": "Can you explain HNSW?", "threshold": 0.5})
        assert again.json()["is_hit"]


async def test_scope_and_ttl(cache: SemanticCache, tmp_path: Path) -> None:
    async with serving(create_app(settings(tmp_path), cache)) as http:
        body = {
            "prompt": "What is our refund policy?",
            "response": "30 days.",
            "scope": "tenant-a",
            "ttl": 60,
        }
        key = (await http.post("/cache/store", json=body)).json()["key"]
        entry = (await http.get(f"/cache/entries/{key}")).json()
        assert entry["scope"] == "tenant-a"
        assert entry["expires_at"] == pytest.approx(entry["created_at"] + 60)
        check = {"prompt": "What is our refund policy?"}
        assert (await http.post("/cache/check", json={**check, "scope": "tenant-a"})).json()["is_hit"]
        assert not (await http.post("/cache/check", json={**check, "scope": "tenant-b"})).json()["is_hit"]
        assert not (await http.post("/cache/check", json=check)).json()["is_hit"]


# -- the embedded store ----------------------------------------------------------------------------------


async def test_entries_paging_get_and_delete(client: httpx.AsyncClient) -> None:
    items = [{"prompt": f"Fact number {i}?", "response": f"Fact {i}."} for i in range(12)]
    keys = (await client.post("/cache/store/batch", json={"items": items})).json()["keys"]
    page = (await client.get("/cache/entries", params={"offset": 0, "limit": 5})).json()
    assert page["total"] == 12 and len(page["entries"]) == 5 and page["limit"] == 5
    rest = (await client.get("/cache/entries", params={"offset": 10, "limit": 5})).json()
    assert len(rest["entries"]) == 2

    deleted = await client.delete(f"/cache/entries/{keys[0]}")
    assert deleted.json() == {"success": True, "key": keys[0], "message": deleted.json()["message"]}
    gone = await client.delete(f"/cache/entries/{keys[0]}")
    assert gone.status_code == 404 and gone.json()["error"] == "not_found"
    assert (await client.get(f"/cache/entries/{keys[0]}")).status_code == 404
    assert (await client.get("/cache/stats")).json()["total_entries"] == 11


async def test_batch_is_all_or_nothing(client: httpx.AsyncClient) -> None:
    items = [{"prompt": "Good question?", "response": "Good answer."}, {"prompt": "", "response": "No."}]
    refused = await client.post("/cache/store/batch", json={"items": items})
    assert refused.status_code == 422 and refused.json()["error"] == "invalid_input"
    assert (await client.get("/cache/stats")).json()["total_entries"] == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"prompt": ""}, "empty"),
        ({"prompt": "hello", "threshold": 2.5}, "threshold"),
        ({"prompt": "hello", "threshold": -0.1}, "threshold"),
        ({"prompt": "hello", "k": 0}, "k=0"),
        ({"prompt": "hello", "scope": "no spaces allowed"}, "scope"),
        ({"prompt": 42}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "hello", "threshold": "strict"}, "threshold"),
    ],
)
async def test_bad_input_is_422_json(client: httpx.AsyncClient, body: dict[str, Any], needle: str) -> None:
    response = await client.post("/cache/check", json=body)
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "invalid_input" and needle in error["message"]


async def test_an_empty_scope_is_refused_by_every_route(client: httpx.AsyncClient) -> None:
    pair = {"prompt": "What is HNSW?", "response": "A graph index.", "scope": ""}
    answers = [
        await client.post("/cache/store", json=pair),
        await client.post("/cache/store/batch", json={"items": [pair]}),
        await client.post("/cache/check", json={"prompt": "What is HNSW?", "scope": ""}),
        await client.post("/cache/search", json={"prompt": "What is HNSW?", "scope": ""}),
    ]
    assert {(a.status_code, a.json()["error"], a.json()["message"]) for a in answers} == {
        (422, "invalid_input", "scope '' is not allowed")
    }
    assert (await client.get("/cache/stats")).json()["total_entries"] == 0


async def test_not_json_and_unknown_route(client: httpx.AsyncClient) -> None:
    garbage = await client.post(
        "/cache/check", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 422 and garbage.json()["error"] == "invalid_input"
    unknown = await client.get("/cache/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"


async def test_health_never_embeds_and_readiness(local_cache: SemanticCache, tmp_path: Path) -> None:
    app = create_app(settings(tmp_path), local_cache)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        # Before start-up has run (no lifespan yet): alive, not ready.
        assert (await http.get("/health/live")).status_code == 200
        not_ready = await http.get("/health/ready")
        assert not_ready.status_code == 503 and not_ready.json()["status"] == "starting"
    async with serving(app) as http:
        await local_cache.start()
        assert (await http.get("/health/ready")).status_code == 200
        embedder = local_cache.embedder
        assert isinstance(embedder, BatchingEmbedder)
        before = embedder.calls
        for _ in range(3):
            health = await http.get("/health")
            assert health.status_code == 200
        assert embedder.calls == before
        body = health.json()
        assert body["status"] == "healthy" and body["ready"] is True
        assert {c["name"] for c in body["components"]} == {"store", "embedder"}


async def test_concurrent_checks_share_embedding_calls(
    client: httpx.AsyncClient, local_cache: SemanticCache
) -> None:
    await client.post(
        "/cache/store", json={"prompt": "What is the boiling point of water?", "response": "100 C."}
    )
    embedder = local_cache.embedder
    assert isinstance(embedder, BatchingEmbedder)
    before_calls, before_requests = embedder.calls, embedder.requests
    prompts = [f"Unique question {i} about the sea?" for i in range(24)]
    responses = await asyncio.gather(*(client.post("/cache/check", json={"prompt": p}) for p in prompts))
    assert all(r.status_code == 200 for r in responses)
    assert embedder.requests - before_requests == 24
    assert embedder.calls - before_calls < 24


async def test_metrics_text_has_requests_hits_and_stage_histograms(client: httpx.AsyncClient) -> None:
    await client.post("/cache/store", json={"prompt": "What is Redis?", "response": "A data store."})
    await client.post("/cache/check", json={"prompt": "What is Redis?"})
    await client.post("/cache/check", json={"prompt": "How do volcanoes form?"})
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'semcache_http_requests_total{method="POST",route="/cache/check",status="200"} 2.0' in text
    assert "semcache_cache_hits_total 1.0" in text and "semcache_cache_misses_total 1.0" in text
    assert (
        "semcache_embed_duration_seconds_bucket" in text and "semcache_search_duration_seconds_bucket" in text
    )
    assert "semcache_search_duration_seconds_count 1.0" in text


async def test_api_key_header_forms_and_no_key_in_logs(
    local_cache: SemanticCache, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = "s3cret-key-for-tests-0123456789"
    app = create_app(settings(tmp_path, api_key=key), local_cache)
    caplog.set_level(logging.INFO, logger="semcache")
    async with serving(app) as http:
        assert (await http.get("/cache/stats")).status_code == 401
        wrong = await http.get("/cache/stats", headers={"Authorization": f"Bearer {key}x"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert (await http.get("/cache/stats", headers={"Authorization": "Basic abc"})).status_code == 401
        assert (await http.get("/cache/stats", headers={"Authorization": f"Bearer {key}"})).status_code == 200
        assert (await http.get("/cache/stats", headers={"X-API-Key": key})).status_code == 200
        assert (await http.get("/metrics", headers={"X-API-Key": key})).status_code == 200
        assert (await http.get("/health")).status_code == 200
    assert "GET /cache/stats 401" in caplog.text  # one line per request...
    assert key not in caplog.text  # ...and never the key


async def test_rate_limit_per_client(local_cache: SemanticCache, tmp_path: Path) -> None:
    app = create_app(settings(tmp_path, rate_limit=1, rate_limit_burst=2), local_cache)
    async with serving(app) as http:
        statuses = [(await http.get("/cache/stats")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = await http.get("/cache/stats")
        assert limited.json()["error"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        assert (await http.get("/health")).status_code == 200  # health is never limited


async def test_body_limit_and_cors(local_cache: SemanticCache, tmp_path: Path) -> None:
    app = create_app(
        settings(tmp_path, max_body_bytes=2048, cors_origins="https://panel.example"), local_cache
    )
    async with serving(app) as http:
        big = await http.post("/cache/store", json={"prompt": "p", "response": "r" * 4096})
        assert big.status_code == 413 and big.json()["error"] == "request_too_large"

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"prompt": "p", "response": "'
            for _ in range(8):
                yield b"r" * 512
            yield b'"}'

        chunked = await http.post(
            "/cache/store", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413

        preflight = await http.options(
            "/cache/check",
            headers={"Origin": "https://panel.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://panel.example"
    async with serving(create_app(settings(tmp_path), local_cache)) as http:
        plain = await http.get("/cache/stats", headers={"Origin": "https://panel.example"})
        assert "access-control-allow-origin" not in plain.headers


async def test_openapi_lists_every_route(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/cache/check",
        "/cache/store",
        "/cache/store/batch",
        "/cache/stats",
        "/cache/clear",
        "/cache/search",
        "/cache/entries",
        "/cache/entries/{key}",
        "/cache/index",
        "/metrics",
        "/health",
        "/health/live",
        "/health/ready",
    ):
        assert path in paths, path
    assert (await client.get("/docs")).status_code == 200
