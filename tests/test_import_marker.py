"""An import killed half-way is visible until it is run again to the end (issue 11, defect 13).

The store keeps a note (``VectorStore.set_note``) while an import writes; the real stores, the real model
and the real command line show it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.backup import export_entries, import_entries
from engine.backup import format as backup_format
from engine.cache import CachePolicy, SemanticCache, StoreRequest
from engine.stores.base import IMPORT_NOTE, VectorStore
from tests.conftest import shared_embedder
from tests.support.cli import run_cli

REQUESTS = [StoreRequest(f"What is fact number {i} about imports?", f"Fact {i}.") for i in range(23)]


class Interrupted(Exception):
    """Raised from a progress callback: the import stops between two batches, as a kill would."""


async def test_notes_are_set_replaced_removed_shared_kept_by_clear_and_removed_by_drop(make_store) -> None:  # type: ignore[no-untyped-def]
    store: VectorStore = make_store()
    await store.open()
    assert await store.notes() == {}
    await store.set_note("import", {"file": "a.jsonl.gz", "written": 0})
    await store.set_note("import", {"file": "a.jsonl.gz", "written": 5})
    await store.set_note("other", {"x": [1, 2]})
    other: VectorStore = make_store()  # another process's view of the same index
    await other.open()
    assert await other.notes() == {"import": {"file": "a.jsonl.gz", "written": 5}, "other": {"x": [1, 2]}}
    await store.set_note("other", None)
    await store.set_note("never-set", None)
    assert await other.notes() == {"import": {"file": "a.jsonl.gz", "written": 5}}
    await store.bind(shared_embedder().identity)  # type: ignore[arg-type]
    await store.clear()
    assert set(await store.notes()) == {"import"}
    await store.drop()
    fresh: VectorStore = make_store()
    await fresh.open()
    assert await fresh.notes() == {}


@pytest.fixture
async def filled(make_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A started cache on each store, a backup of it (several batches), and the cache emptied."""
    monkeypatch.setattr(backup_format, "BATCH", 5)
    cache = SemanticCache(make_store(), shared_embedder(), CachePolicy())
    await cache.start()
    await cache.store_many(REQUESTS)
    summary = await export_entries(cache, tmp_path / "backup.jsonl.gz", include_vectors=True)
    await cache.clear()
    yield cache, summary.path
    await cache.close()


async def _interrupted_import(cache: SemanticCache, path: Path, after: int) -> None:
    def progress(done: int, total: int) -> None:
        if done >= after:
            raise Interrupted

    with pytest.raises(Interrupted):
        await import_entries(cache, path, progress=progress)


async def test_an_interrupted_import_leaves_its_marker_and_a_rerun_clears_it(filled) -> None:  # type: ignore[no-untyped-def]
    cache, path = filled
    await _interrupted_import(cache, path, after=10)

    marker = (await cache.vector_store.notes())[IMPORT_NOTE]
    assert marker["file"] == str(path)
    assert (marker["written"], marker["total"]) == (10, len(REQUESTS))
    assert marker["started_at"] > 0
    store = (await cache.health()).component("store")
    assert store is not None and store.facts["import_incomplete"] == marker
    assert (await cache.index_info()).extra["import_incomplete"] == marker
    assert await cache.vector_store.count() == 10  # the partial cache the marker warns about

    summary = await import_entries(cache, path)
    assert summary.written == len(REQUESTS)
    assert IMPORT_NOTE not in await cache.vector_store.notes()
    store = (await cache.health()).component("store")
    assert store is not None and "import_incomplete" not in store.facts
    assert "import_incomplete" not in (await cache.index_info()).extra


async def test_an_import_that_fails_before_writing_leaves_no_marker(filled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache, _ = filled
    damaged = tmp_path / "damaged.jsonl.gz"
    damaged.write_bytes(b"not a backup")
    with pytest.raises(Exception):  # noqa: B017 - the kind is the format's business; no marker is ours
        await import_entries(cache, damaged)
    assert IMPORT_NOTE not in await cache.vector_store.notes()


@pytest.mark.parametrize("store_kind", ["local"])
async def test_backup_list_and_health_print_the_marker(filled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache, path = filled
    await _interrupted_import(cache, path, after=5)
    env = {"CACHE_INDEX_NAME": cache.vector_store.name}
    data_dir = tmp_path / "data"

    listed = run_cli(data_dir, "backup", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "import incomplete" in listed.stderr and str(path) in listed.stderr
    assert "5 of 23 entries written" in listed.stderr
    as_json = run_cli(data_dir, "backup", "list", "--json", env=env)
    assert json.loads(as_json.stdout)["import_incomplete"]["written"] == 5

    health = run_cli(data_dir, "health", env=env)
    assert "import incomplete" in health.stdout + health.stderr

    await import_entries(cache, path)
    listed = run_cli(data_dir, "backup", "list", env=env)
    assert "import incomplete" not in listed.stderr
