"""The Health screen and what the whole panel does around it: polls, pause, interval, errors, keys."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.widgets import Sparkline

from engine.cache import CachePolicy, SemanticCache
from engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from engine.models import EmbedderIdentity
from engine.stores.local import LocalStore
from semcache_tui.screens.dialogs import InputDialog, KeysDialog
from semcache_tui.screens.health import HealthScreen
from semcache_tui.widgets.health import ComponentPanel, StatusBadge
from tests.tui.conftest import SIZE, settle, text_of, wait_for


def badge(app: Any, panel: str) -> str:
    widget = app.screen.query_one(f"#{panel}", ComponentPanel).query_one(StatusBadge)
    return next(
        name for name in ("ok", "degraded", "down", "loading", "unknown") if widget.has_class(f"-{name}")
    )


def facts(app: Any, panel: str) -> str:
    return text_of(app, f"#{panel}")


async def test_health_shows_store_embedder_cache_and_host(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, HealthScreen)
        assert badge(app, "store-panel") == "ok"
        assert badge(app, "embedder-panel") == "ok"
        store = facts(app, "store-panel")
        assert "panel.sqlite3" in store and "entries" in store and "size on disk" in store
        embedder = facts(app, "embedder-panel")
        assert "all-MiniLM-L6-v2" in embedder and "384" in embedder
        cache = facts(app, "cache-panel")
        assert "entries" in cache and "12" in cache
        host = facts(app, "host-panel")
        assert "12.5%" in host  # the frozen host sampler
        assert len(app.screen.query(Sparkline)) == 3


async def test_lookups_move_the_hit_rate_and_rate(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await filled_cache.check("What is the capital of France?")
        await filled_cache.check("What is the best pizza topping?")
        await pilot.press("r")
        await wait_for(pilot, lambda: len(app.history) >= 2 and not app._polling)
        latest = app.history.latest
        assert latest is not None and latest.stats is not None
        assert latest.stats.hits >= 1 and latest.stats.misses >= 1
        assert latest.hit_rate is not None and 0 < latest.hit_rate < 1
        assert "%" in text_of(app, "#spark-hit-rate .metric-value")


async def test_pause_resume_and_interval(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache, refresh_interval=2.0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        assert app.paused and app._poll_timer is None
        assert "paused" in text_of(app, "#poll-line")
        polls = len(app.history)
        await pilot.pause(0.3)
        assert len(app.history) == polls
        await pilot.press("p")
        assert not app.paused
        await pilot.press("plus")
        assert app.refresh_interval == 5.0
        await pilot.press("minus", "minus")
        assert app.refresh_interval == 1.0
        await pilot.press("i")
        assert isinstance(app.screen, InputDialog)
        await pilot.press("ctrl+a", *"abc", "enter")
        assert isinstance(app.screen, InputDialog)  # refused, says why
        app.screen.query_one("#answer").value = "0.5"
        await pilot.press("enter")
        assert isinstance(app.screen, HealthScreen)
        assert app.refresh_interval == 0.5


async def test_polls_never_pile_up(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache, refresh_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _ in range(20):
            app.poll_now()
        running = [w for w in app.workers if w.group == "poll" and w.is_running]
        assert len(running) <= 1
        await pilot.pause(1.0)
        assert len([w for w in app.workers if w.group == "poll" and w.is_running]) <= 1


async def test_no_redraw_while_a_dialog_is_open(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, KeysDialog)
        health = app.screen_stack[0]
        calls: list[int] = []
        original = health.refresh_data
        health.refresh_data = lambda: calls.append(1)  # type: ignore[method-assign]
        app.poll_now()
        await wait_for(pilot, lambda: not app._polling)
        assert calls == []
        health.refresh_data = original  # type: ignore[method-assign]
        await pilot.press("escape")
        assert isinstance(app.screen, HealthScreen)


class GatedEmbedder(SentenceTransformerEmbedder):
    """The real model, whose loading waits for the test to open a gate: a slow first load on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def load(self) -> EmbedderIdentity:
        await self.gate.wait()
        return await super().load()


async def test_panel_is_up_while_the_model_loads(tmp_path: Path, make_app: Any) -> None:
    """The first frame and the store's facts come before the model has loaded, and say it is loading."""
    embedder = GatedEmbedder()
    cache = SemanticCache(LocalStore(tmp_path / "data", name="panel"), embedder, CachePolicy())
    app = make_app(cache)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.history) >= 1 and not app._polling)
        assert not app.started
        assert "model loading" in text_of(app, "NavBar")
        assert badge(app, "store-panel") == "ok"
        assert badge(app, "embedder-panel") == "loading"
        embedder.gate.set()
        await wait_for(pilot, lambda: app.started, tries=1500)
        await settle(pilot)
        await wait_for(pilot, lambda: badge(app, "embedder-panel") == "ok")
        assert "model loading" not in text_of(app, "NavBar")
    await cache.close()


async def test_worker_errors_are_shown_in_place(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        app.screen.query_one("#scope").value = "not a scope!"
        app.screen.query_one("#prompt").value = "What is Redis?"
        app.screen.query_one("#prompt").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.status_severity == "error")
        assert "scope 'not a scope!' is not allowed" in app.status_message
        assert "not allowed" in text_of(app, "#status")
        assert app.is_running


async def test_keys_dialog_lists_the_screen_keys(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, KeysDialog)
        descriptions = [row[1] for row in app.screen.rows]
        assert "Pause or resume the automatic refresh" in descriptions
        assert "Go to Query lab" in descriptions
        await pilot.press("escape")
        await pilot.press("f1")
        assert isinstance(app.screen, KeysDialog)


async def test_command_palette_lists_every_action(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [entry[0] for entry in app.palette_entries()]
        for expected in (
            "Health: Pause/resume",
            "Entries: Clear all",
            "Query lab: Store",
            "Sweep: Run sweep",
        ):
            assert expected in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"Go to Index")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "index")


async def test_redacts_passwords(make_app: Any, filled_cache: SemanticCache) -> None:
    app = make_app(filled_cache)
    app.settings.redis_password = "hunter2secret"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.set_status("cannot reach redis://admin:hunter2secret@db:6379/0")
        assert "hunter2secret" not in app.status_message
        assert "hunter2secret" not in text_of(app, "#status")


async def test_health_shows_feedback_the_verifier_and_an_interrupted_import(
    filled_cache: SemanticCache, make_app: Any
) -> None:
    from engine.stores.base import IMPORT_NOTE

    served = (await filled_cache.check("Can you explain machine learning?")).best
    assert served is not None
    await filled_cache.feedback("Can you explain machine learning?", served.entry.key, False)
    await filled_cache.vector_store.set_note(
        IMPORT_NOTE,
        {"file": "backup.jsonl.gz", "started_at": 0.0, "written": 3, "total": 10, "replace": False},
    )
    app = make_app(filled_cache)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        cache = " ".join(text_of(app, "#cache-panel").split())
        assert "feedback 1 wrong, 0 right" in cache
        target, cut = app.verifier_point()
        assert f"verifier on, target {target:.2f}, cut {cut:.2f}" in cache
        store = " ".join(text_of(app, "#store-panel").replace("│", " ").split())
        assert "DEGRADED" in store and "WARNING: an import was interrupted" in store
        assert "import INCOMPLETE: backup.jsonl.gz, 3 of 10 written" in store
        await filled_cache.vector_store.set_note(IMPORT_NOTE, None)
        app.poll_now()
        await wait_for(pilot, lambda: "interrupted" not in text_of(app, "#store-panel"))
