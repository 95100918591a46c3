"""The documented least-privilege Redis user (deploy/redis/semcache.acl) on a real Redis Stack: with
exactly those rights every cache operation works; without one, the error is one line naming it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis

from engine.cache import CachePolicy, SemanticCache
from engine.config import Settings
from engine.errors import BackendUnavailableError
from engine.stores.redis import RedisStore
from tests.conftest import SharedEmbedder, unique_index_name
from tests.support.redis_server import RedisServer
from tests.support.server_process import ROOT

ACL_FILE = ROOT / "deploy" / "redis" / "semcache.acl"
PASSWORD = "acl-test-password"


def _rules(index: str, *, without: str | None = None) -> list[str]:
    line = next(line for line in ACL_FILE.read_text().splitlines() if line.startswith("user semcache "))
    tokens = line.split()[2:]  # after "user semcache"
    tokens = [f">{PASSWORD}" if t.startswith(">") else t.replace("semantic_cache", index) for t in tokens]
    return [t for t in tokens if t != without]


def _acl_user(server: RedisServer, index: str, *, without: str | None = None) -> str:
    admin = server.client()
    try:
        admin.execute_command("ACL", "DELUSER", "semcache")
        admin.execute_command("ACL", "SETUSER", "semcache", "reset", *_rules(index, without=without))
    finally:
        admin.close()
    return f"redis://semcache:{PASSWORD}@{server.host}:{server.port}"


async def _everything(url: str, index: str, embedder: SharedEmbedder, tmp_path: Path) -> None:
    settings = Settings.load(redis_url=url, index_name=index, data_dir=tmp_path)
    cache = SemanticCache(RedisStore.from_settings(settings), embedder, CachePolicy())
    try:
        await cache.start()
        entry = await cache.store("What is the capital of Spain?", "Madrid.", scope="geo", ttl=600)
        result = await cache.check("What is the capital of Spain?", scope="geo")
        assert result.is_hit
        assert not (await cache.check("How do bees make honey?", scope="geo")).is_hit
        await cache.vector_store.record_feedback(entry.key, "q1", correct=False)
        assert (await cache.stats()).entries == 1
        assert (await cache.list_entries()).total == 1
        assert (await cache.index_info()).documents == 1
        assert (await cache.health()).status == "healthy"
        assert (await cache.health()).status == "healthy"  # polled again: CONFIG GET is not asked twice
        assert await cache.purge_expired() >= 0
        assert await cache.delete(entry.key)
        await cache.store("Second question?", "Second answer.")
        assert await cache.clear() >= 1
        await cache.vector_store.drop()
    finally:
        await cache.close()


async def test_the_documented_acl_user_can_do_everything_the_cache_does(
    redis_server: RedisServer, embedder: SharedEmbedder, tmp_path: Path
) -> None:
    index = unique_index_name()
    url = _acl_user(redis_server, index)
    try:
        await _everything(url, index, embedder, tmp_path)
        admin = redis_server.client()
        refused = admin.execute_command("ACL", "LOG", "10")
        admin.close()
        # The one refusal allowed: health's first poll asks CONFIG GET for persistence (two settings), is
        # refused (config|get is left out of the ACL on purpose: it would read every setting), and never
        # asks again, however often it is polled.
        probes = [entry for entry in refused if entry.get(b"object") == b"config|get"]
        others = [entry for entry in refused if entry not in probes]
        assert not others, others  # not even a refusal the cache shrugged off
        assert sum(int(entry.get(b"count", 1)) for entry in probes) <= 2, probes
    finally:
        _drop_user(redis_server)


def _drop_user(server: RedisServer) -> None:
    admin = server.client()
    try:
        admin.execute_command("ACL", "DELUSER", "semcache")
        admin.execute_command("ACL", "LOG", "RESET")
    finally:
        admin.close()


@pytest.mark.parametrize("missing", ["+ft.search", "+hset", "+eval"])
async def test_a_user_missing_a_right_gets_one_line_naming_it(
    redis_server: RedisServer, embedder: SharedEmbedder, tmp_path: Path, missing: str
) -> None:
    index = unique_index_name()
    url = _acl_user(redis_server, index, without=missing)
    try:
        with pytest.raises(BackendUnavailableError) as raised:
            await _everything(url, index, embedder, tmp_path)
    finally:
        _drop_user(redis_server)
    message = str(raised.value)
    assert "\n" not in message and "lacks a permission" in message, message
    command = missing.lstrip("+")
    assert re.search(rf"'{re.escape(command)}'", message, re.IGNORECASE), message
    assert PASSWORD not in message


def test_the_acl_line_is_accepted_by_redis_as_written(redis_server: RedisServer) -> None:
    admin = redis_server.client()
    try:
        admin.execute_command("ACL", "SETUSER", "semcache-check", "reset", *_rules("semantic_cache"))
        described = admin.execute_command("ACL", "GETUSER", "semcache-check")
        assert described is not None
    except redis.ResponseError as exc:  # pragma: no cover - the failure is the message
        pytest.fail(f"Redis refuses deploy/redis/semcache.acl: {exc}")
    finally:
        admin.execute_command("ACL", "DELUSER", "semcache-check")
        admin.close()
