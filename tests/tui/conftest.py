"""Fixtures for the panel: a real embedded store on a temporary folder, the bundled model, the real app."""

from __future__ import annotations

import contextlib
import html
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.worker import WorkerFailed

from engine.cache import CachePolicy, SemanticCache, StoreRequest
from engine.config import Settings
from engine.samples import SAMPLE_PAIRS
from engine.stores.local import LocalStore
from semcache_tui.app import SemcacheApp
from semcache_tui.monitor import FrozenProbe

SIZE = (100, 32)
_SVG_TEXT = re.compile(
    r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)" textLength="[\d.]+" clip-path="[^"]*">(.*?)</text>'
)


async def fill(cache: SemanticCache, pairs: list[tuple[str, str]] = SAMPLE_PAIRS) -> None:
    await cache.start()
    await cache.store_many([StoreRequest(prompt, response) for prompt, response in pairs])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", index_name="panel")


@pytest.fixture
async def filled_cache(tmp_path: Path, embedder: Any) -> AsyncIterator[SemanticCache]:
    """A started cache on the embedded store holding the sample questions and answers."""
    cache = SemanticCache(LocalStore(tmp_path / "data", name="panel"), embedder, CachePolicy())
    await fill(cache)
    yield cache
    await cache.close()


@pytest.fixture
def make_app(settings: Settings):  # type: ignore[no-untyped-def]
    def factory(service: Any, **options: Any) -> SemcacheApp:
        options.setdefault("probe", FrozenProbe())
        options.setdefault("refresh_interval", 60.0)
        return SemcacheApp(service, settings, close_service=False, **options)

    return factory


#: The least time a wait gives its condition, in seconds: a deadline, not a count of pauses, because a
#: pause takes far longer than asked on a loaded machine (CI shares 2 cores). SEMCACHE_TEST_WAIT_S sets it.
WAIT_S = float(os.environ.get("SEMCACHE_TEST_WAIT_S", "60"))


async def settle(pilot: Pilot[Any], polls: int = 1) -> None:
    """Wait until the service has started (or failed to), ``polls`` polls are in and no worker runs."""
    app: SemcacheApp = pilot.app  # type: ignore[assignment]
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        await pilot.pause(0.02)
        with contextlib.suppress(WorkerFailed):  # a failed worker is what some tests look at
            await app.workers.wait_for_complete()
        done = app.started or app.start_error is not None
        if done and len(app.history) >= polls and not app._polling:
            break
    await pilot.pause()


async def wait_for(pilot: Pilot[Any], condition: Any, tries: int = 500) -> None:
    """Wait until ``condition()`` holds, for at least ``WAIT_S`` seconds (or ``tries`` pauses of 20 ms, when
    that is longer)."""
    deadline = time.monotonic() + max(WAIT_S, tries * 0.02)
    while time.monotonic() < deadline:
        await pilot.pause(0.02)
        if condition():
            return
    raise AssertionError("condition never became true")


def screen_text(app: SemcacheApp) -> str:
    """What the terminal shows, as text: the lines of the app's own SVG screenshot."""
    svg = app.export_screenshot()
    rows: dict[float, list[tuple[float, str]]] = {}
    for match in _SVG_TEXT.finditer(svg):
        rows.setdefault(float(match.group(2)), []).append(
            (float(match.group(1)), html.unescape(match.group(3)).replace("\xa0", " "))
        )
    if not rows:
        return ""
    first = min(rows)
    height = app.size.height
    lines = [""] * height
    for y in sorted(rows):
        line = ""
        for x, text in sorted(rows[y]):
            line = line.ljust(round(x / 12.2)) + text
        row = round((y - first) / 24.4)
        if 0 <= row < height:
            lines[row] = line.rstrip()
    return "\n".join(lines)


def text_of(app: SemcacheApp, selector: str) -> str:
    """The text of one widget as drawn (its region of the screen)."""
    widget = app.screen.query_one(selector)
    region = widget.region
    lines = screen_text(app).split("\n")
    return "\n".join(line[region.x : region.right] for line in lines[region.y : region.bottom])


def unique_name() -> str:
    return f"p{uuid.uuid4().hex[:10]}"
