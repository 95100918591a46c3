"""Redis high availability: Sentinel configuration, writes confirmed by replicas (WAIT), and a real failover.

The failover test runs real processes from the redis-stack binaries, all on loopback: a primary, a replica
(``--replicaof``), three Sentinels, and a semcache server configured through REDIS_SENTINELS with
SEMCACHE_REDIS_WAIT_REPLICAS=1. It kills the primary with SIGKILL and waits (on conditions, never a fixed
sleep) for the server to follow the promoted replica.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis as redis_sync
from redis import exceptions as rex

from engine.config import Settings
from engine.errors import BackendUnavailableError, ConfigError
from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.redis import RedisStore
from engine.stores.redis.connection import (
    NotReplicatedError,
    make_client,
    parse_sentinel_url,
    translate,
)
from tests.support.redis_server import RedisServer, RedisStackPaths, SentinelServer
from tests.support.server_process import ServerProcess

#: Sentinel timings for the test: low, so a failover takes seconds (Sentinel's defaults take a minute).
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000
#: How long any one condition may take on a busy machine before the test gives up.
DEADLINE = 120.0
#: How long the server waits for a replica to confirm a write (SEMCACHE_REDIS_WAIT_TIMEOUT).
WAIT_TIMEOUT = 5.0
ENTRIES = 40
SERVICE = "semcache"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> float:
    """Poll ``condition`` until true; the seconds it took. ``TimeoutError`` naming ``what`` otherwise."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not true after {timeout:.0f} s")


# -- configuration --------------------------------------------------------------------------------------


def test_sentinel_url_names_sentinels_service_db_and_the_data_nodes_credentials() -> None:
    address = parse_sentinel_url("redis+sentinel://app:p%40ss@10.0.0.1:26379,sentinel-b,[::1]:26380/cache/3")
    assert address.sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26379), ("::1", 26380))
    assert (address.service, address.db, address.username, address.password) == ("cache", 3, "app", "p@ss")
    for bad in ("redis+sentinel://h:1", "redis+sentinel://h:1/a/b/c", "redis+sentinel://h:99999/a"):
        with pytest.raises(ValueError):
            parse_sentinel_url(bad)


def test_redis_sentinels_and_master_become_one_sentinel_url() -> None:
    settings = Settings(
        REDIS_SENTINELS="127.0.0.1:26379, 127.0.0.1:26380",
        REDIS_SENTINEL_MASTER="cache",
        REDIS_SENTINEL_PASSWORD="sentinel-secret",
    )
    assert settings.redis_url == "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/cache"
    assert settings.store_kind == "redis"
    assert "sentinel-secret" not in repr(settings)
    with pytest.raises(ConfigError, match="REDIS_SENTINEL_MASTER"):
        Settings.load(redis_sentinels="127.0.0.1:26379")
    with pytest.raises(ConfigError, match="REDIS_SENTINELS"):
        Settings.load(redis_sentinels="h:1", redis_sentinel_master="m", redis_url="redis://h:6379")
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.load(redis_url="redis+sentinel://h:26379")
    with pytest.raises(ConfigError, match="SEMCACHE_REDIS_WAIT_REPLICAS"):
        Settings.load(redis_wait_replicas=-1)


def test_a_password_in_a_sentinel_url_is_redacted() -> None:
    settings = Settings(REDIS_URL="redis+sentinel://:hunter22@h1:26379,h2:26379/cache")
    assert settings.safe_redis_url == "redis+sentinel://:***@h1:26379,h2:26379/cache"


def test_an_unknown_redis_refusal_names_its_kind_never_the_command_or_its_arguments() -> None:
    refusal = rex.ResponseError("ERR wrong number of arguments for 'hset' command: secret-prompt")
    error = translate(refusal, "redis://localhost:6379", (), "semantic_cache")
    assert isinstance(error, BackendUnavailableError)
    assert "hset" not in str(error) and "secret-prompt" not in str(error)
    assert "(ERR)" in error.message and error.hint and "Redis server log" in error.hint
    assert "\n" not in str(error)
    busy = translate(rex.ResponseError("MISCONF Redis is configured to save RDB snapshots"), "r", (), "i")
    assert "cannot persist" in busy.message
    waited = translate(NotReplicatedError(2, 1, 0.5), "redis://r:6379", (), "i")
    assert "WAIT" in waited.message and "may still exist on the primary" in waited.message


