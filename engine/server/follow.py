"""Follow the active-index pointer, so a running server moves with a migration instead of being left behind.

``semcache-tui migrate run`` fills ``NAME__v2`` and then switches the pointer that says which physical index
serves ``NAME``; ``migrate rollback`` switches it back and ``migrate finalize`` drops the old index. Servers
are rarely restarted at that moment, and one that kept serving the old index would miss every entry written
after the switch and fail once the old index is dropped. So each server reads the pointer every
``SEMCACHE_FOLLOW_INTERVAL`` seconds; when it moved, the server opens the new index with the embedder that
filled it (engine/active_index.py) while the old cache keeps answering, then swaps. The old cache is closed
after a grace period, when requests that started on it have finished.

At start, ``build_cache`` applies the same rule: a migrated index is served with the embedder the
migration filled it with (engine/factory.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from engine.active_index import active_physical_name, close_retired, open_index
from engine.cache import SemanticCache
from engine.index_pointer import logical_name
from engine.server.instrument import instrument
from engine.server.state import ServerState

log = logging.getLogger("semcache.server")

#: Requests that began on the old cache get this long to finish before its store is closed.
RETIRE_GRACE_S = 30.0


async def serve_index(state: ServerState, physical: str) -> SemanticCache:
    """Open ``physical`` with the embedder it records (engine/active_index.py), make it the cache the routes
    use, and retire the old one: it keeps answering until the new one is ready, and is closed after a grace
    period so requests that began on it can finish."""
    old = state.cache
    assert isinstance(old, SemanticCache)
    cache, shared = await open_index(state.settings, physical, old)
    instrument(cache, state.metrics)
    state.cache = cache
    log.info("now serving index %s with %s", physical, cache.embedder.identity.describe())  # type: ignore[union-attr]
    state.retire(_retire(old, keep_embedder=shared))
    return cache


async def _retire(old: SemanticCache, keep_embedder: bool) -> None:
    try:
        await asyncio.sleep(RETIRE_GRACE_S)
    finally:
        # Closed even when the server stops first (the sleep is cancelled): nothing is left open.
        with contextlib.suppress(Exception):
            await close_retired(old, keep_embedder)


async def follow_active_index(state: ServerState, interval: float) -> None:
    """Every ``interval`` seconds, move to the index the pointer names if it is not the one being served."""
    while True:
        await asyncio.sleep(interval)
        if not state.ready:
            continue
        try:
            if not isinstance(state.cache, SemanticCache):
                return  # attached to something that is not a local cache: nothing to follow
            store = state.cache.vector_store
            physical = await active_physical_name(store)
            serving = store.name
            if physical is None or physical == serving:
                continue
            log.info("the active index of %s moved from %s to %s", logical_name(physical), serving, physical)
            await serve_index(state, physical)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep serving the current index; the next round tries again
            log.warning("could not follow the active index: %s", state.redact(str(exc)))
