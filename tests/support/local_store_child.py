"""A separate process writing to a ``LocalStore``, for the durability and sharing tests.

    python -m tests.support.local_store_child DATA_DIR NAME START COUNT [BATCH] [HOLD]

Binds the store to ``IDENTITY``, then upserts entries START..START+COUNT-1, BATCH per call, printing
``ok <key>`` for every entry of a call once ``upsert`` has returned (the write is acknowledged). With HOLD
it then sleeps that many seconds before closing, so a test can kill it at any moment.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import numpy as np

from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.local import LocalStore

IDENTITY = EmbedderIdentity("test", "child-vectors", 32)
SCOPE = "child"


def child_key(number: int) -> str:
    return f"child-{number:06d}"


def child_vector(number: int) -> np.ndarray:
    """The vector of entry ``number``, the same in every process."""
    vector = np.random.default_rng(number).standard_normal(IDENTITY.dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


def child_entry(number: int) -> CacheEntry:
    return CacheEntry(
        key=child_key(number),
        scope=SCOPE,
        prompt=f"prompt {number}",
        response=f"response {number}",
        metadata={"number": number},
        created_at=time.time(),
    )


async def main(data_dir: Path, name: str, start: int, count: int, batch: int, hold: float) -> None:
    store = LocalStore(data_dir, name=name)
    await store.open()
    await store.bind(IDENTITY)
    print("bound", flush=True)
    for first in range(start, start + count, batch):
        numbers = range(first, min(first + batch, start + count))
        await store.upsert([(child_entry(n), child_vector(n)) for n in numbers])
        for n in numbers:
            print("ok", child_key(n), flush=True)
    if hold:
        await asyncio.sleep(hold)
    await store.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            Path(args[0]),
            args[1],
            int(args[2]),
            int(args[3]),
            int(args[4]) if len(args) > 4 else 1,
            float(args[5]) if len(args) > 5 else 0.0,
        )
    )
