"""How a cache is assembled: the one place that wires a store, an embedder and a policy into a cache.

    build_cache(settings)            at start: the index the active-index pointer names, with the embedder
                                     the migration that filled it recorded (engine/index_pointer.py)
    IndexFollower                    later: after ``migrate run`` switches the pointer (or ``rollback``
                                     switches it back), whatever keeps a cache open (a server, the panel)
                                     opens the index it names and swaps, while the old cache keeps answering
    Instruments                      what a server watches (batching lanes, observers), given to every cache
                                     it serves as the cache is built

The embedder is shared when a move does not change the identity, so no model loads twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from engine.cache import CacheObserver, CachePolicy, SemanticCache
from engine.config import Settings
from engine.embeddings import create_embedder
from engine.embeddings.base import Embedder
from engine.embeddings.batching import BatchingEmbedder, BatchObserver
from engine.index_pointer import read_active, records_for, resolve_active
from engine.models import EmbedderIdentity
from engine.stores import create_store
from engine.stores.base import VectorStore

log = logging.getLogger("semcache")


@dataclass(frozen=True, slots=True)
class Instruments:
    """What a server watches on the caches it serves: concurrent embeddings batched over ``lanes`` calls in
    flight and reported to ``on_embed_batch``, and the cache's searches and stores reported to ``observer``."""

    lanes: int
    on_embed_batch: BatchObserver
    observer: CacheObserver

    def embedder(self, embedder: Embedder) -> Embedder:
        """``embedder`` batched; one already batched keeps its lanes and gets the observer if it has none."""
        if not isinstance(embedder, BatchingEmbedder):
            return BatchingEmbedder(embedder, lanes=self.lanes, observer=self.on_embed_batch)
        if embedder.observer is None:
            embedder.observer = self.on_embed_batch
        return embedder

    def fit(self, cache: SemanticCache) -> SemanticCache:
        """Give a cache built elsewhere (by the caller of ``create_app``) the same instruments."""
        cache.embedder = self.embedder(cache.embedder)
        cache.observer = self.observer
        _watch_evictions(cache.vector_store, self)
        return cache


def _cache(
    store: VectorStore,
    embedder: Embedder,
    policy: CachePolicy,
    instruments: Instruments | None,
    settings: Settings,
) -> SemanticCache:
    observer = None
    if instruments is not None:
        _watch_evictions(store, instruments)
        embedder, observer = instruments.embedder(embedder), instruments.observer
    return SemanticCache(
        store,
        embedder,
        policy,
        observer,
        verifier_path=settings.verifier_path,
        model_cache_dir=settings.resolved_model_cache_dir,
    )


def _watch_evictions(store: VectorStore, instruments: Instruments) -> None:
    """Evictions happen inside a store's writes, not in the cache's rules: the store reports them."""
    store.on_evict = instruments.observer.evicted


def policy_from_settings(settings: Settings) -> CachePolicy:
    return CachePolicy(
        threshold=settings.distance_threshold,
        ttl=settings.ttl,
        extend_ttl_on_hit=settings.extend_ttl_on_hit,
        verify_candidates=settings.verify_candidates,
        max_prompt_chars=settings.max_prompt_chars,
        target_precision=settings.target_precision,
    )


def settings_for(settings: Settings, identity: EmbedderIdentity) -> Settings:
    """``settings`` with the embedder an index records (provider, model, output dimension)."""
    return settings.model_copy(
        update={
            "embedding_provider": identity.provider,
            "embedding_model": identity.model,
            "embedding_output_dimension": identity.dimension,
        }
    )


# -- at start ----------------------------------------------------------------------------------------------


def build_cache(settings: Settings, instruments: Instruments | None = None) -> SemanticCache:
    """A cache that is not yet opened: call ``start()`` (or ``open_store()`` for store-only work).

    The index name is logical: after a migration it resolves to the physical index now serving it, and
    that index is served with the embedder the migration filled it with, whatever EMBEDDING_* still says
    (with a warning when they differ): a migration is how an operator changes the embedder, so its record
    is the later word. Indexes no migration touched keep the strict rule (a mismatch is an error).
    """
    physical, recorded = resolve_active(settings)
    settings = _embedder_settings(settings, physical, recorded)
    store = create_store(settings, physical)
    policy = policy_from_settings(settings)
    return _cache(store, create_embedder(settings), policy, instruments, settings)


def _embedder_settings(settings: Settings, physical: str, recorded: dict[str, Any] | None) -> Settings:
    if recorded is None:
        return settings
    try:
        identity = EmbedderIdentity.from_dict(recorded)
    except (KeyError, TypeError, ValueError):
        return settings  # a record we cannot read: the store's own check at start still protects the index
    configured = settings.embedding_output_dimension
    # No configured dimension means "the model's own", which a migration to a smaller one changed: that is
    # the migration's intent, not a disagreement. A different model, or a different explicit dimension, is.
    if (
        identity.provider != settings.embedding_provider
        or identity.model != settings.model_name
        or configured not in (None, identity.dimension)
    ):
        log.warning(
            "index %s was filled by a migration with %s, not the configured embedder; using that one "
            "(set EMBEDDING_PROVIDER, EMBEDDING_MODEL and EMBEDDING_OUTPUT_DIMENSION to match)",
            physical,
            identity.describe(),
        )
    return settings_for(settings, identity)


# -- following the active index ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Move:
    """A started cache on the index the pointer names now, and whether it shares the embedder of the cache
    it replaces (then closing either must leave the embedder open for the other)."""

    cache: SemanticCache
    shares_embedder: bool


class IndexFollower:
    """Moves a served cache along the active-index pointer; the server (engine/server/follow.py) and the
    panel each ask it, the server every SEMCACHE_FOLLOW_INTERVAL seconds, the panel at each poll."""

    def __init__(self, settings: Settings, instruments: Instruments | None = None) -> None:
        self.settings = settings
        self.instruments = instruments

    async def moved_to(self, current: SemanticCache) -> str | None:
        """The physical index the pointer names for ``current``'s logical index, when it is not the one
        ``current`` serves; ``None`` when the pointer did not move."""
        physical = await read_active(records_for(current.vector_store))
        return None if physical == current.vector_store.name else physical

    async def open(self, physical: str, current: SemanticCache) -> Move:
        """A started cache on ``physical`` with the embedder it records (``current``'s when that is the
        same identity), with ``current``'s policy. ``current`` is left untouched."""
        store = create_store(self.settings, physical)
        recorded = await store.open()
        if recorded is None or current.embedder.identity == recorded:
            shared, embedder = True, current.embedder
        else:
            shared, embedder = False, create_embedder(settings_for(self.settings, recorded))
        cache = _cache(store, embedder, current.policy, self.instruments, self.settings)
        cache.verifier = current.verifier  # the same weights: no second load
        try:
            await cache.start()
        except BaseException:
            await store.close()
            if not shared:
                await cache.embedder.close()
            raise
        return Move(cache, shared)

    @staticmethod
    async def close(cache: SemanticCache, keep_embedder: bool) -> None:
        """Close a cache no longer served; its embedder too, unless another cache shares it."""
        await cache.vector_store.close()
        if not keep_embedder:
            await cache.embedder.close()
