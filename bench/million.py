"""Figures on the way to a million entries, for both stores. Prints figures, asserts nothing.

    python bench/million.py [--sizes 100000,1000000] [--qqp 30000] [--queries 1000] [--stores local,redis]

For each size and store: search p50/p99 through ``store.search`` (embedding excluded), recall@1 against exact
numpy search over everything stored, memory per entry (the process's RSS for the embedded store; Redis's
``used_memory`` and the vector index size, FLOAT32 and FLOAT16 side by side), size on disk, reopen time
from the snapshot and full rebuild time, load speed through ``upsert`` in batches of 500 (what an import
does per batch, without reading a file), and the commands' own speed: ``semcache-tui backup export FILE
--vectors`` from the filled index, then ``semcache-tui backup import FILE`` into an empty one, reusing the
file's vectors (each timed as its own process, start-up included: the import loads the model, the export
does not). The last table shows how each figure grows from one size to the next.

Data: the bundled model's vectors of QQP questions (``qqp_train`` text_a, cached in ``.cache/verifier``
by engine/verification/corpus.py) for the first ``--qqp`` entries; beyond those, synthetic vectors (a QQP
vector plus noise, cosine ~0.8 to it), and the output says how many are which. Queries are the text_b of
QQP duplicate pairs: real paraphrases, whose text_a is among the stored ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.base import VectorStore

REPO = Path(__file__).resolve().parent.parent
SCOPE = "default"
THRESHOLD = 0.15
BATCH = 500
IDENTITY = EmbedderIdentity("sentence-transformers", "all-MiniLM-L6-v2", 384)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def dataset(qqp: int, total: int, n_queries: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, int]:
    """(stored vectors, query vectors, how many stored ones are real QQP vectors)."""
    from engine.verification.corpus import DEFAULT_DATA_DIR, VectorCache, read_pairs

    pairs = read_pairs(DEFAULT_DATA_DIR / "qqp_train.jsonl.gz")
    texts = list(dict.fromkeys(p.text_a for p in pairs))[: min(qqp, total)]
    stored = set(texts)
    queries = [p.text_b for p in pairs if p.label == 1 and p.text_a in stored][:n_queries]
    cache = VectorCache()
    real = cache.vectors(texts + queries, progress=True)
    base, query_vectors = real[: len(texts)], real[len(texts) :]
    rng = np.random.default_rng(seed)
    synthetic = total - len(base)
    if synthetic <= 0:
        return base[:total], query_vectors, len(base[:total])
    data = np.empty((total, base.shape[1]), dtype=np.float32)
    data[: len(base)] = base
    for start in range(len(base), total, 100_000):
        end = min(start + 100_000, total)
        picks = base[rng.integers(0, len(base), end - start)]
        noise = rng.standard_normal(picks.shape).astype(np.float32) * (0.75 / np.sqrt(base.shape[1]))
        data[start:end] = unit_rows(picks + noise)
    return data, query_vectors, len(base)


def exact_top(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    best = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), 64):
        best[start : start + 64] = np.argmax(queries[start : start + 64] @ data.T, axis=1)
    return best


async def load(store: VectorStore, data: np.ndarray) -> float:
    """Seconds to upsert every vector in batches of ``BATCH``."""
    now = time.time()
    started = time.perf_counter()
    for first in range(0, len(data), BATCH):
        await store.upsert(
            [
                (CacheEntry(f"e{i:07d}", SCOPE, f"prompt {i}", f"response {i}", {}, now), data[i])
                for i in range(first, min(first + BATCH, len(data)))
            ]
        )
    return time.perf_counter() - started


#: Queries searched before each timed pass (not timed, and never one a pass times).
WARM_UP = 50


@dataclass(frozen=True)
class Queries:
    """QQP paraphrases as query vectors with their exact nearest stored entry, cut into disjoint sets, one
    per timed pass, and a few more to warm up with. A pass over queries an earlier pass asked finds their
    candidates' rows in the page cache: at a million entries, with the data file not all cached, p50
    0.79 ms for queries asked before against 1.66 ms for unseen ones. So no pass reuses another's."""

    vectors: np.ndarray
    truth: np.ndarray
    per_pass: int

    @property
    def warm_up(self) -> np.ndarray:
        return self.vectors[-WARM_UP:]

    def of_pass(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        start = index * self.per_pass
        if start + self.per_pass > len(self.vectors) - WARM_UP:
            raise SystemExit(
                f"not enough QQP paraphrases for pass {index + 1}: lower --queries or raise --qqp"
            )
        return self.vectors[start : start + self.per_pass], self.truth[start : start + self.per_pass]


async def searches(store: VectorStore, queries: Queries, index: int, **options: Any) -> dict[str, float]:
    """Time the searches of pass ``index`` (its own queries) after warming up."""
    for query in queries.warm_up:
        await store.search(query, scope=SCOPE, k=5, **options)
    return await timed(store, *queries.of_pass(index), **options)


async def timed(
    store: VectorStore, queries: np.ndarray, truth: np.ndarray, **options: Any
) -> dict[str, float]:
    seconds, found = [], []
    for query in queries:
        started = time.perf_counter()
        matches = await store.search(query, scope=SCOPE, k=5, **options)
        seconds.append(time.perf_counter() - started)
        found.append(int(matches[0].entry.key[1:]) if matches else -1)
    ms = np.asarray(seconds) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "recall@1": float(np.mean(np.asarray(found) == truth)),
    }


