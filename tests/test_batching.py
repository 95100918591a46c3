"""BatchingEmbedder with the bundled model: same vectors as the model alone, fewer calls under load."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from engine.embeddings.base import Embedder
from engine.embeddings.batching import BatchingEmbedder
from tests.conftest import SharedEmbedder


async def test_concurrent_requests_share_calls_and_get_their_own_rows(embedder: SharedEmbedder) -> None:
    batching = BatchingEmbedder(embedder, max_batch=64, max_wait_ms=2)
    assert isinstance(batching, Embedder)
    texts = [f"How far is planet number {i} from the sun?" for i in range(40)]
    requests = [[t] for t in texts[:30]] + [texts[30:35], texts[35:]]
    results = await asyncio.gather(*(batching.embed(r) for r in requests))
    expected = await embedder.embed(texts)
    flat = np.vstack(results)
    assert flat.shape == (40, 384)
    np.testing.assert_allclose(flat, expected, atol=1e-5)
    assert batching.requests == 32 and batching.calls < 32
    await batching.close()


async def test_a_lone_request_and_duplicates(embedder: SharedEmbedder) -> None:
    seen: list[tuple[int, int]] = []
    batching = BatchingEmbedder(
        embedder, observer=lambda texts, requests, seconds: seen.append((texts, requests))
    )
    vectors = await batching.embed(["same text", "same text", "another"])
    np.testing.assert_allclose(vectors[0], vectors[1])
    assert seen == [(2, 1)]  # one call, duplicates computed once
    assert batching.identity == embedder.identity and batching.loaded
    assert (await batching.health()).status == "ok"
    await batching.close()


async def test_large_requests_are_split_and_an_empty_one_is_refused(embedder: SharedEmbedder) -> None:
    batching = BatchingEmbedder(embedder, max_batch=4)
    a, b = await asyncio.gather(batching.embed([f"text {i}" for i in range(6)]), batching.embed(["x", "y"]))
    assert a.shape == (6, 384) and b.shape == (2, 384)
    with pytest.raises(ValueError):
        await batching.embed([])
    await batching.close()


class OverlapRecorder:
    """The shared model, with a record of the calls it gets and how many of them overlap."""

    def __init__(self, inner: SharedEmbedder) -> None:
        self.inner = inner
        self.provider, self.model = inner.provider, inner.model
        self.identity, self.loaded = inner.identity, inner.loaded
        self.sizes: list[int] = []
        self.active = self.peak = 0

    async def load(self):  # type: ignore[no-untyped-def]
        return await self.inner.load()

    async def health(self):  # type: ignore[no-untyped-def]
        return await self.inner.health()

    async def close(self) -> None:
        return None

    async def embed(self, texts: list[str]) -> np.ndarray:
        self.sizes.append(len(texts))
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await self.inner.embed(texts)
        finally:
            self.active -= 1


async def test_two_lanes_split_the_queue_and_compute_side_by_side(embedder: SharedEmbedder) -> None:
    recorder = OverlapRecorder(embedder)
    batching = BatchingEmbedder(recorder, lanes=2)  # type: ignore[arg-type]
    texts = [f"Which river flows through city number {i}?" for i in range(32)]
    results = await asyncio.gather(*(batching.embed([t]) for t in texts))
    assert recorder.sizes == [16, 16] and recorder.peak == 2
    np.testing.assert_allclose(np.vstack(results), await embedder.embed(texts), atol=1e-5)
    with pytest.raises(ValueError):
        BatchingEmbedder(embedder, lanes=0)
    await batching.close()
