"""Migrations against both stores (``store_kind``) and the real bundled model: 384 -> 256 dimensions by
re-embedding into a new versioned index, the catch-up of writes made meanwhile, interruption and resume,
rollback, finalize, recreate, the plan, ``build_cache`` following the pointer, and the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.assembly import build_cache
from engine.cache import CachePolicy, SemanticCache, StoreRequest
from engine.config import Settings
from engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from engine.errors import IndexMismatchError, IndexMissingError, InvalidInputError
from engine.index_pointer import logical_name, next_physical_name
from engine.keys import entry_key
from engine.migration import (
    MigrationProgress,
    MigrationTarget,
    finalize_migration,
    migration_status,
    plan_migration,
    rollback_migration,
    run_migration,
)
from engine.models import CacheEntry
from engine.stores.base import VectorStore
from tests.conftest import SharedEmbedder
from tests.support.cli import run_cli

MODEL = "all-MiniLM-L6-v2"
TARGET = MigrationTarget(model=MODEL, dimension=256)
REQUESTS = [
    StoreRequest("What is the capital of France?", "Paris.", "geo", {"model": "gpt-x"}, 3600),
    StoreRequest("How many legs does a spider have?", "Eight.", "default", {}, 0),
    StoreRequest("Who wrote Hamlet?", "Shakespeare.", "books", {"tags": ["lit"]}, 600),
    *[
        StoreRequest(f"What is the square of {n}?", f"{n * n}.", "math", {"n": n}, 900 + n)
        for n in range(2, 14)
    ],
]


class SharedTarget(SentenceTransformerEmbedder):
    async def close(self) -> None:
        return None


_TARGET: SharedTarget | None = None


@pytest.fixture
def target_embedder() -> SharedTarget:
    """The bundled model truncated to 256 dimensions, loaded once per session."""
    global _TARGET
    if _TARGET is None:
        _TARGET = SharedTarget(model=MODEL, output_dimension=256)
        _TARGET.load_sync()
    return _TARGET


StoreMaker = Callable[..., VectorStore]


async def filled(make_store: StoreMaker, embedder: SharedEmbedder) -> SemanticCache:
    cache = SemanticCache(make_store(), embedder, CachePolicy())
    await cache.start()
    await cache.store_many(REQUESTS)
    return cache


async def entries_of(cache: SemanticCache) -> dict[str, CacheEntry]:
    return {entry.key: entry async for batch in cache.iter_entries(1000) for entry in batch}


async def test_reembed_switch_keeps_every_entry_and_old_index_until_finalize(
    make_store: StoreMaker, embedder: SharedEmbedder, target_embedder: SharedTarget
) -> None:
    cache = await filled(make_store, embedder)
    before = await entries_of(cache)
    seen: list[MigrationProgress] = []
    late = StoreRequest("Which planet is the largest?", "Jupiter.", "space", {"late": True}, 1200)

    state = await run_migration(
        cache, TARGET, make_store, embedder=target_embedder, progress=seen.append, batch=4
    )
    assert state.phase == "switched" and state.total == len(before)
    assert seen and seen[-1].done == seen[-1].total == len(before)
    assert any(p.eta_seconds is not None for p in seen)

    active, status = await migration_status(cache)
    assert active == next_physical_name(cache.vector_store.name) == state.target_index
    assert status is not None and status.phase == "switched"

    new = SemanticCache(make_store(active), target_embedder, CachePolicy())
    assert (await new.start()).dimension == 256
    after = await entries_of(new)
    assert after.keys() == before.keys()
    for key, entry in before.items():
        copy = after[key]
        assert (copy.scope, copy.prompt, copy.response, copy.metadata) == (
            entry.scope,
            entry.prompt,
            entry.response,
            entry.metadata,
        )
        assert copy.created_at == pytest.approx(entry.created_at)
        assert (copy.expires_at is None) == (entry.expires_at is None)
        if entry.expires_at is not None:
            assert copy.expires_at == pytest.approx(entry.expires_at)
    # A paraphrase is found by its 256-dimension vector, not by the exact-repeat path.
    nearest = await new.nearest("What's the capital city of France?", scope="geo", k=1)
    assert nearest[0].entry.response == "Paris."
    result = await new.check("What is the square of 7?", scope="math")
    assert result.is_hit and result.best is not None and result.best.entry.response == "49."

    # The old index is untouched until finalize; a replica still on the old configuration may write there,
    # and finalize carries that write over before dropping the old index.
    assert await cache.vector_store.count() == len(before)
    await cache.store_many([late])
    deleted = await finalize_migration(cache, make_store, embedder=target_embedder)
    assert deleted == len(before) + 1
    carried = await new.get(entry_key("space", late.prompt))
    assert carried is not None and carried.response == "Jupiter." and carried.metadata == {"late": True}
    assert await new.vector_store.count() == len(before) + 1
    await assert_dropped(make_store, cache.vector_store.name)
    _, status = await migration_status(cache)
    assert status is not None and status.phase == "finalized"
    with pytest.raises(InvalidInputError):
        await rollback_migration(cache, make_store)
    await new.close()
    await cache.close()


async def test_writes_during_the_migration_are_caught_up(
    make_store: StoreMaker, embedder: SharedEmbedder, target_embedder: SharedTarget
) -> None:
    cache = await filled(make_store, embedder)
    late = [
        StoreRequest("Which planet is the largest?", "Jupiter.", "space", {"late": True}, 1200),
        StoreRequest("What is the boiling point of water?", "100 C.", "default", {}, 0),
    ]
    pending: list[StoreRequest] = list(late)
    calls = 0

    async def write_meanwhile() -> None:
        await cache.store_many([pending.pop()])

    tasks = []

    def progress(p: MigrationProgress) -> None:
        nonlocal calls
        calls += 1
        if pending and p.phase == "copying":
            tasks.append(asyncio.get_running_loop().create_task(write_meanwhile()))

    # Writes land between batches (the tasks run while the migration awaits the store).
    state = await run_migration(
        cache, TARGET, make_store, embedder=target_embedder, progress=progress, batch=3
    )
    await asyncio.gather(*tasks)
    assert not pending and calls >= 2
    new = SemanticCache(make_store(state.target_index), target_embedder, CachePolicy())
    after = await entries_of(new)
    assert {r.prompt for r in late} <= {e.prompt for e in after.values()}
    assert len(after) == len(REQUESTS) + len(late)
    await new.close()
    await cache.close()


async def test_interrupted_migration_resumes_without_duplicates(
    make_store: StoreMaker, embedder: SharedEmbedder, target_embedder: SharedTarget
) -> None:
    cache = await filled(make_store, embedder)
    calls = 0

    def explode(p: MigrationProgress) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # the operator pressed Ctrl-C midway

    with pytest.raises(KeyboardInterrupt):
        await run_migration(cache, TARGET, make_store, embedder=target_embedder, progress=explode, batch=4)
    active, status = await migration_status(cache)
    assert active == cache.vector_store.name  # still serving from the old index
    assert status is not None and status.phase == "copying" and 0 < status.done < len(REQUESTS)
    # A migration in progress to another target is refused instead of mixed.
    with pytest.raises(InvalidInputError, match="in progress"):
        await run_migration(cache, None, make_store, embedder=embedder, strategy="reembed")

    resumed: list[MigrationProgress] = []
    state = await run_migration(
        cache, TARGET, make_store, embedder=target_embedder, progress=resumed.append, batch=4
    )
    assert state.phase == "switched" and resumed[0].done > 4
    new = SemanticCache(make_store(state.target_index), target_embedder, CachePolicy())
    assert await new.vector_store.count() == len(REQUESTS)
    assert len(await entries_of(new)) == len(REQUESTS)
    await new.close()
    await cache.close()


async def test_rollback_serves_the_old_index_with_the_old_embedder(
    make_store: StoreMaker, embedder: SharedEmbedder, target_embedder: SharedTarget
) -> None:
    cache = await filled(make_store, embedder)
    state = await run_migration(cache, TARGET, make_store, embedder=target_embedder)
    # A server that followed the switch stores an answer in the new index before the operator rolls back.
    new = SemanticCache(make_store(state.target_index), target_embedder, CachePolicy())
    await new.start()
    await new.store("Which planet is the largest?", "Jupiter.", scope="space", metadata={"after": "switch"})
    await new.close()

    back = await rollback_migration(cache, make_store, embedder=embedder)
    assert back.phase == "rolled_back" and back.caught_up >= 1
    active, _ = await migration_status(cache)
    assert active == cache.vector_store.name == state.source_index
    old = SemanticCache(make_store(active), embedder, CachePolicy())
    result = await old.check("what's the capital of France", scope="geo", threshold=0.3)
    assert result.is_hit and not result.exact
    # The write made after the switch was carried back, re-embedded by the old embedder: nothing is lost.
    assert await old.vector_store.count() == len(REQUESTS) + 1
    carried = await old.check("What is the biggest planet?", scope="space", threshold=0.3)
    assert carried.is_hit and carried.best is not None and carried.best.entry.metadata == {"after": "switch"}
    # The old embedder cannot open the new index: identities never mix.
    with pytest.raises(IndexMismatchError):
        await SemanticCache(make_store(state.target_index), embedder).start()
    await old.close()
    await cache.close()


async def assert_dropped(make_store: StoreMaker, name: str) -> None:
    """The retired index is gone, not merely emptied: opening its name finds nothing recorded."""
    reopened = make_store(name)
    assert await reopened.open() is None
    if reopened.kind == "redis":
        with pytest.raises(IndexMissingError):
            await reopened.count()
    else:
        assert await reopened.count() == 0


async def test_recreate_empties_and_rebinds(
    make_store: StoreMaker, embedder: SharedEmbedder, target_embedder: SharedTarget
) -> None:
    cache = await filled(make_store, embedder)
    state = await run_migration(cache, TARGET, make_store, strategy="recreate", embedder=target_embedder)
    assert state.phase == "finalized" and state.total == len(REQUESTS)
    active, _ = await migration_status(cache)
    assert active == state.target_index
    new = SemanticCache(make_store(active), target_embedder, CachePolicy())
    assert (await new.start()).dimension == 256
    assert await new.vector_store.count() == 0
    await assert_dropped(make_store, cache.vector_store.name)
    await new.store("Who painted the Mona Lisa?", "Leonardo.")
    assert (await new.check("Who painted the Mona Lisa?")).is_hit
    await new.close()
    await cache.close()


async def test_plan_counts_and_changes_nothing(
    make_store: StoreMaker, embedder: SharedEmbedder, target_embedder: SharedTarget
) -> None:
    cache = await filled(make_store, embedder)
    plan = await plan_migration(cache, TARGET, embedder=target_embedder)
    assert plan.entries == len(REQUESTS)
    assert plan.source is not None and plan.source.dimension == 384 and plan.target.dimension == 256
    assert plan.changes == ["dimension: 384 -> 256"]
    assert plan.embed_rate > 0 and plan.estimated_seconds >= 0
    assert plan.bytes_before - plan.bytes_after == len(REQUESTS) * 128 * 4
    assert plan.target_index == f"{cache.vector_store.name}__v2"
    assert json.dumps(plan.to_dict())
    active, status = await migration_status(cache)
    assert active == cache.vector_store.name and status is None
    assert await cache.vector_store.count() == len(REQUESTS)
    with pytest.raises(InvalidInputError, match="already"):
        await run_migration(cache, MigrationTarget(model=MODEL), make_store, embedder=embedder)
    await cache.close()


def test_physical_names() -> None:
    assert next_physical_name("cache") == "cache__v2"
    assert next_physical_name("cache__v2") == "cache__v3"
    assert logical_name("cache__v12") == logical_name("cache") == "cache"


async def test_build_cache_follows_the_pointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: SharedEmbedder, target_embedder: SharedTarget
) -> None:
    monkeypatch.setenv("SEMCACHE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CACHE_INDEX_NAME", "idx")
    settings = Settings.load()
    from engine.stores import create_store

    cache = build_cache(settings)
    assert cache.vector_store.name == "idx"
    cache.embedder = embedder
    await cache.start()
    await cache.store_many(REQUESTS[:4])
    await run_migration(cache, TARGET, lambda name: create_store(settings, name), embedder=target_embedder)
    await cache.close()

    moved = build_cache(settings)
    assert moved.vector_store.name == "idx__v2"
    assert (await moved.open_store()) == target_embedder.identity
    assert await moved.vector_store.count() == 4
    await rollback_migration(moved, lambda name: create_store(settings, name), embedder=embedder)
    await moved.close()
    assert build_cache(settings).vector_store.name == "idx"


def run_migrate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(tmp_path / "data", "migrate", *args, env={"CACHE_INDEX_NAME": "idx"})


async def test_cli_plan_and_status(tmp_path: Path, embedder: SharedEmbedder) -> None:
    from engine.stores.local import LocalStore

    cache = SemanticCache(LocalStore(tmp_path / "data", name="idx"), embedder, CachePolicy())
    await cache.start()
    await cache.store_many(REQUESTS)
    await cache.close()

    done = run_migrate(tmp_path, "plan", "--to-model", MODEL, "--to-dimension", "256", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["entries"] == len(REQUESTS) and plan["target"]["dimension"] == 256
    assert plan["changes"] == ["dimension: 384 -> 256"]

    done = run_migrate(tmp_path, "status")
    assert done.returncode == 0, done.stderr
    assert "idx" in done.stdout and "no migration" in done.stdout

    done = run_migrate(tmp_path, "finalize", "--yes")
    assert done.returncode == 3 and done.stderr.count("\n") == 1 and done.stderr.startswith("semcache-tui: ")

    done = run_migrate(tmp_path, "run", "--to-model", MODEL, "--to-dimension", "256", "--yes", "--read-only")
    assert done.returncode == 7 and done.stderr.startswith("semcache-tui: ")


def test_the_target_embedder_runs_where_the_operator_said(monkeypatch: pytest.MonkeyPatch) -> None:
    """EMBEDDING_BACKEND holds for the migration's target embedder too, from the command line's settings."""
    import argparse

    from engine.migration import MigrationTarget
    from semcache_tui.cli.migrate import _target

    monkeypatch.setenv("EMBEDDING_BACKEND", "torch")
    args = argparse.Namespace(to_model=None, to_dimension=256, to_provider=None)
    target = _target(args, Settings.load())
    assert target.backend == "torch" and target.dimension == 256
    embedder = target.create_embedder()
    assert isinstance(embedder, SentenceTransformerEmbedder) and embedder.backend == "torch"
    assert MigrationTarget(MODEL, 256).create_embedder().backend == "auto"  # type: ignore[attr-defined]


async def test_commands_after_a_migration_use_the_embedder_it_filled_the_index_with(
    tmp_path: Path, embedder: SharedEmbedder
) -> None:
    """After `migrate run`, scripts still configured for the old embedder keep working (no mismatch error),
    and an explicit setting that disagrees with the migration is named in a warning."""
    from engine.stores.local import LocalStore

    cache = SemanticCache(LocalStore(tmp_path / "data", name="idx"), embedder, CachePolicy())
    await cache.start()
    await cache.store_many(REQUESTS)
    await cache.close()
    done = run_migrate(tmp_path, "run", "--to-model", MODEL, "--to-dimension", "256", "--yes")
    assert done.returncode == 0, done.stderr

    env = {"CACHE_INDEX_NAME": "idx"}
    done = run_cli(tmp_path / "data", "check", REQUESTS[1].prompt, "--json", env=env)
    assert done.returncode == 0, done.stderr  # a hit, served from idx__v2 by the 256-dimension embedder
    assert "filled by a migration" not in done.stderr  # no dimension configured: the migration's is used
    done = run_cli(tmp_path / "data", "index", "--json", env=env)
    info = json.loads(done.stdout)
    assert info["name"] == "idx__v2" and info["identity"]["dimension"] == 256

    done = run_cli(
        tmp_path / "data", "check", REQUESTS[1].prompt, env=env | {"EMBEDDING_OUTPUT_DIMENSION": "384"}
    )
    assert done.returncode == 0, done.stderr
    assert "idx__v2 was filled by a migration with sentence-transformers" in done.stderr

    done = run_migrate(tmp_path, "rollback")
    assert done.returncode == 0, done.stderr
    done = run_cli(tmp_path / "data", "index", "--json", env=env)
    assert json.loads(done.stdout)["identity"]["dimension"] == 384


async def test_a_store_says_whether_its_index_exists_without_creating_it(
    make_store: Callable[..., VectorStore],
) -> None:
    """What the migration screen asks of a rolled-back target: both stores answer, and asking creates
    nothing (opening a local store would create its file; binding creates a Redis index)."""
    from engine.models import EmbedderIdentity

    store = make_store()
    assert await store.exists() is False
    assert await store.exists() is False  # asking twice still creates nothing
    await store.open()
    await store.bind(EmbedderIdentity("test", "synthetic", 8))
    assert await store.exists() is True
    await store.drop()
    assert await make_store().exists() is False
