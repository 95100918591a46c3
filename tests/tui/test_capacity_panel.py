"""The panel shows an index's budget (issue 16): entries against the capacity, the eviction policy, evictions
per minute and memory per entry, on the Index screen and the Health cache card, at 80 columns too."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.cache import CachePolicy, SemanticCache, StoreRequest
from engine.stores.base import Capacity
from engine.stores.local import LocalStore
from semcache_tui.monitor import Probe
from tests.tui.conftest import fill, screen_text, settle, text_of, wait_for


@pytest.fixture
async def capped_cache(tmp_path: Path, embedder: Any) -> AsyncIterator[SemanticCache]:
    """The sample questions (12) stored in an index held to 3 entries: 9 evicted."""
    store = LocalStore(tmp_path / "data", name="panel", capacity=Capacity(max_entries=3, policy="lru"))
    cache = SemanticCache(store, embedder, CachePolicy())
    await fill(cache)
    yield cache
    await cache.close()


def flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_index_and_health_show_capacity_policy_evictions_and_memory(
    capped_cache: SemanticCache, make_app: Any, size: tuple[int, int]
) -> None:
    app = make_app(capped_cache)  # a FrozenProbe: 1 MiB of index memory, a fixed rate
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        cache_card = flat(text_of(app, "#cache-panel"))
        assert "entries 3 / 3, lru" in cache_card
        assert "evictions 9 (1.5/min)" in cache_card
        assert "mem/entry 341.3 KiB" in cache_card  # 1 MiB over 3 entries
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_mode == "index")
        await pilot.pause()
        lines = [flat(line) for line in screen_text(app).split("\n")]
        # Each on one line of the screen, whatever its width: nothing folded.
        for row in (
            "capacity 3 / 3 entries",
            "eviction policy lru (least recently hit first)",
            "evictions 9 (1.5/min)",
            "memory per entry 341.3 KiB",
        ):
            assert row in lines, (row, lines)


async def test_the_rate_is_measured_between_polls(capped_cache: SemanticCache, make_app: Any) -> None:
    """With the live clock: no rate from one poll, 0/min while nothing is evicted, more once writes evict."""
    app = make_app(capped_cache, probe=Probe())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_mode == "index")

        def rate_line() -> str:
            return next((flat(line) for line in screen_text(app).split("\n") if "evictions" in line), "")

        def polled_until(pattern: str) -> bool:
            if re.fullmatch(pattern, rate_line()):
                return True
            app.poll_now()
            return False

        await wait_for(pilot, lambda: polled_until(r"evictions 9 \(0\.0/min\)"))
        await capped_cache.store_many([StoreRequest(f"one more question {n}", "x") for n in range(2)])
        await wait_for(pilot, lambda: polled_until(r"evictions 11 \([\d.]+/min\)"))
        assert rate_line() != "evictions 11 (0.0/min)"
        assert app.index_info is not None and (app.index_info.evictions_per_minute or 0) > 0
