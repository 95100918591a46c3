"""Vector stores: the embedded on-disk store (default) and Redis Stack / Redis 8 Query Engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.stores.base import VectorStore

if TYPE_CHECKING:
    from engine.config import Settings

__all__ = ["VectorStore", "create_store"]


def create_store(settings: Settings, name: str | None = None) -> VectorStore:
    """The store the settings name; nothing is opened here. ``name`` is a physical index name (a
    migration's ``{index}__v2``) to open instead of ``settings.index_name``."""
    if name is not None and name != settings.index_name:
        settings = settings.model_copy(update={"index_name": name})
    if settings.store_kind == "redis":
        from engine.stores.redis import RedisStore

        return RedisStore.from_settings(settings)
    from engine.stores.base import Capacity
    from engine.stores.local import LocalStore

    return LocalStore(
        settings.resolved_data_dir,
        name=settings.index_name,
        hnsw_m=settings.hnsw_m,
        ef_construction=settings.hnsw_ef_construction,
        ef_search=settings.hnsw_ef_runtime,
        rerank_copies=settings.rerank_copies,
        capacity=Capacity.from_settings(settings),
    )
