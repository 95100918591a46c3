"""What a Sentinel failover costs: time without a primary, and acknowledged writes lost, with and without WAIT.

    .venv/bin/python bench/failover.py [--writers 8] [--before 2.0] [--down-after-ms 1000] [--wait 0 1]

For each WAIT setting: starts a Redis Stack primary, a replica and three Sentinels on loopback
(tests/support/redis_server.py), opens a RedisStore through Sentinel (SEMCACHE_REDIS_WAIT_REPLICAS=wait),
runs ``--writers`` concurrent writers storing one entry at a time, kills the primary with SIGKILL after
``--before`` seconds, keeps writing until stores are acknowledged again (with WAIT 1 that needs a replica:
the killed node is brought back as the new primary's replica), then reads every acknowledged key on the
new primary. Prints acknowledged writes, writes lost, seconds without a working primary. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.errors import SemcacheError
from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.redis import RedisStore
from tests.support.redis_server import RedisServer, SentinelServer, ensure_redis_stack

IDENTITY = EmbedderIdentity("bench", "failover", 8)


def _until(condition: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise TimeoutError("condition not met")


def _link_up(server: RedisServer) -> bool:
    client = server.client()
    try:
        return client.info("replication").get("master_link_status") == "up"
    except Exception:
        return False
    finally:
        client.close()


async def run(wait: int, writers: int, before: float, down_after_ms: int) -> None:
    paths = ensure_redis_stack()
    primary = RedisServer(paths).start()
    replica = RedisServer(paths, replica_of=(primary.host, primary.port)).start()
    sentinels = [
        SentinelServer(paths, (primary.host, primary.port), down_after_ms=down_after_ms).start()
        for _ in range(3)
    ]
    store: RedisStore | None = None
    try:
        _until(lambda: _link_up(replica))
        _until(lambda: all(s.knows(3, 1) for s in sentinels))
        url = "redis+sentinel://" + ",".join(s.address for s in sentinels) + "/semcache"
        store = RedisStore(url, name="failover", wait_replicas=wait, wait_timeout=2.0)
        await store.open()
        await store.bind(IDENTITY)
        acknowledged: list[str] = []
        failures = 0
        last_failure = first_failure = 0.0
        stop = asyncio.Event()
        rng = np.random.default_rng(0)

        async def writer(w: int) -> None:
            nonlocal failures, last_failure, first_failure
            n = 0
            while not stop.is_set():
                key = f"w{w}-{n}"
                n += 1
                entry = CacheEntry(key, "default", key, "r", created_at=time.time())
                try:
                    await store.upsert([(entry, rng.standard_normal(8).astype(np.float32))])  # type: ignore[union-attr]
                    acknowledged.append(key)
                except SemcacheError:
                    failures += 1
                    first_failure = first_failure or time.monotonic()
                    last_failure = time.monotonic()
                    await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(writer(w)) for w in range(writers)]
        await asyncio.sleep(before)
        killed_at = time.monotonic()
        primary.kill()
        await asyncio.to_thread(
            _until, lambda: sentinels[0].primary_address() == (replica.host, replica.port)
        )
        promoted_at = time.monotonic()
        if wait:
            primary.replica_of = (replica.host, replica.port)
            primary.start()
        await asyncio.sleep(3.0)  # keep writing on the new primary
        stop.set()
        await asyncio.gather(*tasks)
        survivors = replica.client()
        try:
            pipe = survivors.pipeline(transaction=False)
            for key in acknowledged:
                pipe.exists(f"failover:{key}")
            present = pipe.execute()
        finally:
            survivors.close()
        lost = len(acknowledged) - sum(int(bool(p)) for p in present)
        print(
            f"WAIT {wait}: {len(acknowledged)} writes acknowledged, {lost} lost; "
            f"{failures} failed (503); promotion {promoted_at - killed_at:.1f} s after kill -9, "
            f"writes failing for {max(0.0, last_failure - first_failure):.1f} s"
        )
    finally:
        if store is not None:
            await store.close()
        for sentinel in sentinels:
            sentinel.close()
        replica.close()
        primary.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--before", type=float, default=2.0, help="seconds of writing before the kill")
    parser.add_argument("--down-after-ms", type=int, default=1000)
    parser.add_argument("--wait", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    for wait in args.wait:
        asyncio.run(run(wait, args.writers, args.before, args.down_after_ms))


if __name__ == "__main__":
    main()