async def filled_and_searched(store: VectorStore, data: np.ndarray, queries: Queries) -> dict[str, float]:
    """Open and bind ``store``, load ``data`` into it, then time KNN and range searches: the figures both
    stores report the same way."""
    await store.open()
    await store.bind(IDENTITY)
    seconds = await load(store, data)
    figures = {"load entries/s": len(data) / seconds}
    from engine.stores.local import LocalStore

    if isinstance(store, LocalStore):
        # The first search after the load starts the store's maintenance, which writes the graphs'
        # snapshot (a million entries: 0.33 s alone, 1.5 s with the rest of that first maintenance right
        # after the load; searches go on meanwhile). Timed apart, and
        # the load's and the snapshot's writes flushed to disk, so the figures below are searches in a
        # settled store.
        started = time.perf_counter()
        await store.search(queries.warm_up[0], scope=SCOPE, k=5)
        await store.settle()
        figures["first search + maintenance s"] = time.perf_counter() - started
        os.sync()
    knn = await searches(store, queries, 0)
    figures |= {f"knn {k}": v for k, v in knn.items()}
    # The breadth those searches used (engine/stores/breadth.py: it grows with the index).
    figures["knn ef"] = float((await store.info()).parameters.get("query_ef_runtime", 0))
    within = await searches(store, queries, 1, max_distance=THRESHOLD)
    figures["range p50_ms"], figures["range p99_ms"] = within["p50_ms"], within["p99_ms"]
    return figures


