"""Pictures of every screen, from the real app on a temporary store filled with sample questions.

    python -m semcache_tui.screenshots screenshots     # writes screenshots/<screen>.svg

The snapshot tests (tests/tui/test_snapshots.py) drive the same scenes, so the pictures in the repository
and the snapshots the tests compare are made the same way. A ``FrozenProbe`` fixes the clock, the host's
numbers and measured timings, so two runs draw the same picture.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from engine.cache import CachePolicy, SemanticCache, StoreRequest
from engine.config import Settings
from engine.samples import SAMPLE_PAIRS, SAMPLE_QUERIES
from semcache_tui.app import SemcacheApp
from semcache_tui.monitor import FrozenProbe
from semcache_tui.screens.backup import BackupScreen
from semcache_tui.screens.entries import EntriesScreen
from semcache_tui.screens.migration import MigrationScreen
from semcache_tui.screens.query_lab import QueryLabScreen

S = TypeVar("S")

#: The size operators' terminals often have; ``SMALL`` is the smallest the panel is drawn at.
SIZE = (100, 30)
SMALL = (80, 24)
INDEX = "semantic_cache"
SWEEP_SAMPLE = 200


def _store(data_dir: Path, redis_url: str | None = None) -> Any:
    """The embedded store in ``data_dir``, or the index ``INDEX`` on the Redis at ``redis_url``."""
    if redis_url:
        from engine.stores.redis import RedisStore

        return RedisStore(redis_url, name=INDEX)
    from engine.stores.local import LocalStore

    return LocalStore(data_dir, name=INDEX)


def prepare(data_dir: Path, embedder: Any, redis_url: str | None = None) -> None:
    """A fresh store holding the sample pairs, with a few lookups (hits and a miss) on record: the embedded
    one in ``data_dir``, or the index ``INDEX`` on the Redis at ``redis_url`` (dropped first)."""

    async def fill() -> None:
        if redis_url:
            await _store(data_dir, redis_url).drop()
        cache = SemanticCache(_store(data_dir, redis_url), embedder, CachePolicy())
        await cache.start()
        await cache.store_many([StoreRequest(prompt, response) for prompt, response in SAMPLE_PAIRS])
        for query in SAMPLE_QUERIES:
            await cache.check(query)
        await cache.close()

    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    asyncio.run(fill())


def sample_pairs(folder: Path) -> Path:
    """The near-miss report split shipped in the package: the same pairs wherever the repository is, so
    the screenshots and the snapshot tests never depend on a data folder beside it."""
    from engine.evaluation import NEAR_MISS_PAIRS, NEAR_MISS_REPORT_SPLIT

    target = folder / "pairs.jsonl.gz"
    with gzip.open(target, "wt", encoding="utf-8") as out:
        for line in NEAR_MISS_PAIRS.read_text(encoding="utf-8").splitlines():
            if line.strip() and json.loads(line).get("split") == NEAR_MISS_REPORT_SPLIT:
                out.write(line + "\n")
    return target


def build_app(
    data_dir: Path,
    embedder: Any,
    pairs: Path | None = None,
    redis_url: str | None = None,
    **options: Any,
) -> SemcacheApp:
    """The panel on the store ``prepare`` filled (on Redis when ``redis_url`` is given)."""
    cache = SemanticCache(_store(data_dir, redis_url), embedder, CachePolicy())
    settings = Settings.load(data_dir=data_dir, index_name=INDEX, redis_url=redis_url)
    options.setdefault("probe", FrozenProbe())
    options.setdefault("refresh_interval", 3600.0)
    return SemcacheApp(cache, settings, pairs_path=pairs, **options)


def _showing(pilot: Any, kind: type[S], ready: Callable[[S], bool]) -> Callable[[], bool]:
    """A condition: the current screen is a ``kind`` and ``ready`` holds for it."""

    def check() -> bool:
        screen = pilot.app.screen
        return isinstance(screen, kind) and ready(screen)

    return check


async def _until(pilot: Any, condition: Callable[[], bool], tries: int = 3000) -> None:
    for _ in range(tries):
        await pilot.pause(0.02)
        if condition():
            return
    raise TimeoutError("the app never reached the state for this picture")


async def settle(pilot: Any) -> None:
    """Started, one fresh poll in and drawn: the history is reset so every picture has the same one."""
    app: SemcacheApp = pilot.app
    await _until(pilot, lambda: (app.started or app.start_error is not None) and not app._polling)
    app.history.clear()
    app.polls = 0
    app.poll_now()
    await _until(pilot, lambda: len(app.history) == 1 and not app._polling)
    await pilot.pause()


async def health(pilot: Any) -> None:
    await settle(pilot)


async def index(pilot: Any) -> None:
    await settle(pilot)
    await pilot.press("2")
    await pilot.pause()


async def query_lab(pilot: Any) -> None:
    await settle(pilot)
    await pilot.press("3", "slash", *"what's the capital city of france", "enter")
    await _until(pilot, _showing(pilot, QueryLabScreen, lambda screen: bool(screen.matches)))
    await pilot.press("plus", "plus")
    await pilot.pause()


async def entries(pilot: Any) -> None:
    await settle(pilot)
    await pilot.press("4")
    await _until(pilot, _showing(pilot, EntriesScreen, lambda screen: bool(screen.entries)))
    await pilot.pause()


async def sweep(pilot: Any) -> None:
    await settle(pilot)
    await pilot.press("5")
    screen = pilot.app.screen
    if screen.query_one("#path").value:
        screen.query_one("#sample").value = str(SWEEP_SAMPLE)
        screen.query_one("#target").value = "0.9"
        await pilot.press("r")
        await _until(pilot, lambda: bool(screen.points) or pilot.app.status_severity == "error")
    await pilot.pause()


async def migration(pilot: Any) -> None:
    await settle(pilot)
    await pilot.press("6")
    await _until(pilot, _showing(pilot, MigrationScreen, lambda screen: screen.active is not None))
    await pilot.pause()


async def backup(pilot: Any) -> None:
    await settle(pilot)
    await pilot.press("7")
    await _until(pilot, _showing(pilot, BackupScreen, lambda screen: screen.loaded))
    await pilot.pause()


async def keys(pilot: Any) -> None:
    await settle(pilot)
    await pilot.press("3", "question_mark")
    await pilot.pause()


async def read_only(pilot: Any) -> None:
    await settle(pilot)
    await pilot.press("4")
    await _until(pilot, _showing(pilot, EntriesScreen, lambda screen: bool(screen.entries)))
    await pilot.pause()


#: name -> (what to do before the picture, options for the app)
SCENES: dict[str, tuple[Callable[[Any], Awaitable[None]], dict[str, Any]]] = {
    "health": (health, {}),
    "index": (index, {}),
    "query_lab": (query_lab, {}),
    "entries": (entries, {}),
    "sweep": (sweep, {}),
    "migration": (migration, {}),
    "backup": (backup, {}),
    "keys": (keys, {}),
    "read_only": (read_only, {"read_only": True}),
    "health_80x24": (health, {}),
}
#: Scenes drawn at another size than ``SIZE``.
SIZES: dict[str, tuple[int, int]] = {"health_80x24": SMALL}


def size_of(name: str) -> tuple[int, int]:
    return SIZES.get(name, SIZE)


def take(name: str, data_dir: Path, embedder: Any, pairs: Path | None) -> str:
    """One picture as SVG text: the app runs headless at ``SIZE`` until the scene is set."""
    before, options = SCENES[name]
    prepare(data_dir, embedder)
    app = build_app(data_dir, embedder, pairs, **options)
    pictures: list[str] = []

    async def pilot_then_shoot(pilot: Any) -> None:
        await before(pilot)
        pictures.append(app.export_screenshot(title=f"semcache - {name.replace('_', ' ')}"))
        app.exit()

    app.run(headless=True, size=size_of(name), auto_pilot=pilot_then_shoot)
    return pictures[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="screenshots", help="where to write the SVGs")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENES), help="only these screens")
    args = parser.parse_args(argv)
    from engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

    class KeptEmbedder(SentenceTransformerEmbedder):
        async def close(self) -> None:  # one model for every picture
            return None

    embedder = KeptEmbedder()
    embedder.load_sync()
    out = Path(args.folder)
    out.mkdir(parents=True, exist_ok=True)
    # A fixed folder, so the paths the pictures show do not change from one run to the next.
    work = Path(tempfile.gettempdir()) / "semcache-screenshots"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        pairs = sample_pairs(work)
        for name in args.only or SCENES:
            svg = take(name, work / "data", embedder, pairs)
            (out / f"{name}.svg").write_text(svg, encoding="utf-8")
            print(f"wrote {out / f'{name}.svg'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
