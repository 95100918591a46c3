"""Search latency of the Redis store at 100,000 entries, next to a bare FT.SEARCH and RedisVL.

    .venv/bin/python bench/redis_store.py [--entries 100000] [--dim 384] [--queries 1000] [--ef 64]

Starts its own Redis Stack (tests/support/redis_server.py), loads the same seeded, clustered unit vectors
into (1) a RedisStore index (HNSW) and (2) RedisVL's SemanticCache index (its default layout: FLAT), then
times, one query at a time, with embedding excluded:
  - RedisStore.search(max_distance=threshold): the cache's path (a range query inside Redis);
  - RedisStore.search(max_distance=None): KNN within the scope;
  - a bare FT.SEARCH KNN query sent with redis-py's asyncio client, on the same HNSW index;
  - RedisVL SemanticCache.check(vector=...) with the precomputed vector.
Prints p50/p99 and recall@1 against exact numpy search. Asserts nothing. Needs `pip install redisvl`
(the `bench` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.redis import RedisStore, schema
from tests.support.redis_server import RedisServer, ensure_redis_stack

SCOPE = "default"
THRESHOLD = 0.15


def clustered(n: int, dim: int, topics: int, rng: np.random.Generator) -> np.ndarray:
    """Prompts come in topics: points scattered around topic centres (about 0.2 cosine distance away)."""
    centres = rng.standard_normal((topics, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((n, dim)).astype(np.float32) * (0.8 / np.sqrt(dim))
    data = centres[rng.integers(0, topics, n)] + noise
    return (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)


def paraphrases(data: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Queries a short distance (about 0.03) from stored prompts, as a rephrased question would be."""
    picks = data[rng.integers(0, len(data), count)]
    noise = rng.standard_normal(picks.shape).astype(np.float32) * (0.25 / np.sqrt(data.shape[1]))
    queries = picks + noise
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def exact_nearest(data: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    best, distance = np.empty(len(queries), dtype=np.int64), np.empty(len(queries), dtype=np.float32)
    for start in range(0, len(queries), 256):
        sims = queries[start : start + 256] @ data.T
        best[start : start + 256] = sims.argmax(axis=1)
        distance[start : start + 256] = 1.0 - sims.max(axis=1)
    return best, distance


def figures(label: str, seconds: list[float], found: list[int | None], truth: np.ndarray) -> None:
    ms = np.asarray(seconds) * 1000.0
    recall = float(np.mean([f == t for f, t in zip(found, truth, strict=True)]))
    print(
        f"{label:44s} p50 {np.percentile(ms, 50):7.3f} ms   p99 {np.percentile(ms, 99):7.3f} ms   "
        f"recall@1 {recall:.4f}"
    )


async def timed(
    queries: np.ndarray, call: Callable[[np.ndarray], Awaitable[int | None]]
) -> tuple[list[float], list[int | None]]:
    for vector in queries[:50]:  # warm connections and caches
        await call(vector)
    seconds, found = [], []
    for vector in queries:
        started = time.perf_counter()
        result = await call(vector)
        seconds.append(time.perf_counter() - started)
        found.append(result)
    return seconds, found


def load_redisvl(url: str, data: np.ndarray, threshold: float) -> Any:
    from redis import Redis
    from redisvl.extensions.cache.llm import SemanticCache
    from redisvl.utils.vectorize import CustomVectorizer

    dim = data.shape[1]
    vectorizer = CustomVectorizer(embed=lambda text: [0.0] * (dim - 1) + [1.0])
    cache = SemanticCache(
        name="redisvl_bench", redis_url=url, vectorizer=vectorizer, distance_threshold=threshold
    )
    client = Redis.from_url(url)
    prefix = cache.index.schema.index.prefix
    pipe = client.pipeline(transaction=False)
    now = time.time()
    for i, vector in enumerate(data):
        pipe.hset(
            f"{prefix}:{i}",
            mapping={
                "entry_id": str(i),
                "prompt": f"prompt {i}",
                "response": f"response {i}",
                "inserted_at": now,
                "updated_at": now,
                "prompt_vector": vector.tobytes(),
            },
        )
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    client.close()
    return cache


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--ef", type=int, default=64, help="EF_RUNTIME for KNN queries")
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--epsilon", type=float, default=0.2, help="$EPSILON of the range query")
    parser.add_argument("--skip-redisvl", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(42)
    data = clustered(args.entries, args.dim, topics=1000, rng=rng)
    queries = paraphrases(data, args.queries, rng)
    truth, truth_distance = exact_nearest(data, queries)
    within = truth_distance <= THRESHOLD
    print(
        f"{args.entries} entries x {args.dim} dims, {args.queries} queries; exact nearest distance "
        f"p50 {np.median(truth_distance):.3f}, {within.mean():.1%} within the {THRESHOLD} threshold"
    )

    with RedisServer(ensure_redis_stack()) as server:
        store = RedisStore(
            server.url,
            name="bench",
            hnsw_m=args.m,
            hnsw_ef_construction=args.ef_construction,
            hnsw_ef_runtime=args.ef,
            range_epsilon=args.epsilon,
        )
        await store.open()
        # RediSearch's default 500 ms query timeout cuts RedisVL's exact (FLAT) scans short on a busy
        # machine; measured latency should be the query's, not a timeout's.
        await store.client.execute_command("FT.CONFIG", "SET", "TIMEOUT", 0)
        await store.bind(EmbedderIdentity("bench", "clustered-random", args.dim))
        keys = [f"{i:032x}" for i in range(args.entries)]
        started = time.perf_counter()
        now = time.time()
        for start in range(0, args.entries, 1000):
            batch = [
                (CacheEntry(keys[i], SCOPE, f"prompt {i}", f"response {i}", created_at=now), data[i])
                for i in range(start, min(start + 1000, args.entries))
            ]
            await store.upsert(batch)
        print(f"RedisStore load (HNSW M={args.m} EF_CONSTRUCTION={args.ef_construction}): "
              f"{time.perf_counter() - started:.1f} s, {await store.count()} documents")  # fmt: skip
        index_of = {key: i for i, key in enumerate(keys)}

        async def via_store_range(vector: np.ndarray) -> int | None:
            matches = await store.search(vector, scope=SCOPE, k=5, max_distance=THRESHOLD)
            return index_of[matches[0].entry.key] if matches else None

        async def via_store_knn(vector: np.ndarray) -> int | None:
            matches = await store.search(vector, scope=SCOPE, k=5)
            return index_of[matches[0].entry.key] if matches else None

        client = store.client
        bare_query = f"*=>[KNN 5 @{schema.VECTOR} $vec EF_RUNTIME {args.ef} AS d]"

        async def via_bare(vector: np.ndarray) -> int | None:
            reply = await client.execute_command(
                "FT.SEARCH", "bench", bare_query, "PARAMS", 2, "vec", vector.tobytes(),
                "SORTBY", "d", "RETURN", 1, "d", "LIMIT", 0, 5, "DIALECT", 2,
            )  # fmt: skip
            rows = reply[b"results"]
            return index_of[rows[0][b"id"].decode().split(":", 1)[1]] if rows else None

        # The truth for a thresholded search is "the exact nearest, when it is within the threshold".
        truth_range = np.where(within, truth, -1)
        measured = {}
        measured["bare FT.SEARCH KNN 5 (redis-py asyncio)"] = (await timed(queries, via_bare), truth)
        measured[f"RedisStore.search range <= {THRESHOLD}, k=5"] = (
            await timed(queries, via_store_range),
            truth_range,
        )
        measured["RedisStore.search KNN k=5 (no threshold)"] = (await timed(queries, via_store_knn), truth)

        if not args.skip_redisvl:
            started = time.perf_counter()
            cache = load_redisvl(server.url, data, THRESHOLD)
            print(f"RedisVL load (its default FLAT index): {time.perf_counter() - started:.1f} s")

            async def via_redisvl(vector: np.ndarray) -> int | None:
                hits = cache.check(vector=vector.tolist(), num_results=5)
                return int(hits[0]["entry_id"]) if hits else None

            try:
                measured[f"RedisVL SemanticCache.check <= {THRESHOLD}, k=5"] = (
                    await timed(queries, via_redisvl),
                    truth_range,
                )
            except Exception as exc:  # report the failure, keep the figures already measured
                print(f"RedisVL SemanticCache.check failed: {exc}")
        print()
        for label, ((seconds, found), expected) in measured.items():
            figures(label, seconds, [-1 if f is None else f for f in found], expected)
        bare = np.percentile(measured["bare FT.SEARCH KNN 5 (redis-py asyncio)"][0][0], 50)
        ours = np.percentile(measured[f"RedisStore.search range <= {THRESHOLD}, k=5"][0][0], 50)
        print(f"\nRedisStore.search (range) p50 / bare KNN p50 = {ours / bare:.2f}x")
        info = await store.info()
        print(f"index memory {info.memory_bytes / 2**20:.0f} MiB; parameters {info.parameters}")
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