# -- WAIT against a Redis without replicas ----------------------------------------------------------------


IDENTITY = EmbedderIdentity("test", "unit", 4)


def _entry(n: int) -> tuple[CacheEntry, np.ndarray]:
    entry = CacheEntry(key=f"k{n}", scope="default", prompt=f"p{n}", response=f"r{n}", created_at=time.time())
    return entry, np.eye(4, dtype=np.float32)[n % 4]


async def test_a_write_no_replica_confirms_is_an_error_naming_wait(redis_url: str) -> None:
    name = f"wait_{uuid.uuid4().hex[:8]}"
    plain = RedisStore(redis_url, name=name)
    await plain.open()
    await plain.bind(IDENTITY)
    await plain.upsert([_entry(1)])
    store = RedisStore(redis_url, name=name, wait_replicas=1, wait_timeout=0.2)
    try:
        await store.open()
        await store.bind(IDENTITY)
        for attempt in (
            lambda: store.upsert([_entry(2)]),
            lambda: store.record_feedback("k1", "q", False),
            lambda: store.delete("k1"),
            store.clear,
        ):
            with pytest.raises(BackendUnavailableError, match="WAIT") as caught:
                await attempt()
            assert "may still exist on the primary" in caught.value.message
    finally:
        await store.close()
        await plain.drop()


async def test_wait_zero_sends_no_wait(redis_url: str) -> None:
    name = f"nowait_{uuid.uuid4().hex[:8]}"
    store = RedisStore(redis_url, name=name, wait_replicas=0)
    try:
        await store.open()
        await store.bind(IDENTITY)
        await store.upsert([_entry(1)])
        assert await store.delete("k1")
    finally:
        await store.drop()


# -- a real failover --------------------------------------------------------------------------------------


@dataclass
class Replicated:
    """A primary, its replica and three Sentinels watching them, all on loopback."""

    primary: RedisServer
    replica: RedisServer
    sentinels: list[SentinelServer]
    killed: list[RedisServer] = field(default_factory=list)

    @property
    def sentinel_list(self) -> str:
        return ",".join(s.address for s in self.sentinels)

    def primary_now(self) -> tuple[str, int] | None:
        """Where a majority of the Sentinels say the primary is."""
        answers = [s.primary_address() for s in self.sentinels]
        for answer in answers:
            if answer is not None and answers.count(answer) >= 2:
                return answer
        return None


def _link_up(server: RedisServer) -> bool:
    client = server.client()
    try:
        return client.info("replication").get("master_link_status") == "up"
    except redis_sync.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture
def replicated(redis_stack_paths: RedisStackPaths) -> Iterator[Replicated]:
    primary = RedisServer(redis_stack_paths).start()
    replica = RedisServer(redis_stack_paths, replica_of=(primary.host, primary.port))
    sentinels: list[SentinelServer] = []
    try:
        replica.start()
        wait_for(lambda: _link_up(replica), "the replica is in sync with the primary")
        for _ in range(3):
            sentinel = SentinelServer(
                redis_stack_paths,
                (primary.host, primary.port),
                service=SERVICE,
                down_after_ms=DOWN_AFTER_MS,
                failover_timeout_ms=FAILOVER_TIMEOUT_MS,
            )
            sentinels.append(sentinel)
            sentinel.start()
        # A failover needs a quorum of Sentinels that know each other and a replica to promote.
        wait_for(
            lambda: all(s.knows(3, 1) for s in sentinels), "the Sentinels know each other and the replica"
        )
        yield Replicated(primary, replica, sentinels)
    finally:
        for sentinel in sentinels:
            sentinel.close()
        replica.close()
        primary.close()


def _store(server: ServerProcess, prompt: str, response: str) -> httpx.Response:
    return httpx.post(server.url + "/cache/store", json={"prompt": prompt, "response": response}, timeout=60)


def _check(server: ServerProcess, prompt: str) -> httpx.Response:
    return httpx.post(server.url + "/cache/check", json={"prompt": prompt}, timeout=60)


