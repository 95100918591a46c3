"""Query lab, Entries, Index and Sweep: every action against the real embedded store and model."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from textual.widgets import DataTable

from engine.cache import CachePolicy, SemanticCache
from engine.models import EmbedderIdentity
from engine.stores.local import LocalStore
from semcache_tui.screens.dialogs import ConfirmDialog, EntryDialog, InputDialog, TypedConfirmDialog
from tests.tui.conftest import SIZE, settle, text_of, wait_for


async def search(pilot: Any, prompt: str) -> None:
    app = pilot.app
    await pilot.press("3", "slash", *prompt, "enter")
    await wait_for(pilot, lambda: app.screen.prompt == prompt and app.screen.matches)


def marks(app: Any) -> list[str]:
    table = app.screen.query_one("#results", DataTable)
    return [str(table.get_row_at(i)[3]) for i in range(table.row_count)]


def reasons(app: Any) -> list[str]:
    return [c.reason for c in app.screen.candidates]


async def test_nearest_judged_and_remarked_without_a_new_search(
    filled_cache: SemanticCache, make_app: Any
) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await search(pilot, "Can you explain machine learning?")
        lab = app.screen
        assert len(lab.matches) == 10
        assert lab.matches[0].entry.prompt == "What is machine learning?"
        assert marks(app)[0] == "SERVED"
        first = lab.candidates[0]
        assert first.score is not None and first.reason.startswith("served: score")
        assert "check() would serve #1" in text_of(app, "#lab-summary")
        # What the lab shows is what check answers.
        checked = await filled_cache.check("Can you explain machine learning?")
        assert checked.best is not None and checked.best.entry.key == first.match.entry.key
        searched = lab.matches
        for _ in range(45):  # from the default cap, 0.40, down to 0
            await pilot.press("minus")
        assert app.lab_threshold < 0.01
        await wait_for(pilot, lambda: lab.judged_at is not None and lab.judged_at[0] < 0.01)
        assert marks(app)[0] == "refused"
        assert reasons(app)[0].startswith("over the distance cap")
        assert "check() would miss" in text_of(app, "#lab-summary")
        assert lab.matches is searched  # re-marked, not searched again
        await pilot.press("t")
        lab.query_one("#threshold").value = "2"
        await pilot.press("enter")
        assert app.lab_threshold == 2.0
        await wait_for(pilot, lambda: lab.judged_at is not None and lab.judged_at[0] == 2.0)
        # The verifier still refuses unrelated candidates at the loosest cap; the lab says why.
        assert marks(app)[0] == "SERVED"
        assert any(r.startswith("score ") and " < cut " in r for r in reasons(app))
        assert lab.matches is searched


async def test_target_precision_remarks_from_the_same_rule(
    filled_cache: SemanticCache, make_app: Any
) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await search(pilot, "Can you explain machine learning?")
        lab = app.screen
        default_target = app.verifier_point()[0]
        assert lab.query_one("#precision").value == f"{default_target:.2f}"
        served_score = lab.candidates[0].score
        await pilot.press("p")
        lab.query_one("#precision").value = "1"
        await pilot.press("enter")
        await wait_for(pilot, lambda: lab.judged_at is not None and lab.judged_at[1] == 1.0)
        assert app.lab_target == 1.0
        expected = await filled_cache.verdicts(
            "Can you explain machine learning?",
            lab.matches,
            threshold=app.lab_threshold,
            target_precision=1.0,
        )
        assert [c.reason for c in expected] == reasons(app)
        assert not lab.candidates[0].served and lab.candidates[0].score == served_score
        assert " < cut " in reasons(app)[0]
        await pilot.press("p")
        lab.query_one("#precision").value = "1.5"
        await pilot.press("enter")
        assert "target precision is above 0 and at most 1" in app.status_message


async def test_numbers_differ_is_shown_as_a_rejection(filled_cache: SemanticCache, make_app: Any) -> None:
    await filled_cache.store("How do I convert 5 km to miles?", "Multiply by 0.621: 3.1 miles.")
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await search(pilot, "How do I convert 50 km to miles?")
        lab = app.screen
        assert lab.matches[0].entry.prompt == "How do I convert 5 km to miles?"
        assert marks(app)[0] == "refused"
        assert reasons(app)[0] == "numbers differ: 50 vs 5"
        assert "numbers differ: 50 vs 5" in text_of(app, "#results")


async def test_mark_the_served_hit_wrong_then_right(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    prompt = "Can you explain machine learning?"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await search(pilot, prompt)
        lab = app.screen
        key = lab.candidates[0].match.entry.key
        await pilot.press("down", "w")  # the second result is not served: refused with a reason
        assert "Only the served hit" in app.status_message
        await pilot.press("up", "w")
        await wait_for(pilot, lambda: app.status_message.startswith("Marked wrong"))
        assert key[:12] in app.status_message and "1 wrong, 0 right" in app.status_message
        assert (await filled_cache.stats()).feedback_wrong == 1
        refused = next(c for c in lab.candidates if c.match.entry.key == key)
        assert not refused.served and refused.reason == "reported wrong for this prompt"
        result = await filled_cache.check(prompt)
        assert result.best is None or result.best.entry.key != key
        table = lab.query_one("#results", DataTable)
        table.move_cursor(row=lab.matches.index(refused.match))
        await pilot.press("r")
        assert "Only the served hit" in app.status_message  # right is for a served hit too


async def test_read_only_refuses_feedback_with_a_message(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await search(pilot, "Can you explain machine learning?")
        await pilot.press("w")
        assert "Refused" in app.status_message and "read-only" in app.status_message
        assert (await filled_cache.stats()).feedback_wrong == 0


async def test_apply_threshold_to_the_running_cache(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3", "plus", "plus", "a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        assert abs(filled_cache.policy.threshold - 0.42) < 1e-9
        assert "0.400 -> 0.420" in app.status_message


async def test_store_a_response_then_find_it(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3", "slash", *"Who wrote Hamlet?", "escape", "s")
        assert isinstance(app.screen, InputDialog)
        await pilot.press(*"William Shakespeare.", "enter")
        await wait_for(pilot, lambda: getattr(app.screen, "prompt", "") == "Who wrote Hamlet?")
        assert app.screen.matches[0].entry.response == "William Shakespeare."
        assert app.screen.matches[0].distance < 0.01
        assert (await filled_cache.stats()).entries == 13


async def test_delete_a_result_with_a_yes_no_confirm(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await search(pilot, "What is Redis?")
        key = app.screen.matches[0].entry.key
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        assert await filled_cache.get(key) is not None
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: "deleted" in app.status_message)
        assert await filled_cache.get(key) is None


async def test_entries_browse_search_view_delete_and_clear(
    filled_cache: SemanticCache, make_app: Any
) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        table = app.screen.query_one("#entries", DataTable)
        await wait_for(pilot, lambda: table.row_count == 12)
        assert "1-12 of 12 entries" in text_of(app, "#entries-summary")
        await pilot.press("slash", *"python", "enter")
        await wait_for(pilot, lambda: table.row_count == 2)
        await pilot.press("v")
        assert isinstance(app.screen, EntryDialog)
        await pilot.press("escape")
        first = app.screen.entries[0]
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: table.row_count == 1)
        assert await filled_cache.get(first.key) is None
        await pilot.press("C")
        assert isinstance(app.screen, TypedConfirmDialog)
        await pilot.press(*"wrong", "enter")
        assert isinstance(app.screen, TypedConfirmDialog)
        assert (await filled_cache.stats()).entries == 11
        app.screen.query_one("#typed").value = "panel"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Cleared 11 entries" in app.status_message)
        assert (await filled_cache.stats()).entries == 0


async def test_read_only_refuses_every_write(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "READ-ONLY" in text_of(app, "NavBar")
        await pilot.press("4")
        table = app.screen.query_one("#entries", DataTable)
        await wait_for(pilot, lambda: table.row_count == 12)
        await pilot.press("d", "C")
        assert not isinstance(app.screen, ConfirmDialog | TypedConfirmDialog)
        active = app.screen.active_bindings
        assert not active["d"].enabled and not active["C"].enabled
        await app.run_screen_action("entries", "clear")
        assert "Refused" in app.status_message
        await app.run_screen_action("lab", "store")
        await app.run_screen_action("lab", "apply")
        await app.run_screen_action("sweep", "apply")
        assert (await filled_cache.stats()).entries == 12
        assert filled_cache.policy.threshold == 0.40
        refused = [title for title, _h, _m, _a, enabled in app.palette_entries() if not enabled]
        assert "Entries: Clear all" in refused and "Query lab: Store" in refused


async def test_index_screen_shows_the_index_and_identity(filled_cache: SemanticCache, make_app: Any) -> None:
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await pilot.pause()
        body = text_of(app, "#index-body")
        for expected in ("Index panel", "HNSW", "COSINE", "ef construction", "12 entries (no limit)", "same"):
            assert expected in body
        app.screen.query_one("#index-body").scroll_end(animate=False)
        await pilot.pause()
        fields = text_of(app, "#index-body")
        assert "Fields" in fields and "VECTOR" in fields and "384" in fields
        assert not app.screen.query_one("#mismatch-banner").display


async def test_index_mismatch_banner_says_what_to_run(tmp_path: Path, embedder: Any, make_app: Any) -> None:
    store = LocalStore(tmp_path / "data", name="panel")
    await store.open()
    await store.bind(EmbedderIdentity("sentence-transformers", "another-model", 384))
    await store.close()
    cache = SemanticCache(LocalStore(tmp_path / "data", name="panel"), embedder, CachePolicy())
    app = make_app(cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.start_error is not None and app.is_running
        await pilot.press("2")
        await pilot.pause()
        banner = app.screen.query_one("#mismatch-banner")
        assert banner.display
        text = text_of(app, "#mismatch-banner")
        assert "semcache-tui migrate plan" in text and "another-model" in text
        assert "DIFFERENT" in text_of(app, "#index-body")
    await cache.close()


def write_pairs(path: Path, count: int) -> Path:
    """The first ``count`` labeled pairs shipped in the package (the near-miss set), as a gzip file."""
    from engine.evaluation import NEAR_MISS_PAIRS

    lines = [line + "\n" for line in NEAR_MISS_PAIRS.read_text(encoding="utf-8").splitlines() if line.strip()]
    with gzip.open(path, "wt") as target:
        target.writelines(lines[:count])
    return path


async def test_sweep_plots_recommends_and_applies(
    tmp_path: Path, filled_cache: SemanticCache, make_app: Any
) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl.gz", 120)
    app = make_app(filled_cache, pairs_path=pairs)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("5")
        sweep = app.screen
        sweep.query_one("#sample").value = "100"
        sweep.query_one("#target").value = "0.8"
        await pilot.press("r")
        await wait_for(pilot, lambda: sweep.report is not None, tries=6000)
        await settle(pilot)  # the report is set before the result is drawn and laid out again
        assert sweep.pairs_count == 100
        report = sweep.report
        assert report.target_precision == 0.8 and report.curve and report.baseline_curve
        result = " ".join(text_of(app, "#sweep-result").split())  # as read, whatever the line wrapping
        if sweep.reached():
            assert f"target precision {report.target_precision:.2f}" in result
            assert f"cut {report.cut:.2f}" in result
        else:
            assert "is not reached" in result
        assert "distance alone" in result or "no distance threshold alone reaches" in result
        # The target precision is what is applied (the verifier's cut follows it).
        sweep.query_one("#target").value = "0.5"
        await pilot.press("r")
        await wait_for(pilot, lambda: sweep.report is not None and sweep.report.target_precision == 0.5, 6000)
        assert sweep.reached()
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        assert filled_cache.policy.target_precision == 0.5
        assert "target precision" in app.status_message and "-> 0.50" in app.status_message
        await pilot.press("l")
        assert app.lab_target == 0.5


async def test_sweep_defaults_to_the_shipped_near_miss_report_pairs(
    filled_cache: SemanticCache, make_app: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("5")
        sweep = app.screen
        assert "near-miss report pairs" in text_of(app, "#sweep-result")
        sweep.query_one("#sample").value = "60"
        await pilot.press("r")
        await wait_for(pilot, lambda: sweep.report is not None, tries=6000)
        assert sweep.pairs_count == 60
        # Without colour, each curve has its own letter.
        plots = text_of(app, "#sweep-plots")
        for letter in "PRHVD":
            assert letter in plots
        assert "verifier" in plots and "distance" in plots


async def test_sweep_reports_a_bad_file_in_place(
    tmp_path: Path, filled_cache: SemanticCache, make_app: Any
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text_a": "a"}) + "\n")
    app = make_app(filled_cache, pairs_path=bad)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("5", "r")
        await wait_for(pilot, lambda: app.status_severity == "error")
        assert "text_a, text_b and label" in app.status_message
        assert app.is_running
