"""Snapshots of every screen at 100x30 and at 80x24, drawn by the same scenes as ``make screenshots``.

Deterministic: a fixed data folder (paths show on screen), a FrozenProbe (clock, host numbers, timings),
no cursor blink, one poll in the history.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from semcache_tui import screenshots

FOLDER = Path(tempfile.gettempdir()) / "semcache-tui-snapshots"


@pytest.fixture
def scene_app(embedder: Any):  # type: ignore[no-untyped-def]
    # The folder's path is drawn on screen, so it cannot be unique per run; two test runs on one machine
    # take turns with it instead of overwriting each other's data.
    lock = (FOLDER.parent / f"{FOLDER.name}.lock").open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)

    def factory(name: str) -> tuple[Any, Any]:
        shutil.rmtree(FOLDER, ignore_errors=True)
        FOLDER.mkdir(parents=True)
        pairs = screenshots.sample_pairs(FOLDER)
        screenshots.prepare(FOLDER / "data", embedder)
        before, options = screenshots.SCENES[name]
        return screenshots.build_app(FOLDER / "data", embedder, pairs, **options), before

    try:
        yield factory
    finally:
        shutil.rmtree(FOLDER, ignore_errors=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


@pytest.mark.parametrize("name", sorted(screenshots.SCENES))
def test_screen_snapshot(name: str, scene_app: Any, snap_compare: Any) -> None:
    app, before = scene_app(name)
    assert snap_compare(app, terminal_size=screenshots.size_of(name), run_before=before)


@pytest.mark.parametrize(
    "name", sorted(n for n in screenshots.SCENES if screenshots.size_of(n) == screenshots.SIZE)
)
def test_screen_snapshot_at_80x24(name: str, scene_app: Any, snap_compare: Any) -> None:
    """The same scenes in the smallest terminal operators use over SSH."""
    app, before = scene_app(name)
    assert snap_compare(app, terminal_size=screenshots.SMALL, run_before=before)
