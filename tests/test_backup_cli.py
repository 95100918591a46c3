"""`semcache-tui backup ...` as cron runs it: a subprocess with no terminal, quiet on success, one line and
a documented exit code on failure, refused with --read-only."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from engine.backup import export_entries
from engine.cache import CachePolicy, SemanticCache, StoreRequest
from tests.conftest import SharedEmbedder
from tests.support.cli import run_cli
from tests.support.redis_server import RedisServer

REQUESTS = [
    StoreRequest("What is the capital of France?", "Paris.", "geo", {"model": "gpt-x"}, 3600),
    StoreRequest("How many legs does a spider have?", "Eight.", "default", {}, 0),
    StoreRequest("Who wrote Hamlet?", "Shakespeare.", "books", {"tags": ["lit"]}, 600),
]


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command as cron runs it: no terminal on stdin, stdout or stderr."""
    return run_cli(tmp_path / "data", "backup", *args, env={"CACHE_INDEX_NAME": "idx"} | (env or {}))


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semcache-tui: "), done.stderr
    return lines[0]


async def local_cache(tmp_path: Path, embedder: SharedEmbedder, name: str = "idx") -> SemanticCache:
    from engine.stores.local import LocalStore

    cache = SemanticCache(LocalStore(tmp_path / "data", name=name), embedder, CachePolicy())
    await cache.start()
    return cache


async def filled(tmp_path: Path, embedder: SharedEmbedder) -> None:
    cache = await local_cache(tmp_path, embedder)
    try:
        await cache.store_many(REQUESTS)
    finally:
        await cache.close()


async def test_create_list_prune_quietly(tmp_path: Path, embedder: SharedEmbedder) -> None:
    await filled(tmp_path, embedder)
    backups = tmp_path / "data" / "backups"

    done = run(tmp_path, "create")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    [created] = list(backups.iterdir())
    assert created.name.startswith("semcache-idx-") and created.name.endswith("Z.jsonl.gz")
    header = json.loads(gzip.decompress(created.read_bytes()).splitlines()[0])
    assert header["count"] == 3 and header["store"] == "local" and header["vectors"] is False

    verbose = run(tmp_path, "create", "-v")
    assert verbose.returncode == 0 and "wrote" in verbose.stdout and "3 entries" in verbose.stdout

    listed = run(tmp_path, "list")
    assert listed.returncode == 0 and created.name in listed.stdout and "export" in listed.stdout
    as_json = json.loads(run(tmp_path, "list", "--json").stdout)
    assert len(as_json["backups"]) == 2 and as_json["directory"] == str(backups)

    week_ago = time.time() - 8 * 86400
    os.utime(created, (week_ago, week_ago))
    pruned = run(tmp_path, "prune", "--keep-days", "7")
    assert (pruned.returncode, pruned.stdout) == (0, "")
    assert not created.exists() and len(list(backups.iterdir())) == 1

    one_line_error(run(tmp_path, "prune", "--keep-days", "0"), 2)

    elsewhere = tmp_path / "elsewhere"
    moved = run(tmp_path, "create", env={"SEMCACHE_BACKUP_DIR": str(elsewhere)})
    assert moved.returncode == 0 and len(list(elsewhere.iterdir())) == 1


async def test_read_only_refuses_every_action_but_list(tmp_path: Path, embedder: SharedEmbedder) -> None:
    await filled(tmp_path, embedder)
    cache = await local_cache(tmp_path, embedder)
    try:
        path = (await export_entries(cache, tmp_path / "in.jsonl.gz", include_vectors=False)).path
    finally:
        await cache.close()
    for action in (
        ["create"],
        ["prune", "--keep-days", "3"],
        ["export", str(tmp_path / "out.jsonl.gz")],
        ["import", str(path)],
        ["restore", str(path), "--yes"],
    ):
        line = one_line_error(run(tmp_path, *action, "--read-only"), 7)
        assert "--read-only" in line
    assert not (tmp_path / "data" / "backups").exists() and not (tmp_path / "out.jsonl.gz").exists()
    assert run(tmp_path, "list", "--read-only").returncode == 0


