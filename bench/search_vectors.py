"""What ``search(..., with_vectors=True)`` costs over a plain search, on both stores, at k=5.

    .venv/bin/python bench/search_vectors.py [--entries 20000] [--dim 384] [--queries 1000]

Loads the same seeded, clustered unit vectors into a RedisStore (its own Redis Stack, started from
tests/support/redis_server.py) and a LocalStore (a temporary folder), then times each query twice, once
without and once with the vectors, alternating which goes first so drift on a busy machine hits both
alike. Both the KNN path (no ``max_distance``) and the cache's range path (``max_distance``) are timed.
Prints p50/p99 and the median per-query difference. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.base import VectorStore
from engine.stores.local import LocalStore
from engine.stores.redis import RedisStore
from tests.support.redis_server import RedisServer, ensure_redis_stack

SCOPE = "default"
K = 5
#: Wide enough that the range query returns k candidates for most queries, as the verifier's cap would.
RANGE = 0.35


def clustered(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((max(1, n // 100), dim)).astype(np.float32)
    data = centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, dim)).astype(np.float32) * (
        0.8 / np.sqrt(dim)
    )
    return (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)


async def load(store: VectorStore, data: np.ndarray) -> None:
    await store.open()
    await store.bind(EmbedderIdentity("bench", "clustered-random", data.shape[1]))
    now = time.time()
    for start in range(0, len(data), 1000):
        await store.upsert(
            [
                (CacheEntry(f"e{i:07d}", SCOPE, f"prompt {i}", f"response {i}", created_at=now), data[i])
                for i in range(start, min(start + 1000, len(data)))
            ]
        )


async def compare(label: str, store: VectorStore, queries: np.ndarray, max_distance: float | None) -> None:
    async def once(vector: np.ndarray, with_vectors: bool) -> tuple[float, int]:
        started = time.perf_counter()
        found = await store.search(
            vector, scope=SCOPE, k=K, max_distance=max_distance, with_vectors=with_vectors
        )
        return time.perf_counter() - started, len(found)

    for vector in queries[:50]:  # warm connections, caches and graphs
        await once(vector, False)
        await once(vector, True)
    plain, loaded, returned = [], [], []
    for i, vector in enumerate(queries):
        order = (False, True) if i % 2 == 0 else (True, False)
        timings = {flag: await once(vector, flag) for flag in order}
        plain.append(timings[False][0] * 1000.0)
        loaded.append(timings[True][0] * 1000.0)
        returned.append(timings[True][1])
    plain_a, loaded_a = np.asarray(plain), np.asarray(loaded)
    print(
        f"{label:28s} plain p50 {np.percentile(plain_a, 50):6.3f} p99 {np.percentile(plain_a, 99):6.3f} ms | "
        f"with_vectors p50 {np.percentile(loaded_a, 50):6.3f} p99 {np.percentile(loaded_a, 99):6.3f} ms | "
        f"median extra {np.median(loaded_a - plain_a) * 1000:+6.1f} us | {np.mean(returned):.1f} matches"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    data = clustered(args.entries, args.dim, rng)
    picks = data[rng.integers(0, len(data), args.queries)]
    queries = picks + rng.standard_normal(picks.shape).astype(np.float32) * (0.25 / np.sqrt(args.dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    print(f"{args.entries} entries x {args.dim} dims, {args.queries} queries, k={K}")

    folder = Path(tempfile.mkdtemp(prefix="semcache-bench-"))
    local = LocalStore(folder / "data", name="bench")
    try:
        await load(local, data)
        for max_distance in (None, RANGE):
            await compare(f"local {'knn' if max_distance is None else 'range'}", local, queries, max_distance)
    finally:
        await local.close()
        shutil.rmtree(folder, ignore_errors=True)

    with RedisServer(ensure_redis_stack()) as server:
        redis_store = RedisStore(server.url, name="bench")
        try:
            await load(redis_store, data)
            await redis_store.wait_indexed(60.0)
            for max_distance in (None, RANGE):
                label = f"redis {'knn' if max_distance is None else 'range'}"
                await compare(label, redis_store, queries, max_distance)
        finally:
            await redis_store.close()


if __name__ == "__main__":
    asyncio.run(main())
