"""FLOAT16 vectors on Redis (SEMCACHE_VECTOR_TYPE=float16): the index is created with them, searches find
the same entries at the same distances to within float16's precision, vectors read back as float32, and
an index created with FLOAT32 keeps opening (and keeps its type) whatever the setting says."""

from __future__ import annotations

import numpy as np

from engine.cache import CachePolicy, SemanticCache
from engine.stores.redis import RedisStore
from tests.conftest import unique_index_name

PROMPTS = [
    "How do I reset my password?",
    "What is the capital of France?",
    "How tall is Mount Everest?",
    "Which planet is closest to the sun?",
    "How do I make a cup of green tea?",
]


async def test_a_float16_index_is_created_and_searched(redis_url: str, embedder) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(redis_url, name=unique_index_name(), vector_type="float16")
    cache = SemanticCache(store, embedder, CachePolicy())
    try:
        await cache.start()
        info = await store.info()
        assert info.parameters["data_type"] == "FLOAT16"
        stored = [await cache.store(p, f"answer {i}") for i, p in enumerate(PROMPTS)]
        vectors = await embedder.embed(PROMPTS)
        for entry, query in zip(stored, vectors, strict=True):
            matches = await store.search(query, scope="default", k=2, with_vectors=True)
            assert matches[0].entry.key == entry.key
            assert matches[0].distance < 1e-3
            assert matches[0].vector is not None and matches[0].vector.dtype == np.float32
            np.testing.assert_allclose(matches[0].vector, query, atol=2e-3)
        kept = await store.get_vectors([stored[0].key])
        np.testing.assert_allclose(kept[stored[0].key], vectors[0], atol=2e-3)
        result = await cache.check("how can I reset my password")
        assert result.is_hit and result.best is not None and result.best.entry.key == stored[0].key
    finally:
        await store.drop()


async def test_an_index_created_with_float32_keeps_opening_as_float32(redis_url: str, embedder) -> None:  # type: ignore[no-untyped-def]
    name = unique_index_name()
    first = RedisStore(redis_url, name=name)
    cache = SemanticCache(first, embedder, CachePolicy())
    await cache.start()
    entry = await cache.store(PROMPTS[1], "Paris.")
    await first.close()
    later = RedisStore(redis_url, name=name, vector_type="float16")
    try:
        cache = SemanticCache(later, embedder, CachePolicy())
        await cache.start()
        info = await later.info()
        assert info.parameters["data_type"] == "FLOAT32"
        assert info.extra["configured_vector_type"] == "FLOAT16"
        await cache.store(PROMPTS[2], "8,849 metres.")
        result = await cache.check("what's the capital of France")
        assert result.is_hit and result.best is not None and result.best.entry.key == entry.key
        assert await later.count() == 2
    finally:
        await later.drop()
