"""``RedisStore``: the ``VectorStore`` protocol on a RediSearch HNSW index (Redis Stack, Redis 8).

Every replica of the server can share one Redis: entries, the recorded embedder identity, hit/miss
counters and recent latencies all live there (see ``schema`` for the key layout).

The class is put together from the modules beside it:

- ``core``: connection, error mapping, recovery when the index went away, FT.INFO, the cursor walk;
- ``lifecycle``: open, bind (create or adopt), close, drop, wait_indexed;
- ``entries``: get, search, upsert, delete, clear, purge_expired, count;
- ``listing``: list_entries, iter_entries, get_vectors;
- ``counters``: record_lookup, counters and per-entry hit counts;
- here: construction from settings and inspection (info, health).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.models import ComponentHealth, IndexInfo
from engine.stores.redis import query as q
from engine.stores.redis.core import DEFAULT_URL
from engine.stores.redis.entries import EntriesMixin
from engine.stores.redis.health import server_health
from engine.stores.redis.lifecycle import LifecycleMixin
from engine.stores.redis.listing import ListingMixin

if TYPE_CHECKING:
    from engine.config import Settings

__all__ = ["DEFAULT_URL", "RedisStore"]


class RedisStore(LifecycleMixin, EntriesMixin, ListingMixin):
    kind = "redis"

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore:
        return cls(
            settings.redis_url or DEFAULT_URL,
            name=settings.index_name,
            password=settings.redis_password,
            hnsw_m=settings.hnsw_m,
            hnsw_ef_construction=settings.hnsw_ef_construction,
            hnsw_ef_runtime=settings.hnsw_ef_runtime,
        )

    def __repr__(self) -> str:
        return f"RedisStore({self.safe_url!r}, name={self.name!r})"

    # -- inspection ------------------------------------------------------------------------------------

    async def info(self) -> IndexInfo:
        facts = await self._facts()
        if facts is None:
            raise await self._missing()
        identity, trusted = await self._read_identity(facts)
        meta = {
            q.text(k): q.text(v)
            for k, v in (await self._run(lambda: self.client.hgetall(self.keys.meta))).items()
        }
        vector = facts.vector_field or {}
        parameters: dict[str, Any] = {"dimension": facts.dimension, "data_type": vector.get("data_type")}
        for name in ("M", "ef_construction", "ef_runtime", "block_size", "epsilon"):
            if name in vector:
                parameters[name] = vector[name]
        # FT.INFO does not report EF_RUNTIME; the record of what we created it with does.
        if trusted and "ef_runtime" not in parameters and "hnsw_ef_runtime" in meta:
            parameters["ef_runtime"] = int(meta["hnsw_ef_runtime"])
        parameters["query_ef_runtime"] = self.hnsw.ef_runtime
        definition = facts.raw.get("index_definition", {})
        return IndexInfo(
            name=self.name,
            store=self.kind,
            documents=facts.documents,
            identity=identity,
            algorithm=str(vector.get("algorithm", "?")),
            metric=str(vector.get("distance_metric", "?")),
            parameters=parameters,
            fields=[{k: v for k, v in f.items() if k != "flags" or v} for f in facts.fields],
            memory_bytes=facts.memory_bytes,
            indexing_failures=facts.failures,
            extra={
                "url": self.safe_url,
                "prefixes": definition.get("prefixes", []) if isinstance(definition, dict) else [],
                "identity_recorded": trusted,
                "percent_indexed": facts.raw.get("percent_indexed"),
                "indexing": facts.raw.get("indexing"),
            },
        )

    async def health(self) -> ComponentHealth:
        return await server_health(self, self.client)