def cli(env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    """Seconds ``semcache-tui ARGS --json`` took as its own process, and the JSON it printed."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("SEMCACHE_", "CACHE_", "REDIS_"))
    } | {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if os.environ.get("SEMCACHE_MODEL_CACHE_DIR"):
        environment["SEMCACHE_MODEL_CACHE_DIR"] = os.environ["SEMCACHE_MODEL_CACHE_DIR"]
    with tempfile.TemporaryDirectory(prefix="semcache-million-cli-") as cwd:  # no .env is read
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "semcache_tui.cli", *args, "--json"],
            cwd=cwd,
            env=environment | env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"semcache-tui {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return seconds, json.loads(done.stdout)


async def backup_figures(
    source: dict[str, str],
    target: dict[str, str],
    count: int,
    emptied: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, float]:
    """Export the ``count`` entries of the index ``source`` names with their vectors, then import the file
    into the empty index ``target`` names (after ``emptied()``, when given), both through ``semcache-tui``."""
    with tempfile.TemporaryDirectory(prefix="semcache-million-backup-") as folder:
        file = str(Path(folder) / "bench.jsonl.gz")
        seconds, exported = cli(source, "backup", "export", file, "--vectors")
        if not exported["vectors"] or exported["count"] != count:
            raise SystemExit(f"the export holds {exported['count']} entries, vectors: {exported['vectors']}")
        figures = {
            "export --vectors entries/s": count / seconds,
            "backup file bytes/entry": exported["bytes"] / count,
        }
        if emptied is not None:
            await emptied()
        seconds, imported = cli(target, "backup", "import", file)
    if not imported["reused_vectors"] or imported["written"] != count:
        raise SystemExit(
            f"the import wrote {imported['written']} of {count}, embedded {imported['embedded']}"
        )
    figures["import (vectors) s"] = seconds
    figures["import (vectors) entries/s"] = count / seconds
    return figures


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


async def local_figures(
    data: np.ndarray,
    queries: Queries,
    skip: frozenset[str] = frozenset(),
    efs: tuple[int, ...] = (),
) -> dict[str, float]:
    from engine.stores.local import LocalStore

    process = psutil.Process()
    folder = Path(tempfile.mkdtemp(prefix="semcache-million-"))
    figures: dict[str, float] = {}
    try:
        rss = process.memory_info().rss
        store = LocalStore(folder, name="bench")
        figures |= await filled_and_searched(store, data, queries)
        figures["RSS bytes/entry"] = (process.memory_info().rss - rss) / len(data)
        info = await store.info()
        figures["graphs + copies bytes/entry"] = (info.memory_bytes or 0) / len(data)
        started = time.perf_counter()
        await store.close()
        figures["close (snapshot) s"] = time.perf_counter() - started
        figures["disk bytes/entry"] = folder_bytes(folder) / len(data)
        # The same graphs searched wider (SEMCACHE_HNSW_EF_RUNTIME): reopened from the snapshot, which
        # does not depend on ef_search, so no rebuild.
        for number, ef in enumerate(efs):
            wider = LocalStore(folder, name="bench", ef_search=ef)
            await wider.open()
            await wider.bind(IDENTITY)
            measured = await searches(wider, queries, 2 + number)
            # The setting is a floor: the breadth grows with the graph (engine/stores/breadth.py).
            breadth = int((await wider.info()).parameters.get("query_ef_runtime", ef))
            figures |= {f"ef_search {ef} (ef {breadth}): knn {k}": v for k, v in measured.items()}
            await wider.close()
        for label, drop in (("reopen from snapshot s", False), ("full rebuild s", True)):
            if drop and "rebuild" in skip:
                continue
            if drop:
                shutil.rmtree(folder / "bench.hnsw")
            started = time.perf_counter()
            reopened = LocalStore(folder, name="bench")
            await reopened.open()
            await reopened.bind(IDENTITY)
            await reopened.search(queries.warm_up[0], scope=SCOPE, k=1)
            figures[label] = time.perf_counter() - started
            await reopened.close()
        imported = Path(tempfile.mkdtemp(prefix="semcache-million-import-"))
        try:
            if "backup" not in skip:
                figures |= await backup_figures(
                    {"SEMCACHE_DATA_DIR": str(folder), "CACHE_INDEX_NAME": "bench"},
                    {"SEMCACHE_DATA_DIR": str(imported), "CACHE_INDEX_NAME": "bench"},
                    len(data),
                )
        finally:
            shutil.rmtree(imported, ignore_errors=True)
        if "compaction" in skip:
            return figures
        # Heavy evictions, then compaction: a capacity of half the entries evicts the oldest half at start.
        from engine.stores.base import Capacity

        halved = LocalStore(folder, name="bench", capacity=Capacity(max_entries=len(data) // 2))
        await halved.open()
        await halved.bind(IDENTITY)
        await halved.search(queries.warm_up[0], scope=SCOPE, k=1)
        kept_from = len(data) - len(data) // 2
        # The QQP paraphrases' answers were in the evicted half: near copies of kept vectors stand in.
        rng = np.random.default_rng(3)
        picks = data[kept_from + rng.integers(0, len(data) - kept_from, queries.per_pass)]
        near = unit_rows(
            picks + rng.standard_normal(picks.shape).astype(np.float32) * (0.3 / np.sqrt(picks.shape[1]))
        )
        truth_half = exact_top(data[kept_from:], near) + kept_from
        before = await timed(halved, near, truth_half)
        figures["half evicted: graph bytes"] = float((await halved.info()).memory_bytes or 0)
        figures["half evicted: knn p50_ms"] = before["p50_ms"]
        figures["half evicted: recall@1"] = before["recall@1"]
        started = time.perf_counter()
        await halved.compact()
        figures["compaction s"] = time.perf_counter() - started
        after = await timed(halved, near, truth_half)
        figures["compacted: graph bytes"] = float((await halved.info()).memory_bytes or 0)
        figures["compacted: knn p50_ms"] = after["p50_ms"]
        figures["compacted: recall@1"] = after["recall@1"]
        await halved.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return figures


async def redis_figures(
    data: np.ndarray,
    queries: Queries,
    vector_type: str,
    skip: frozenset[str] = frozenset(),
) -> dict[str, float]:
    from engine.stores.redis import RedisStore
    from tests.support.redis_server import RedisServer, ensure_redis_stack

    figures: dict[str, float] = {}
    with RedisServer(ensure_redis_stack()) as server:
        client = server.client()
        client.execute_command("FT.CONFIG", "SET", "TIMEOUT", 0)
        before = int(client.info("memory")["used_memory"])
        store = RedisStore(server.url, name="bench", vector_type=vector_type)
        figures |= await filled_and_searched(store, data, queries)
        figures["used_memory bytes/entry"] = (int(client.info("memory")["used_memory"]) - before) / len(data)
        raw = {
            k.decode() if isinstance(k, bytes) else k: v
            for k, v in _pairs(client.execute_command("FT.INFO", "bench"))
        }
        figures["vector index bytes/entry"] = float(raw.get("vector_index_sz_mb", 0) or 0) * 2**20 / len(data)
        await store.close()
        show(
            f"Redis, {vector_type.upper()} vectors, before the restart (printed now: the rest takes long)",
            figures,
        )
        if "rebuild" in skip:
            client.close()
            return figures
        started = time.perf_counter()
        # BGSAVE (it forks before answering) and wait: a blocking SAVE of gigabytes outlasts the client's
        # socket timeout.
        client.bgsave()
        while int((persistence := client.info("persistence"))["rdb_bgsave_in_progress"]):
            time.sleep(0.2)
        if persistence["rdb_last_bgsave_status"] != "ok":
            raise SystemExit(f"BGSAVE failed: {persistence}")
        figures["RDB save s"] = time.perf_counter() - started
        figures["disk bytes/entry"] = (server.workdir / "dump.rdb").stat().st_size / len(data)
        client.close()
        # Redis keeps no vector index on disk: a restart loads the RDB and indexes every entry again.
        server.stop()
        started = time.perf_counter()
        server.start(timeout=3600)
        client = server.client()
        while True:
            try:
                raw = {
                    k.decode() if isinstance(k, bytes) else k: v
                    for k, v in _pairs(client.execute_command("FT.INFO", "bench"))
                }
                if not int(float(raw.get("indexing", 0) or 0)) and int(float(raw.get("num_docs", 0))) == len(
                    data
                ):
                    break
            except Exception:  # still loading
                pass
            time.sleep(0.1)
        figures["restart + reindex s"] = time.perf_counter() - started
        client.close()

        async def drop_bench() -> None:
            dropped = RedisStore(server.url, name="bench", vector_type=vector_type)
            await dropped.open()
            await dropped.drop()

        # The import goes into the same index once dropped: a second index beside it would double the
        # server's memory at a million entries.
        redis = {
            "SEMCACHE_STORE": "redis",
            "REDIS_URL": server.url,
            "CACHE_INDEX_NAME": "bench",
            "SEMCACHE_VECTOR_TYPE": vector_type,
        }
        if "backup" not in skip:
            figures |= await backup_figures(redis, redis, len(data), drop_bench)
    return figures


def _pairs(reply: Any) -> list[tuple[Any, Any]]:
    if isinstance(reply, dict):
        return list(reply.items())
    return list(zip(reply[::2], reply[1::2], strict=False))


def show(title: str, figures: dict[str, float]) -> None:
    print(f"  {title}")
    for name, value in figures.items():
        print(f"    {name:<28} {value:>12,.4f}" if value < 100 else f"    {name:<28} {value:>12,.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="100000", help="comma-separated entry counts (e.g. 100000,1000000)"
    )
    parser.add_argument(
        "--qqp", type=int, default=30_000, help="how many stored vectors are real QQP questions"
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--stores", default="local,redis")
    parser.add_argument(
        "--vector-types", default="float32,float16", help="Redis vector types to measure (both by default)"
    )
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated parts of the run to leave out: rebuild (Redis: save, restart and re-index), "
        "backup, compaction (embedded only); at 1,000,000 entries each takes minutes to tens of minutes "
        "on 2 cores",
    )
    parser.add_argument(
        "--skip-above",
        type=int,
        default=0,
        help="leave the --skip parts out only for sizes above this one (e.g. 100000: backup figures at "
        "100,000, none at a million)",
    )
    parser.add_argument(
        "--ef",
        default="",
        help="comma-separated ef_search settings (SEMCACHE_HNSW_EF_RUNTIME) to measure the embedded store's "
        "search with after reopening it from its snapshot, beside 64 right after the load; a setting is a "
        "floor, the breadth grows with the graph (engine/stores/breadth.py) and is printed beside it",
    )
    args = parser.parse_args()
    efs = tuple(int(ef) for ef in args.ef.split(",") if ef)
    skip = frozenset(part for part in args.skip.split(",") if part)
    if skip - {"rebuild", "backup", "compaction"}:
        parser.error(f"--skip takes rebuild, backup, compaction; not {', '.join(sorted(skip))}")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    sizes = [int(s) for s in args.sizes.split(",")]
    stores = args.stores.split(",")
    load_avg = ", ".join(f"{x:.2f}" for x in psutil.getloadavg())
    print(
        f"machine: {psutil.cpu_count()} CPUs, load average {load_avg}, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    )
    results: dict[tuple[str, int], dict[str, float]] = {}
    for size in sizes:
        passes = 2 + len(efs)  # KNN, range, one per --ef (the embedded store's)
        data, vectors, real = dataset(args.qqp, size, args.queries * passes + WARM_UP)
        queries = Queries(vectors, exact_top(data, vectors), args.queries)
        print(
            f"\n== {size:,} entries x {data.shape[1]}: {real:,} real QQP question vectors, {size - real:,} synthetic "
            f"(a QQP vector plus noise); {args.queries} queries a pass, each pass its own, = QQP paraphrases of "
            "stored questions"
        )
        left_out = skip if size > args.skip_above else frozenset()
        if left_out:
            print(f"  (left out: {', '.join(sorted(left_out))})")
        if "local" in stores:
            results[("local", size)] = await local_figures(data, queries, left_out, efs)
            show(
                "embedded store (SQLite + int8 HNSW, float16 copies re-rank, float32 served)",
                results[("local", size)],
            )
        if "redis" in stores:
            vector_types = args.vector_types.split(",")
            for vector_type in vector_types:
                results[(f"redis {vector_type}", size)] = await redis_figures(
                    data, queries, vector_type, left_out
                )
                show(f"Redis, {vector_type.upper()} vectors", results[(f"redis {vector_type}", size)])
            if {"float32", "float16"} <= set(vector_types):
                f32, f16 = results[("redis float32", size)], results[("redis float16", size)]
                saved = 1 - f16["vector index bytes/entry"] / f32["vector index bytes/entry"]
                print(
                    f"  FLOAT16 vs FLOAT32: vector index {saved:.0%} smaller, used_memory "
                    f"{1 - f16['used_memory bytes/entry'] / f32['used_memory bytes/entry']:.0%} smaller; "
                    f"recall@1 {f16['knn recall@1']:.4f} vs {f32['knn recall@1']:.4f}"
                )
        print(f"  (load average now {', '.join(f'{x:.2f}' for x in psutil.getloadavg())})")
    if len(sizes) > 1:
        print("\n== growth from the smallest size to the largest (ratio)")
        for kind in sorted({kind for kind, _ in results}):
            small, large = results[(kind, sizes[0])], results[(kind, sizes[-1])]
            ratios = ", ".join(
                f"{name} x{large[name] / small[name]:.2f}" for name in small if small[name] and name in large
            )
            print(f"  {kind}: {ratios}")


if __name__ == "__main__":
    asyncio.run(main())
