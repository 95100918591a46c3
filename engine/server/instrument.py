"""Give a cache the server's instruments: the batching embedder and a stopwatch on the store's search."""

from __future__ import annotations

from engine.cache import SemanticCache
from engine.embeddings.batching import BatchingEmbedder
from engine.server.metrics import InstrumentedStore, ServerMetrics
from engine.service import CacheService

#: Embedding calls in flight at once: while one computes, the requests of the last one search and answer,
#: so the model never waits on the event loop. Measured on 2 cores (bench/server.py), two lanes serve about
#: 10% more unique prompts than one and three no more than two.
EMBED_LANES = 2


def instrument(cache: CacheService, metrics: ServerMetrics) -> CacheService:
    """Give a ``SemanticCache`` the server's batching embedder and a stopwatch on its store's search.

    Concurrent checks then share one embedding call. A cache that is already instrumented is left as it is.
    """
    if isinstance(cache, SemanticCache):
        if not isinstance(cache.embedder, BatchingEmbedder):
            cache.embedder = BatchingEmbedder(
                cache.embedder, lanes=EMBED_LANES, observer=metrics.observe_embed_batch
            )
        elif cache.embedder.observer is None:
            cache.embedder.observer = metrics.observe_embed_batch
        if not isinstance(cache.vector_store, InstrumentedStore):
            cache.vector_store = InstrumentedStore(cache.vector_store, metrics)
    return cache