async def test_import_and_restore_without_a_terminal(tmp_path: Path, embedder: SharedEmbedder) -> None:
    await filled(tmp_path, embedder)
    exported = run(tmp_path, "export", str(tmp_path / "out.jsonl.gz"), "--json")
    assert exported.returncode == 0 and json.loads(exported.stdout)["count"] == 3
    one_line_error(run(tmp_path, "export", str(tmp_path / "out.jsonl.gz")), 2)  # exists: needs --force

    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(b"not a backup")
    assert "not a gzip file" in one_line_error(run(tmp_path, "import", str(bad)), 2)
    assert "no backup file" in one_line_error(run(tmp_path, "import", str(tmp_path / "nope.gz")), 3)

    fresh = {"CACHE_INDEX_NAME": "fresh"}
    done = run(tmp_path, "import", str(tmp_path / "out.jsonl.gz"), "--json", env=fresh)
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) | {"path": None} == {
        "path": None,
        "total": 3,
        "written": 3,
        "expired_skipped": 0,
        "embedded": 3,
        "reused_vectors": False,
    }

    run(tmp_path, "create")
    refused = run(tmp_path, "restore", "latest", env=fresh)
    assert "pass --yes" in one_line_error(refused, 2)
    restored = run(tmp_path, "restore", "latest", "--yes", "--replace", env=fresh)
    assert (restored.returncode, restored.stdout, restored.stderr) == (0, "", "")
    assert "no backup named" in one_line_error(run(tmp_path, "restore", "nothing-here", "--yes"), 3)

    cache = await local_cache(tmp_path, embedder, name="fresh")
    try:
        entries = (await cache.list_entries(limit=10)).entries
    finally:
        await cache.close()
    assert sorted(e.prompt for e in entries) == sorted(r.prompt for r in REQUESTS)


async def test_redis_create_with_snapshot_keeps_the_password_out(
    tmp_path: Path, redis_server_factory: Callable[..., RedisServer], embedder: SharedEmbedder
) -> None:
    from engine.stores.redis import RedisStore

    password = "hunter2-Very-Secret"
    server = redis_server_factory(password=password)
    redis = ["--store", "redis", "--redis-url", server.url]
    missing = run(tmp_path, "create", *redis)
    assert "index idx does not exist" in one_line_error(missing, 5)
    cache = SemanticCache(RedisStore(server.url, name="idx"), embedder, CachePolicy())
    try:
        await cache.start()
        await cache.store_many(REQUESTS)
    finally:
        await cache.close()
    done = run(tmp_path, "create", "--snapshot", "--json", *redis)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert password not in done.stdout + done.stderr
    export = Path(report["export"]["path"])
    rdb = Path(report["snapshot"]["copied_to"])
    assert export.parent == rdb.parent == tmp_path / "data" / "backups"
    assert report["export"]["count"] == 3
    assert password not in gzip.decompress(export.read_bytes()).decode()
    assert rdb.name.startswith("semcache-idx-") and rdb.read_bytes()[:5] == b"REDIS"

    # The RDB restore prints its steps and, without a terminal or --yes, changes nothing.
    dump = server.workdir / "dump.rdb"
    before = dump.read_bytes()
    refused = run(tmp_path, "restore", "--rdb", str(rdb), *redis)
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    assert "SHUTDOWN NOSAVE" in refused.stdout and str(dump) in refused.stdout
    assert password not in refused.stdout + refused.stderr
    # With --yes but Redis still running, the dump file is left alone too.
    running = run(tmp_path, "restore", "--rdb", str(rdb), "--yes", *redis)
    assert "still running" in one_line_error(running, 2)
    assert dump.read_bytes() == before

    unreachable = run(tmp_path, "create", "--store", "redis", "--redis-url", "redis://127.0.0.1:1")
    one_line_error(unreachable, 4)


def test_snapshot_is_refused_for_the_local_store(tmp_path: Path) -> None:
    assert "--snapshot is for the Redis store" in one_line_error(run(tmp_path, "create", "--snapshot"), 2)


def test_listing_backups_creates_no_cache(tmp_path: Path) -> None:
    """``backup list`` on a machine with no cache yet says so and leaves nothing behind: opening the store
    to look for an interrupted import would have created an empty data file."""
    done = run(tmp_path, "list", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["backups"] == []
    assert not (tmp_path / "data" / "idx.sqlite3").exists()
