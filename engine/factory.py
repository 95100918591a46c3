"""Assemble a ``SemanticCache`` from ``Settings``: the one place that wires stores and embedders."""

from __future__ import annotations

import logging
from typing import Any

from engine.active_index import settings_for
from engine.cache import CachePolicy, SemanticCache
from engine.config import Settings
from engine.embeddings import create_embedder
from engine.index_pointer import resolve_active
from engine.models import EmbedderIdentity
from engine.stores import create_store

log = logging.getLogger("semcache")


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

    The index name is logical: after a migration it resolves to the physical index now serving it, and
    that index is served with the embedder the migration filled it with, whatever EMBEDDING_* still says
    (with a warning when they differ): a migration is how an operator changes the embedder, so its record
    is the later word. Indexes no migration touched keep the strict rule (a mismatch is an error).
    """
    physical, recorded = resolve_active(settings)
    settings = _embedder_settings(settings, physical, recorded)
    store = create_store(settings, physical)
    return SemanticCache(store, create_embedder(settings), policy_from_settings(settings))


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
