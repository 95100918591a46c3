"""The panel's memory over repeated sweeps and migrations: does it level off?

    python -m bench.panel_memory [--sweeps 4] [--migrations 4] [--sample 400]

Drives the real app with Pilot on a temporary embedded store filled with the sample pairs and the bundled
model: N sweeps of the shipped near-miss pairs (Sweep screen, ``r``), then N migrations through the
Migration screen (384 -> 256 reembed: plan, run, verify, roll back, drop the leftover index), each waiting
until the panel has followed the active index there and back. After each step it prints the process's RSS
(psutil) and how many embedders, ONNX encoders and sentence-transformers models are alive (counted by
``gc``, not guessed). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from engine.assembly import build_cache
from engine.config import Settings
from engine.samples import SAMPLE_PAIRS
from semcache_tui.app import SemcacheApp
from semcache_tui.monitor import FrozenProbe

#: Kinds of object that hold a model's weights or its results; counted after each step.
WATCHED = (
    "SentenceTransformerEmbedder",
    "OnnxEncoder",
    "SentenceTransformer",
    "InferenceSession",
    "SweepPoint",
)
WAIT_S = 600.0


def mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def alive() -> str:
    gc.collect()
    counts = Counter(type(o).__name__ for o in gc.get_objects() if type(o).__name__ in WATCHED)
    return " ".join(f"{name}={counts.get(name, 0)}" for name in WATCHED)


def report(step: str, started: float) -> None:
    print(f"{step:<14} rss {mib():7.1f} MiB  {alive()}  ({time.perf_counter() - started:5.1f}s)", flush=True)


async def wait_for(pilot: Any, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        if condition():
            return
    raise TimeoutError("the panel never got there")


async def settle(pilot: Any) -> None:
    await wait_for(pilot, lambda: pilot.app.started and not pilot.app._polling)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def sweep_once(pilot: Any, sample: int) -> None:
    app: SemcacheApp = pilot.app
    await pilot.press("5")
    screen = app.screen
    screen.query_one("#sample").value = str(sample)  # type: ignore[attr-defined]
    screen.set_focus(None)
    await pilot.press("r")
    await wait_for(pilot, lambda: "Swept" in app.status_message or app.status_severity == "error")
    await app.workers.wait_for_complete()


async def migrate_once(pilot: Any) -> None:
    app: SemcacheApp = pilot.app
    await pilot.press("6")
    screen: Any = app.screen
    await wait_for(pilot, lambda: screen.active is not None)
    screen.query_one("#to-dimension").value = "256"
    screen.set_focus(None)
    screen.plan = None
    await pilot.press("p")
    await wait_for(pilot, lambda: screen.plan is not None)
    await pilot.press("r")
    await wait_for(pilot, lambda: type(app.screen).__name__ == "TypedConfirmDialog")
    await pilot.press(*app.settings.index_name, "enter")
    await wait_for(pilot, lambda: screen.state is not None and screen.state.phase == "switched")
    await app.workers.wait_for_complete()
    app.poll_now()
    await wait_for(pilot, lambda: app.service.vector_store.name.endswith("__v2"))  # type: ignore[attr-defined]
    await pilot.press("v")
    await wait_for(pilot, lambda: screen.verified is not None)
    await pilot.press("b")
    await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog")
    await pilot.press("y")
    await wait_for(pilot, lambda: screen.state is not None and screen.state.phase == "rolled_back")
    await app.workers.wait_for_complete()
    app.poll_now()
    await wait_for(pilot, lambda: app.service.vector_store.name == app.settings.index_name)  # type: ignore[attr-defined]
    await wait_for(pilot, lambda: screen.leftover)
    await pilot.press("d")
    await wait_for(pilot, lambda: type(app.screen).__name__ == "TypedConfirmDialog")
    await pilot.press(*app.settings.index_name, "enter")
    await wait_for(pilot, lambda: not screen.leftover and "Dropped" in app.status_message)
    await app.workers.wait_for_complete()


async def main(sweeps: int, migrations: int, sample: int) -> None:
    started = time.perf_counter()
    report("imported", started)
    with tempfile.TemporaryDirectory(prefix="semcache-panel-memory-") as folder:
        settings = Settings.load(data_dir=Path(folder) / "data", index_name="bench")
        cache = build_cache(settings)
        await cache.start()
        from engine.cache import StoreRequest

        await cache.store_many([StoreRequest(p, r) for p, r in SAMPLE_PAIRS[:16]])
        app = SemcacheApp(cache, settings, probe=FrozenProbe(), refresh_interval=1.0)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            report("started", started)
            for number in range(1, sweeps + 1):
                await sweep_once(pilot, sample)
                report(f"sweep {number}", started)
            for number in range(1, migrations + 1):
                await migrate_once(pilot)
                report(f"migration {number}", started)
        report("closed", started)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweeps", type=int, default=4)
    parser.add_argument("--migrations", type=int, default=4)
    parser.add_argument("--sample", type=int, default=400, help="pairs per sweep")
    args = parser.parse_args()
    asyncio.run(main(args.sweeps, args.migrations, args.sample))