def _served(answer: httpx.Response, response: str) -> bool:
    if answer.status_code != 200:
        return False
    body: dict[str, Any] = answer.json()
    return bool(body["is_hit"]) and body["matches"][0]["response"] == response


def test_the_server_follows_sentinel_to_the_new_primary_and_loses_no_acknowledged_write(
    replicated: Replicated, tmp_path: Path
) -> None:
    env = {
        "REDIS_SENTINELS": replicated.sentinel_list,
        "REDIS_SENTINEL_MASTER": SERVICE,
        "SEMCACHE_REDIS_WAIT_REPLICAS": "1",
        "SEMCACHE_REDIS_WAIT_TIMEOUT": str(WAIT_TIMEOUT),
        "CACHE_INDEX_NAME": f"ha_{uuid.uuid4().hex[:8]}",
        "SEMCACHE_FOLLOW_INTERVAL": "0",
    }
    server = ServerProcess(tmp_path / "server", env).start()
    try:
        server.wait_ready()
        pairs = [(f"What is fact number {i} about failovers?", f"Fact {i}.") for i in range(ENTRIES)]
        for prompt, response in pairs:
            stored = _store(server, prompt, response)
            assert stored.status_code == 200, stored.text  # acknowledged: confirmed by the replica (WAIT 1)

        # kill -9: the primary vanishes without a word to its replica, its Sentinels or the server.
        killed_at = time.monotonic()
        replicated.primary.kill()
        during: list[httpx.Response] = []

        def answers_again() -> bool:
            answer = _check(server, pairs[0][0])
            during.append(answer)
            return _served(answer, pairs[0][1])

        recovered_in = wait_for(answers_again, "the server answers again after the failover")
        new_primary = replicated.primary_now()
        assert new_primary == (replicated.replica.host, replicated.replica.port)

        # The failover cannot finish before down-after-milliseconds, and the first check is sent at once,
        # so at least one request met the dead primary: a JSON 503 with Retry-After, never a 500.
        refused = [a for a in during if a.status_code == 503]
        assert refused, [a.status_code for a in during]
        assert all(a.status_code in (200, 503) for a in during), [a.text for a in during]
        for answer in refused:
            assert answer.headers["content-type"].startswith("application/json")
            assert answer.json()["error"] == "backend_unavailable"
            assert int(answer.headers["Retry-After"]) > 0

        # Every acknowledged write is on the new primary.
        lost = [prompt for prompt, response in pairs if not _served(_check(server, prompt), response)]
        assert lost == []

        # WAIT 1 with no replica left: a store is refused, naming WAIT (it may still be on the primary).
        alone = _store(server, "Stored while the primary has no replica?", "Maybe.")
        assert alone.status_code == 503, alone.text
        assert "WAIT" in alone.json()["message"] and alone.headers["Retry-After"]

        # The killed primary comes back as the new primary's replica; stores are acknowledged again.
        replicated.primary.replica_of = new_primary
        replicated.primary.start()
        wait_for(lambda: _link_up(replicated.primary), "the old primary is in sync as a replica")
        resumed_in = wait_for(
            lambda: _store(server, "Stored after the failover?", "Yes.").status_code == 200,
            "stores are acknowledged again",
        )
        assert _served(_check(server, "Stored after the failover?"), "Yes.")
        print(
            f"\nfailover: served again {recovered_in:.1f} s after kill -9 "
            f"({time.monotonic() - killed_at:.1f} s until now), {len(refused)} of {len(during)} checks "
            f"answered 503, 0 of {ENTRIES} acknowledged writes lost, stores acknowledged again "
            f"{resumed_in:.1f} s after the replica came back"
        )
    finally:
        server.stop()


def test_make_client_follows_sentinel_for_the_sync_face(replicated: Replicated) -> None:
    """The sync client (the index pointer's) asks the same Sentinels and reaches the same primary."""
    url = f"redis+sentinel://{replicated.sentinel_list}/{SERVICE}"
    client = make_client(url, None, sync=True)
    try:
        client.set("semcache-ha-probe", "1")
        assert client.info("server")["tcp_port"] == replicated.primary.port
    finally:
        client.close()
