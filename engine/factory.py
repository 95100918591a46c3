"""Assemble a ``SemanticCache`` from ``Settings``: the one place that wires stores and embedders."""

from __future__ import annotations

from engine.cache import CachePolicy, SemanticCache
from engine.config import Settings
from engine.embeddings import create_embedder
from engine.index_pointer import resolve_physical_name
from engine.stores import create_store


def policy_from_settings(settings: Settings) -> CachePolicy:
    return CachePolicy(
        threshold=settings.distance_threshold,
        ttl=settings.ttl,
        extend_ttl_on_hit=settings.extend_ttl_on_hit,
        verify_candidates=settings.verify_candidates,
        max_prompt_chars=settings.max_prompt_chars,
    )


def build_cache(settings: Settings) -> SemanticCache:
    """A cache that is not yet opened: call ``start()`` (or ``open_store()`` for store-only work).

    The index name is logical: after a migration it resolves to the physical index now serving it."""
    store = create_store(settings, resolve_physical_name(settings))
    return SemanticCache(store, create_embedder(settings), policy_from_settings(settings))
