"""Follow the active-index pointer, so a running server moves with a migration instead of being left behind.

``semcache-tui migrate run`` fills ``NAME__v2`` and then switches the pointer that says which physical index
serves ``NAME``; ``migrate rollback`` switches it back and ``migrate finalize`` drops the old index. Servers
are rarely restarted at that moment, and one that kept serving the old index would miss every entry written
after the switch and fail once the old index is dropped. So each server reads the pointer every
``SEMCACHE_FOLLOW_INTERVAL`` seconds; when it moved, the server opens the new index with the embedder that
filled it (its recorded identity, which is the migration's target), loads that embedder while the old cache
keeps answering, then swaps. The old cache is closed after a grace period, when requests that started on it
have finished.

The same rule applies at start: a migrated index (``NAME__vN``) is served with the embedder it records,
whatever EMBEDDING_* still says, with a warning to update the configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from engine.cache import SemanticCache
from engine.config import Settings
from engine.embeddings import create_embedder
from engine.embeddings.base import Embedder
from engine.factory import policy_from_settings
from engine.index_pointer import ACTIVE, logical_name, records_for
from engine.models import EmbedderIdentity
from engine.server.instrument import instrument
from engine.server.state import ServerState, store_of
from engine.stores import create_store

log = logging.getLogger("semcache.server")

#: Requests that began on the old cache get this long to finish before its store is closed.
RETIRE_GRACE_S = 30.0


def settings_for(settings: Settings, identity: EmbedderIdentity) -> Settings:
    """``settings`` with the embedder an index records (provider, model, output dimension)."""
    return settings.model_copy(
        update={
            "embedding_provider": identity.provider,
            "embedding_model": identity.model,
            "embedding_output_dimension": identity.dimension,
        }
    )


async def active_physical_name(state: ServerState) -> str | None:
    """The physical index the pointer names for the logical index being served, or None if unreadable."""
    store = store_of(state.cache)
    if store is None or not hasattr(store, "kind"):
        return None
    records = records_for(store)
    data = await records.read(ACTIVE)
    physical = (data or {}).get("physical")
    return physical if isinstance(physical, str) and physical else records.name


async def serve_index(state: ServerState, physical: str) -> SemanticCache:
    """Open ``physical`` with the embedder it records, start it, and make it the cache the routes use.

    The current cache keeps answering until the new one is ready; then it is retired (closed after a grace
    period). The embedder is shared when the identity did not change, so no model is loaded twice.
    """
    old = state.cache
    store = create_store(state.settings, physical)
    recorded = await store.open()
    embedder: Embedder
    current = getattr(old, "embedder", None)
    shared = recorded is None or (current is not None and getattr(current, "identity", None) == recorded)
    if shared and current is not None:
        embedder = current
    else:
        settings = state.settings if recorded is None else settings_for(state.settings, recorded)
        embedder = create_embedder(settings)
    cache = SemanticCache(store, embedder, policy_from_settings(state.settings))
    instrument(cache, state.metrics)
    try:
        identity = await cache.start()
    except BaseException:
        await store.close()
        if not shared:
            await embedder.close()
        raise
    state.cache = cache
    log.info("now serving index %s with %s", physical, identity.describe())
    if old is not cache:
        state.retire(_retire(old, keep_embedder=shared))
    return cache


async def _retire(old: Any, keep_embedder: bool) -> None:
    try:
        await asyncio.sleep(RETIRE_GRACE_S)
    finally:
        # Closed even when the server stops first (the sleep is cancelled): nothing is left open.
        store = store_of(old)
        with contextlib.suppress(Exception):
            if store is not None:
                await store.close()
        if not keep_embedder:
            with contextlib.suppress(Exception):
                await old.embedder.close()


async def adopt_migrated_index(state: ServerState) -> bool:
    """At start, after an identity mismatch: if the index is one a migration switched to, serve it with its
    recorded embedder and say so. Returns False when the mismatch is a real configuration error."""
    store = store_of(state.cache)
    name = str(getattr(store, "name", ""))
    recorded = getattr(store, "recorded_identity", None)
    if not name or logical_name(name) == name or recorded is None:
        return False
    log.warning(
        "index %s was filled by a migration with %s, which differs from the configured embedder; serving it "
        "with %s (set EMBEDDING_PROVIDER, EMBEDDING_MODEL and EMBEDDING_OUTPUT_DIMENSION to match)",
        name,
        recorded.describe(),
        recorded.describe(),
    )
    await serve_index(state, name)
    return True


async def follow_active_index(state: ServerState, interval: float) -> None:
    """Every ``interval`` seconds, move to the index the pointer names if it is not the one being served."""
    while True:
        await asyncio.sleep(interval)
        if not state.ready:
            continue
        try:
            physical = await active_physical_name(state)
            serving = getattr(store_of(state.cache), "name", None)
            if physical is None or physical == serving:
                continue
            log.info("the active index of %s moved from %s to %s", logical_name(physical), serving, physical)
            await serve_index(state, physical)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep serving the current index; the next round tries again
            log.warning("could not follow the active index: %s", state.redact(str(exc)))
