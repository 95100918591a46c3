"""Serve what the active-index pointer names: the physical index, opened with the embedder it records.

After ``migrate run`` switches the pointer (or ``rollback`` switches it back), whatever keeps a cache open
(a server, the panel) moves with it: it reads the pointer, opens the index it names with the embedder that
filled it (its recorded identity, the migration's target) and starts it while the old cache keeps
answering, then swaps. The embedder is shared when the identity did not change, so no model loads twice.
"""

from __future__ import annotations

from engine.cache import SemanticCache
from engine.config import Settings
from engine.embeddings import create_embedder
from engine.embeddings.base import Embedder
from engine.index_pointer import read_active, records_for
from engine.models import EmbedderIdentity
from engine.stores import create_store
from engine.stores.base import VectorStore


def settings_for(settings: Settings, identity: EmbedderIdentity) -> Settings:
    """``settings`` with the embedder an index records (provider, model, output dimension)."""
    return settings.model_copy(
        update={
            "embedding_provider": identity.provider,
            "embedding_model": identity.model,
            "embedding_output_dimension": identity.dimension,
        }
    )


async def active_physical_name(store: VectorStore) -> str:
    """The physical index the pointer names for the logical index ``store`` belongs to."""
    return await read_active(records_for(store))


async def open_index(settings: Settings, physical: str, current: SemanticCache) -> tuple[SemanticCache, bool]:
    """A started cache on ``physical`` with the embedder it records, and whether it shares ``current``'s
    embedder (then closing ``current`` must leave the embedder open). ``current`` is left untouched."""
    store = create_store(settings, physical)
    recorded = await store.open()
    running = current.embedder.identity
    shared = recorded is None or running == recorded
    embedder: Embedder = (
        current.embedder if shared else create_embedder(settings_for(settings, recorded))  # type: ignore[arg-type]
    )
    cache = SemanticCache(store, embedder, current.policy)
    try:
        await cache.start()
    except BaseException:
        await store.close()
        if not shared:
            await embedder.close()
        raise
    return cache, shared


async def close_retired(cache: SemanticCache, keep_embedder: bool) -> None:
    """Close a cache no longer served; its embedder too, unless the new cache shares it."""
    await cache.vector_store.close()
    if not keep_embedder:
        await cache.embedder.close()
