"""Figures for the embedded store at 100,000 entries: insert throughput, search latency through
``LocalStore.search`` (no embedding), recall@1 against exact search, memory, size on disk, reopen time.

    .venv/bin/python bench/local_store.py [--entries 100000] [--dim 384] [--queries 1000]

Prints figures, asserts nothing. Data is seeded and clustered (1,000 topics), like prompts are: uniform
random vectors in 384 dimensions are all nearly equidistant, which says little about a real cache.
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
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.local import LocalStore

SCOPE = "default"


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def clustered(rng: np.random.Generator, centers: np.ndarray, n: int, spread: float) -> np.ndarray:
    """Points around random topic centers; ``spread`` per dimension, so the mean cosine to the center is ~0.65."""
    picks = rng.integers(0, len(centers), n)
    return unit_rows(centers[picks] + spread * rng.standard_normal((n, centers.shape[1])).astype(np.float32))


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


async def measure_search(store: LocalStore, queries: np.ndarray, k: int) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    tops: list[str] = []
    for query in queries:
        started = time.perf_counter()
        matches = await store.search(query, scope=SCOPE, k=k)
        latencies.append((time.perf_counter() - started) * 1000.0)
        tops.append(matches[0].entry.key if matches else "")
    return latencies, tops


def report(label: str, latencies: list[float], tops: list[str], exact: np.ndarray) -> None:
    recall = float(np.mean([top == f"e{i:06d}" for top, i in zip(tops, exact, strict=True)]))
    print(
        f"  {label:<34} p50 {np.percentile(latencies, 50):.3f} ms   p99 {np.percentile(latencies, 99):.3f} ms   "
        f"recall@1 {recall:.4f}"
    )


async def run(entries: int, dim: int, n_queries: int, batch: int) -> None:
    rng = np.random.default_rng(20240601)
    centers = unit_rows(rng.standard_normal((1000, dim)).astype(np.float32))
    spread = 1.2 / np.sqrt(dim)
    data = clustered(rng, centers, entries, spread)
    perturbed = unit_rows(
        data[rng.integers(0, entries, n_queries)]
        + (0.4 / np.sqrt(dim)) * rng.standard_normal((n_queries, dim)).astype(np.float32)
    )
    fresh = clustered(rng, centers, n_queries, spread)
    uniform = unit_rows(rng.standard_normal((n_queries // 4, dim)).astype(np.float32))
    identity = EmbedderIdentity("bench", "random-clustered", dim)
    process = psutil.Process()
    folder = Path(tempfile.mkdtemp(prefix="semcache-bench-"))
    try:
        print(f"local store: {entries:,} entries x {dim} dims, {n_queries} queries per set, folder {folder}")
        rss_before = process.memory_info().rss
        store = LocalStore(folder / "data", name="bench")
        await store.open()
        await store.bind(identity)
        now = time.time()
        started = time.perf_counter()
        for first in range(0, entries, batch):
            items = [
                (CacheEntry(f"e{i:06d}", SCOPE, f"prompt {i}", f"response {i}", {}, now), data[i])
                for i in range(first, min(first + batch, entries))
            ]
            await store.upsert(items)
        elapsed = time.perf_counter() - started
        print(
            f"insert: {entries / elapsed:,.0f} entries/s through upsert ({elapsed:.1f} s, batches of {batch})"
        )
        rss_after = process.memory_info().rss
        info = await store.info()
        print(
            f"memory: RSS +{mb(rss_after - rss_before)} for the store; graphs report {mb(info.memory_bytes or 0)}; "
            f"disk: {mb(info.extra['size_on_disk_bytes'])} (SQLite, before the snapshot)"
        )

        print("search through LocalStore.search (embedding excluded), exact = numpy argmax over all vectors:")
        for label, queries in (("perturbed stored vectors", perturbed), ("fresh clustered vectors", fresh)):
            exact = np.argmax(queries @ data.T, axis=1)
            for k in (1, 5):
                await measure_search(store, queries[:50], k)  # warm caches
                latencies, tops = await measure_search(store, queries, k)
                report(f"{label}, k={k}", latencies, tops, exact)
        exact = np.argmax(uniform @ data.T, axis=1)
        latencies, tops = await measure_search(store, uniform, 5)
        report("uniform random (no near neighbour), k=5", latencies, tops, exact)
        nearest = 1.0 - np.max(uniform @ data.T, axis=1)
        print(
            f"    (their exact nearest neighbour is at cosine distance >= {nearest.min():.2f}: a miss at any threshold)"
        )

        started = time.perf_counter()
        await store.close()
        print(f"close (writes the graph snapshot): {time.perf_counter() - started:.2f} s")
        info_disk = sum(p.stat().st_size for p in (folder / "data").rglob("*") if p.is_file())
        print(
            f"size on disk: {mb(info_disk)} (SQLite with float32 vectors + snapshot of int8 graphs and float16 copies)"
        )

        for label, drop_snapshot in (
            ("from the snapshot", False),
            ("without a snapshot (full rebuild)", True),
        ):
            if drop_snapshot:
                shutil.rmtree(folder / "data" / "bench.hnsw")
            started = time.perf_counter()
            reopened = LocalStore(folder / "data", name="bench")
            await reopened.open()
            await reopened.bind(identity)
            await reopened.search(fresh[0], scope=SCOPE, k=1)
            print(f"reopen {label}: {time.perf_counter() - started:.2f} s to the first search")
            if drop_snapshot:
                latencies, tops = await measure_search(reopened, fresh, 5)
                report(
                    "fresh clustered after rebuild, k=5", latencies, tops, np.argmax(fresh @ data.T, axis=1)
                )
            await reopened.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.entries, args.dim, args.queries, args.batch))


if __name__ == "__main__":
    main()
