"""Issue 14, "the control panel tells the truth": each defect seen, driven through the real panel on the
real embedded store (or Redis) with the bundled model. Each test failed before its fix."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from engine.cache import CachePolicy, SemanticCache, StoreRequest
from engine.stores.local import LocalStore
from engine.stores.redis import RedisStore
from engine.stores.redis.health import persistence
from semcache_tui.screens.backup import BackupScreen
from semcache_tui.screens.dialogs import ConfirmDialog, InputDialog, TypedConfirmDialog
from semcache_tui.screens.entries import EntriesScreen
from tests.conftest import unique_index_name
from tests.support.redis_server import RedisServer
from tests.tui.conftest import SIZE, settle, text_of, wait_for


def flat(text: str) -> str:
    return " ".join(text.split())


async def idle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def answer(pilot: Any, value: str) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, InputDialog))
    app.screen.query_one("#answer", Input).value = value
    await pilot.press("enter")
    await pilot.pause()


# -- 1. key names survive in the status line --------------------------------------------------------------


async def test_status_keeps_key_names_in_brackets(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.set_status("Planned: [s] picks the strategy, [r] runs it")
        await pilot.pause()
        assert "Planned: [s] picks the strategy, [r] runs it" in text_of(app, "#status")
        await pilot.press("3")  # a screen composed after the message shows it whole too
        await pilot.pause()
        assert "[s] picks the strategy" in text_of(app, "#status")


async def test_a_prompt_with_markup_is_shown_as_typed(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: bool(getattr(app.screen, "entries", None)))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "Delete this entry?" in text_of(app, ".dialog-text")
        await pilot.press("n")


# -- 3. Entries follow the index; the Clear prompt quotes a fresh count ------------------------------------


async def test_entries_follow_the_store_and_clear_quotes_a_fresh_count(
    filled_cache: SemanticCache, make_app: Any
) -> None:
    before = await filled_cache.vector_store.count()
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, EntriesScreen)
        await wait_for(pilot, lambda: screen.total == before)
        # Written by someone else (another replica, the CLI): the next poll shows it.
        await filled_cache.store_many([StoreRequest("Who wrote Hamlet?", "Shakespeare.")])
        app.poll_now()
        await wait_for(pilot, lambda: screen.total == before + 1)
        await idle(pilot)
        assert f"of {before + 1:,} entries" in flat(text_of(app, "#entries-summary"))
        assert "as of 12:00:00" in flat(text_of(app, "#entries-summary"))
        await filled_cache.store_many([StoreRequest("Who wrote Faust?", "Goethe.")])
        await pilot.press("C")  # no poll in between: the prompt reads the count itself
        await wait_for(pilot, lambda: isinstance(app.screen, TypedConfirmDialog))
        assert f"({before + 2:,} entries now)" in flat(text_of(app, ".dialog-text"))
        await pilot.press("escape")


# -- 4. a panel started during an outage finishes starting when the store comes back -----------------------


async def test_started_with_redis_down_then_up(redis_stack_paths: Any, embedder: Any, make_app: Any) -> None:
    server = RedisServer(redis_stack_paths)  # not started yet: its port refuses connections
    cache = SemanticCache(RedisStore(server.url, name=unique_index_name()), embedder, CachePolicy())
    app = make_app(cache, refresh_interval=0.5)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.start_error is not None and len(app.history) >= 1)
            assert not app.started
            await wait_for(pilot, lambda: "not started" in text_of(app, "NavBar"))
            server.start()
            await wait_for(pilot, lambda: app.started, tries=3000)
            await wait_for(pilot, lambda: "OK" in text_of(app, "#store-panel"), tries=3000)
            assert "not started" not in text_of(app, "NavBar")
            assert app.start_error is None and not app.conditions
            # Redis goes away: said once, cards keep what they last knew; back: the warning leaves.
            server.stop()
            await wait_for(pilot, lambda: "poll" in app.conditions, tries=3000)
            app.set_status("Entry deleted")  # an action's result meanwhile stays on screen
            polls = app.polls
            await wait_for(pilot, lambda: app.polls >= polls + 2, tries=3000)
            assert app.status_message == "Entry deleted"
            assert "DOWN" in text_of(app, "#store-panel")
            assert "no report yet" not in flat(text_of(app, "#embedder-panel"))
            server.start()
            await wait_for(pilot, lambda: "poll" not in app.conditions, tries=3000)
    finally:
        await cache.close()
        server.close()


# -- 5. prune and export are checked before anything is asked; one toast per failure ----------------------


async def test_prune_and_export_are_checked_in_the_dialog(
    filled_cache: SemanticCache, make_app: Any, tmp_path: Path
) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("7")
        await wait_for(pilot, lambda: isinstance(app.screen, BackupScreen) and app.screen.loaded)
        await pilot.press("x")
        await answer(pilot, "0")
        assert isinstance(app.screen, InputDialog)  # still asking: no confirmation, no worker
        problem = flat(text_of(app, "#problem"))
        assert "at least 1 day" in problem and "--keep-days" not in problem
        await pilot.press("escape")
        await pilot.press("e")
        await answer(pilot, str(tmp_path / "no" / "such" / "folder" / "x.jsonl.gz"))
        assert isinstance(app.screen, InputDialog)
        problem = flat(text_of(app, "#problem"))
        assert "does not exist" in problem and "FileNotFoundError" not in problem
        await pilot.press("escape")
        assert len(app._notifications) == 0


async def test_a_failed_export_toasts_once_and_the_bar_stops(
    filled_cache: SemanticCache, make_app: Any
) -> None:
    target = Path("/proc/semcache-export.jsonl.gz")  # a folder that exists; no one (not even root) writes
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("7")
        await wait_for(pilot, lambda: isinstance(app.screen, BackupScreen) and app.screen.loaded)
        await pilot.press("e")
        await answer(pilot, str(target))
        await wait_for(pilot, lambda: app.status_severity == "error")
        await idle(pilot)
        assert len(app._notifications) == 1
        assert "Error" not in app.status_message and "Errno" not in app.status_message
        assert app.status_message.startswith("export failed: /proc/")
        assert not app.screen.query_one("#backup-progress").display
        assert "failed" in text_of(app, "#backup-progress-text")


# -- 8. read-only keys say they are refused ----------------------------------------------------------------


async def test_read_only_keys_say_refused(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for screen_key, key in (("4", "d"), ("4", "C"), ("3", "s"), ("3", "a")):
            app.set_status("")
            await pilot.press(screen_key)
            await pilot.pause()
            await pilot.press(key)
            await pilot.pause()
            assert app.status_message.startswith("Refused:"), (key, app.status_message)
            assert "read-only" in app.status_message
            assert not isinstance(app.screen, ConfirmDialog | TypedConfirmDialog | InputDialog)


# -- 14. changes to the running threshold are confirmed, with old and new ----------------------------------


async def test_apply_threshold_asks_first(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3", "minus", "minus", "a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        question = flat(text_of(app, ".dialog-text"))
        assert "0.400" in question and "0.380" in question
        await pilot.press("n")
        await pilot.pause()
        assert filled_cache.policy.threshold == pytest.approx(0.40)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await pilot.pause()
        assert filled_cache.policy.threshold == pytest.approx(0.38)
        assert "0.400 -> 0.380" in app.status_message
        filled_cache.policy.threshold = 0.40


# -- 6. persistence from the configuration -----------------------------------------------------------------


def test_persistence_reads_the_configuration() -> None:
    info = {"aof_enabled": 0, "rdb_last_save_time": 1_700_000_000, "rdb_changes_since_last_save": 3}
    assert persistence(info, {"save": ""}, {"appendonly": "no"}) == "none"
    assert persistence(info, {"save": "3600 1"}, {"appendonly": "no"}).startswith(
        "RDB snapshots (save 3600 1"
    )
    assert persistence(info, {"save": ""}, {"appendonly": "yes"}).startswith("AOF")
    assert persistence(info, ["save", "", "x", "y"], ["appendonly", "no"]) == "none"


async def test_health_says_none_for_a_redis_without_persistence(
    redis_server_factory: Any, embedder: Any, make_app: Any
) -> None:
    server = redis_server_factory(extra_args=["--save", ""])
    cache = SemanticCache(RedisStore(server.url, name=unique_index_name()), embedder, CachePolicy())
    app = make_app(cache)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            store = flat(text_of(app, "#store-panel"))
            assert "persistence none" in store, store
            assert "RDB" not in store
    finally:
        await cache.close()


# -- 7. messages stay true ---------------------------------------------------------------------------------


async def test_stored_message_stays_and_polls_keep_counting(
    filled_cache: SemanticCache, make_app: Any
) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3", "slash", *"Who wrote Hamlet?", "escape", "s")
        await answer(pilot, "Shakespeare.")
        await wait_for(pilot, lambda: bool(app.screen.matches))
        await idle(pilot)
        assert app.status_message.startswith("Stored entry"), app.status_message
        app.history.samples = type(app.history.samples)(app.history.samples, maxlen=2)
        for _ in range(3):
            app.poll_now()
            await settle(pilot)
        await pilot.press("1")
        await pilot.pause()
        assert f"{app.polls} polls" in text_of(app, "#poll-line") and app.polls > len(app.history)


async def test_import_message_keeps_the_file_name(
    filled_cache: SemanticCache, make_app: Any, tmp_path: Path
) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("7")
        await wait_for(pilot, lambda: isinstance(app.screen, BackupScreen) and app.screen.loaded)
        target = tmp_path / "Exports" / "MyCache.jsonl.gz"
        target.parent.mkdir()
        await pilot.press("e")
        await answer(pilot, str(target))
        await wait_for(pilot, lambda: target.exists() and "Exported" in app.status_message)
        await idle(pilot)
        await pilot.press("i")
        await answer(pilot, str(target))
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: "mported" in app.status_message)
        await idle(pilot)
        assert "MyCache.jsonl.gz" in app.status_message and app.status_message.startswith("Imported")


# -- 9. the sweep leaves the field and never shows an old recommendation as current ------------------------


async def test_sweep_focus_and_a_failed_rerun(
    filled_cache: SemanticCache, make_app: Any, tmp_path: Path
) -> None:
    pairs = tmp_path / "pairs.jsonl.gz"
    with gzip.open(pairs, "wt") as out:
        for a, b, label in (
            ("How do I bake bread?", "How can I bake bread?", 1),
            ("What is Python?", "What is a python snake?", 0),
            ("How old is the earth?", "What is the age of the earth?", 1),
            ("Who is the king?", "Who is the queen?", 0),
        ):
            out.write(json.dumps({"text_a": a, "text_b": b, "label": label}) + "\n")
    app = make_app(filled_cache, pairs_path=pairs)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("5")
        screen = app.screen
        screen.query_one("#target", Input).value = "0.5"
        screen.query_one("#target", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(screen.points))
        await idle(pilot)
        assert app.focused is None or not isinstance(app.focused, Input)
        assert screen.best is not None
        await pilot.press("a")  # works at once: asks to apply
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        screen.query_one("#path", Input).value = str(tmp_path / "missing.jsonl")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.status_severity == "error")
        await idle(pilot)
        assert screen.best is None
        assert "failed, no recommendation" in flat(text_of(app, "#sweep-result"))


# -- 10. one name for every typed confirmation -------------------------------------------------------------


async def test_typed_confirmations_ask_for_the_configured_name(
    tmp_path: Path, embedder: Any, make_app: Any, settings: Any
) -> None:
    cache = SemanticCache(LocalStore(tmp_path / "data", name="panel"), embedder, CachePolicy())
    await cache.start()
    app = make_app(cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # As after a migration: the index served is panel__v2, the operator knows "panel".
        from dataclasses import replace

        assert app.index_info is not None
        app.index_info = replace(app.index_info, name="panel__v2")
        assert app.logical_index == "panel" and app.describe_index() == "panel (physical panel__v2)"
        await pilot.press("4")
        await pilot.pause()
        app.index_info = replace(app.index_info, name="panel__v2")
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, TypedConfirmDialog))
        assert app.screen.expected == "panel"
        assert "panel (physical panel__v2)" in flat(text_of(app, ".dialog-text"))
        await pilot.press("escape")
    await cache.close()
