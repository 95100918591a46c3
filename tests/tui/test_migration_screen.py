"""Migration screen: a 384 -> 256 reembed driven end to end through the screen, verify, rollback, and
refusal in read-only mode; against the real embedded store and the bundled model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, ProgressBar

from engine.cache import CachePolicy, SemanticCache
from engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from engine.samples import SAMPLE_PAIRS
from engine.stores.local import LocalStore
from semcache_tui.screens.dialogs import ConfirmDialog, TypedConfirmDialog
from semcache_tui.screens.migration import MigrationScreen
from tests.tui.conftest import SIZE, fill, settle, text_of, wait_for


class Kept256(SentenceTransformerEmbedder):
    async def close(self) -> None:
        return None


_TARGET: Kept256 | None = None


def target_embedder() -> Kept256:
    global _TARGET
    if _TARGET is None:
        _TARGET = Kept256(output_dimension=256)
        _TARGET.load_sync()
    return _TARGET


@pytest.fixture
async def small_cache(tmp_path: Path, embedder: Any, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(MigrationScreen, "embedder_factory", lambda target: target_embedder())
    cache = SemanticCache(LocalStore(tmp_path / "data", name="panel"), embedder, CachePolicy())
    await fill(cache, SAMPLE_PAIRS[:8])
    yield cache
    await cache.close()


async def idle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_reembed_384_to_256_then_verify_and_rollback(small_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(small_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        screen = app.screen
        assert isinstance(screen, MigrationScreen)
        await wait_for(pilot, lambda: screen.active is not None)
        assert screen.active == "panel" and screen.state is None
        assert screen.query_one("#to-dimension", Input).value == "384"  # prefilled with the embedder
        screen.query_one("#to-dimension", Input).value = "256"
        await pilot.press("p")
        await wait_for(pilot, lambda: screen.plan is not None)
        assert screen.plan.changes == ["dimension: 384 -> 256"] and screen.plan.entries == 8
        assert "dimension: 384 -> 256" in text_of(app, "#migration-plan")

        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, TypedConfirmDialog))
        await pilot.press(*"panel", "enter")
        await wait_for(pilot, lambda: screen.state is not None and screen.state.phase == "switched", 1500)
        await idle(pilot)
        bar = screen.query_one("#migration-progress", ProgressBar)
        assert bar.total == 8 and bar.progress == 8
        assert screen.last_progress is not None and screen.last_progress.total == 8
        assert screen.active == "panel__v2"
        assert "8/8" in text_of(app, "#migration-progress-text")
        # The panel itself moves to the new index, with the 256-dimension embedder it records: no restart.
        await wait_for(pilot, lambda: app.service.vector_store.name == "panel__v2")
        assert app.identity is not None and app.identity.dimension == 256
        assert (await app.service.check(SAMPLE_PAIRS[0][0])).is_hit

        counted = await app.service.stats()
        await pilot.press("v")
        await wait_for(pilot, lambda: screen.verified is not None)
        assert screen.verified == (8, 8, 8, 8)
        assert "8/8 sample lookups hit" in text_of(app, "#migration-verify")
        after = await app.service.stats()
        assert (after.hits, after.misses) == (counted.hits, counted.misses)  # verify is not traffic

        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.state is not None and screen.state.phase == "rolled_back")
        await idle(pilot)
        assert screen.active == "panel"
        assert "Rolled back" in app.status_message
        assert not screen.query_one("#migration-progress-row").display  # not "100% switched · done"
        assert screen.leftover and "d drops it" in " ".join(text_of(app, "#migration-status").split())
        await pilot.press("f")
        assert "is rolled back" in app.status_message
        app.poll_now()
        await wait_for(pilot, lambda: app.service.vector_store.name == "panel")
        assert app.identity is not None and app.identity.dimension == 384
        # Back on the first index, the panel borrows the first model (no second load) and releases the
        # caches and models it followed with (issue 14, item 13: they were kept until exit).
        assert app.service.embedder is small_cache.embedder
        app.poll_now()
        await wait_for(pilot, lambda: not app._retired)
        assert app._owned_embedder is None and not screen._embedders


async def test_read_only_refuses_every_migration_action(small_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(small_cache, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        screen = app.screen
        await wait_for(pilot, lambda: screen.active is not None)
        for action in ("run", "resume", "finalize", "rollback"):
            assert screen.check_action(action, ()) is None  # shown disabled
        await pilot.press("r", "b", "f")
        assert app.screen is screen  # no dialog opened
        await app.run_screen_action("migration", "run")
        assert "Refused" in app.status_message
        assert screen.state is None
