"""The panel on a cache over the session's Redis Stack (a unique index per test), with the bundled model."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.cache import CachePolicy, SemanticCache
from engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from engine.stores.redis import RedisStore
from semcache_tui.screens.health import HealthScreen
from semcache_tui.screens.index import MIGRATE_COMMAND
from tests.conftest import unique_index_name
from tests.tui.conftest import SIZE, fill, settle, text_of, wait_for

PAIRS = [
    ("What is the capital of France?", "Paris."),
    ("How many legs does a spider have?", "Eight."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci."),
]


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def index_name() -> str:
    return unique_index_name()


@pytest.fixture
async def redis_cache(redis_url: str, index_name: str, embedder: Any) -> AsyncIterator[SemanticCache]:
    cache = SemanticCache(RedisStore(redis_url, name=index_name), embedder, CachePolicy())
    await fill(cache, PAIRS)
    yield cache
    with contextlib.suppress(Exception):
        await cache.clear()
    await cache.close()


async def test_health_shows_redis_facts(redis_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(redis_cache)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.started and isinstance(app.screen, HealthScreen)
        store = flat(text_of(app, "#store-panel"))
        assert "OK" in store and "Redis" in store
        for expected in ("memory", "persistence none", "encrypted no", "max memory no limit"):
            assert expected in store, store
        report = app.history.latest.report  # type: ignore[union-attr]
        facts = report.component("store").facts
        assert facts["redis_version"] and str(facts["redis_version"]) in store
        assert facts["search_version"] and str(facts["search_version"]) in store
        assert isinstance(facts["used_memory"], int) and facts["used_memory"] > 0
        assert "entries" in text_of(app, "#cache-panel") and str(len(PAIRS)) in text_of(app, "#cache-panel")
        # Every card in sight at 100x30, without scrolling (issue 14).
        body = app.screen.query_one("#health-body")
        assert body.max_scroll_y == 0  # nothing below the fold, not even a blank line
        for card in ("#cache-panel", "#store-panel", "#embedder-panel", "#host-panel"):
            region = app.screen.query_one(card).region
            assert region.height > 0 and region.bottom <= body.region.bottom, card


async def test_index_shows_hnsw_and_the_recorded_identity(
    redis_cache: SemanticCache, index_name: str, make_app: Any
) -> None:
    app = make_app(redis_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_mode == "index")
        await pilot.pause()
        assert app.index_info is not None and app.index_info.store == "redis"
        assert app.index_info.identity is not None and app.index_info.identity.dimension == 384
        body = text_of(app, "#index-body")
        for expected in (index_name, "redis", "HNSW", "COSINE", "ef construction", "ef runtime", "M"):
            assert expected in body, expected
        assert "all-MiniLM-L6-v2" in body and "384" in body and "same" in body
        assert "DIFFERENT" not in body
        assert not app.screen.query_one("#mismatch-banner").display


async def test_query_lab_finds_a_stored_entry(redis_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(redis_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        prompt = "how many legs do spiders have"
        await pilot.press("3", "slash", *prompt, "enter")
        await wait_for(pilot, lambda: app.screen.prompt == prompt and app.screen.matches)
        top = app.screen.matches[0]
        assert top.entry.prompt == "How many legs does a spider have?" and top.entry.response == "Eight."
        assert len(app.screen.matches) == len(PAIRS)


async def test_identity_mismatch_banner_names_the_migrate_command(
    redis_url: str, index_name: str, embedder: Any, make_app: Any
) -> None:
    bound = SemanticCache(RedisStore(redis_url, name=index_name), embedder, CachePolicy())
    await fill(bound, PAIRS[:1])  # the index now records the 384-dimension model
    await bound.close()
    small = SentenceTransformerEmbedder(output_dimension=256)
    cache = SemanticCache(RedisStore(redis_url, name=index_name), small, CachePolicy())
    app = make_app(cache)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.start_error is not None and not app.started and app.is_running
            await pilot.press("2")
            await wait_for(pilot, lambda: app.current_mode == "index")
            await pilot.pause()
            banner = app.screen.query_one("#mismatch-banner")
            assert banner.display
            text = flat(text_of(app, "#mismatch-banner"))
            assert MIGRATE_COMMAND in text and "384" in text and "256" in text, text
            assert "DIFFERENT" in text_of(app, "#index-body")
    finally:
        await cache.close()
        cleanup = SemanticCache(RedisStore(redis_url, name=index_name), embedder, CachePolicy())
        with contextlib.suppress(Exception):
            await cleanup.start()
            await cleanup.clear()
        await cleanup.close()
