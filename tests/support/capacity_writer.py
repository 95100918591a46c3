"""A separate process writing to a store with a capacity, for the concurrent-writers test.

    python -m tests.support.capacity_writer KIND LOCATION NAME START COUNT BATCH MAX_ENTRIES

KIND is ``local`` (LOCATION: the data folder) or ``redis`` (LOCATION: the URL). Upserts entries
START..START+COUNT-1, BATCH per call, into index NAME held to MAX_ENTRIES (lru), then prints ``done``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import numpy as np

from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.base import Capacity, VectorStore

IDENTITY = EmbedderIdentity("test", "capacity-vectors", 16)


def vector(number: int) -> np.ndarray:
    values = np.random.default_rng(number).standard_normal(IDENTITY.dimension).astype(np.float32)
    return values / np.linalg.norm(values)


def make(kind: str, location: str, name: str, capacity: Capacity) -> VectorStore:
    if kind == "local":
        from engine.stores.local import LocalStore

        return LocalStore(Path(location), name=name, capacity=capacity)
    from engine.stores.redis import RedisStore

    return RedisStore(location, name=name, capacity=capacity)


async def main(kind: str, location: str, name: str, start: int, count: int, batch: int, cap: int) -> None:
    store = make(kind, location, name, Capacity(max_entries=cap))
    await store.open()
    await store.bind(IDENTITY)
    print("bound", flush=True)
    for first in range(start, start + count, batch):
        numbers = range(first, min(first + batch, start + count))
        items = [
            (CacheEntry(f"w{n:06d}", "default", f"prompt {n}", f"response {n}", {}, time.time()), vector(n))
            for n in numbers
        ]
        await store.upsert(items)
    await store.close()
    print("done", flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]), int(a[6])))
