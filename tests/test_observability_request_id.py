"""Request ids: an incoming ``X-Request-ID`` is honoured (a sane one), else one is made; it comes back in
the response, the access log and every error body. In process (httpx over ASGI) on the embedded store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.cache import CachePolicy, SemanticCache
from engine.server import create_app
from tests.conftest import SharedEmbedder
from tests.test_server import serving, settings


@pytest.fixture
async def local_cache(tmp_path: Path, embedder: SharedEmbedder) -> AsyncIterator[SemanticCache]:
    from engine.stores.local import LocalStore

    cache = SemanticCache(LocalStore(tmp_path / "data", name="ids"), embedder, CachePolicy())
    yield cache
    await cache.close()


async def test_an_incoming_id_is_returned_logged_and_put_in_error_bodies(
    local_cache: SemanticCache, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="semcache")
    async with serving(create_app(settings(tmp_path), local_cache)) as http:
        ok = await http.get("/cache/stats", headers={"X-Request-ID": "lb-7f3a.42"})
        assert ok.status_code == 200 and ok.headers["x-request-id"] == "lb-7f3a.42"
        invalid = await http.post("/cache/check", json={"prompt": ""}, headers={"X-Request-ID": "req-422"})
        assert invalid.status_code == 422
        assert invalid.headers["x-request-id"] == "req-422" and invalid.json()["request_id"] == "req-422"
        missing = await http.get("/no/such/route", headers={"X-Request-ID": "req-404"})
        assert missing.status_code == 404 and missing.json()["request_id"] == "req-404"
        entry = await http.get("/cache/entries/" + "0" * 64, headers={"X-Request-ID": "req-entry"})
        assert entry.status_code == 404 and entry.json()["request_id"] == "req-entry"
    lines = [r.getMessage() for r in caplog.records if r.name == "semcache.access"]
    assert any("GET /cache/stats 200" in line and "id=lb-7f3a.42" in line for line in lines), lines
    assert any("POST /cache/check 422" in line and "id=req-422" in line for line in lines), lines
    records = [r for r in caplog.records if r.name == "semcache.access"]
    assert {getattr(r, "request_id", None) for r in records} >= {"lb-7f3a.42", "req-422", "req-404"}


async def test_a_missing_or_unsafe_id_is_replaced_by_a_fresh_one(
    local_cache: SemanticCache, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="semcache")
    limits = settings(tmp_path, rate_limit=1, rate_limit_burst=1)
    async with serving(create_app(limits, local_cache)) as http:
        first = await http.get("/cache/stats")
        second = await http.get("/cache/stats", headers={"X-Request-ID": "evil\tid id=forged " + "x" * 200})
        assert first.status_code == 200
        ids = {first.headers["x-request-id"], second.headers["x-request-id"]}
        assert len(ids) == 2 and all(len(i) == 32 for i in ids)
        # A refusal made by a middleware (the rate limit) carries the id too.
        assert second.status_code == 429 and second.json()["request_id"] == second.headers["x-request-id"]
    assert "forged" not in caplog.text
