"""Snapshots of every screen at 100x30 and at 80x24, drawn by the same scenes as ``make screenshots``, and
of the Health screen on Redis at both sizes.

Deterministic: a fixed data folder (paths show on screen), a FrozenProbe (clock, host numbers, timings,
Redis's memory, uptime and latency), no cursor blink, one poll in the history. On Redis, the URL shows
on screen too, so the snapshots' Redis is a server of their own on a fixed port (``REDIS_PORT``), started
for each test on an empty data set.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from semcache_tui import screenshots
from tests.support.redis_server import RedisServer, RedisStackPaths, RedisStackUnavailable

FOLDER = Path(tempfile.gettempdir()) / "semcache-tui-snapshots"
#: The port of the snapshots' own Redis: below Linux's ephemeral range (32768-60999), where the other test
#: servers' ports come from, and not a port Redis or Sentinel use by default.
REDIS_PORT = 21379


@pytest.fixture
def folder() -> Iterator[Path]:
    """``FOLDER``, held by this test: its path is drawn on screen, so it cannot be unique per run; two test
    runs on one machine take turns with it (and with ``REDIS_PORT``) instead of overwriting each other."""
    lock = (FOLDER.parent / f"{FOLDER.name}.lock").open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield FOLDER
    finally:
        shutil.rmtree(FOLDER, ignore_errors=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _fresh(folder: Path) -> Path:
    """An empty ``folder`` with the scenes' sample pairs; returns the pairs' path."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return screenshots.sample_pairs(folder)


@pytest.fixture
def scene_app(folder: Path, embedder: Any) -> Callable[[str], tuple[Any, Any]]:
    def factory(name: str) -> tuple[Any, Any]:
        pairs = _fresh(folder)
        screenshots.prepare(folder / "data", embedder)
        before, options = screenshots.SCENES[name]
        return screenshots.build_app(folder / "data", embedder, pairs, **options), before

    return factory


@pytest.fixture
def snapshot_redis(folder: Path, redis_stack_paths: RedisStackPaths) -> Iterator[RedisServer]:
    """A Redis Stack of the snapshots' own on ``REDIS_PORT`` (its URL is on screen), held with ``folder``."""
    server = RedisServer(redis_stack_paths, port=REDIS_PORT)
    try:
        server.start()
    except RedisStackUnavailable as exc:
        server.close()
        pytest.fail(
            f"the Redis snapshots need port {REDIS_PORT} (its URL is drawn on screen): {exc}", pytrace=False
        )
    try:
        yield server
    finally:
        server.close()


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


@pytest.mark.parametrize("size", [screenshots.SIZE, screenshots.SMALL], ids=["100x30", "80x24"])
def test_redis_health_snapshot(
    size: tuple[int, int], folder: Path, snapshot_redis: RedisServer, embedder: Any, snap_compare: Any
) -> None:
    """Health on a Redis Stack holding the sample pairs: the Redis card (version, search module, memory,
    eviction policy, persistence none) beside the cache's numbers."""
    snapshot_redis.client().flushall()
    pairs = _fresh(folder)
    screenshots.prepare(folder / "data", embedder, redis_url=snapshot_redis.url)
    app = screenshots.build_app(folder / "data", embedder, pairs, redis_url=snapshot_redis.url)
    assert snap_compare(app, terminal_size=size, run_before=screenshots.health)
