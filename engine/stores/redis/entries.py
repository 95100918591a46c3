"""Reading and writing single entries of ``RedisStore``: get, search, upsert, delete, clear, purge, count."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.errors import IndexMismatchError
from engine.models import CacheEntry, Match
from engine.stores.redis import query as q
from engine.stores.redis import schema as s
from engine.stores.redis.core import BATCH
from engine.stores.redis.counters import CountersMixin


class EntriesMixin(CountersMixin):
    """The entry reads and writes of ``RedisStore`` (reads fill in hit counts, hence ``CountersMixin``)."""

    def _blob(self, vector: np.ndarray) -> bytes:
        flat = np.asarray(vector, dtype=np.float32).reshape(-1)
        if self._bound is not None and flat.shape[0] != self._bound.dimension:
            raise IndexMismatchError(
                f"a {flat.shape[0]}-dimension vector was sent to index {self.name}, which holds "
                f"{self._bound.describe()}",
                "run `semcache-tui migrate plan` to move the cache to the new embedder",
            )
        return flat.tobytes()

    async def get(self, key: str) -> CacheEntry | None:
        values = await self._run(lambda: self.client.hgetall(self.keys.entry(key)))
        if not values:
            return None
        entry = q.entry_from_hash(key, values)
        if entry.is_expired(time.time()):
            return None
        return (await self._with_hits([entry]))[0]

    async def search(
        self, vector: np.ndarray, *, scope: str, k: int, max_distance: float | None = None
    ) -> list[Match]:
        blob, now = self._blob(vector), time.time()
        if max_distance is None:
            text = q.knn(self._vector_field, k, scope)
            params: list[Any] = ["vec", blob, "ef", max(self.hnsw.ef_runtime, k)]
        else:
            text = q.in_range(self._vector_field, scope, hnsw=self._hnsw_index)
            # A hair over the threshold so float32 rounding cannot drop an entry sitting on it.
            params = ["radius", f"{max_distance + 1e-6:.9f}", "vec", blob]
            if self._hnsw_index:
                params += ["eps", self.range_epsilon]
        returned = [*s.ENTRY_FIELDS, s.DISTANCE]
        reply = await self._command(
            "FT.SEARCH", self.name, text, "PARAMS", len(params), *params,
            "SORTBY", s.DISTANCE, "ASC", "RETURN", len(returned), *returned,
            "LIMIT", 0, k, "DIALECT", 2,
        )  # fmt: skip
        matches = []
        for redis_key, values in q.results(reply)[1]:
            match = q.match(
                q.entry_from_hash(self.keys.entry_key(redis_key), values), values.get(s.DISTANCE.encode())
            )
            if match.entry.is_expired(now) or (max_distance is not None and match.distance > max_distance):
                continue
            if match.entry.scope != scope:  # never another scope's answer, whatever the index's definition
                continue
            matches.append(match)
        await self._with_hits([m.entry for m in matches])
        return matches

    async def upsert(self, items: Sequence[tuple[CacheEntry, np.ndarray]]) -> None:
        if not items:
            return
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for entry, vector in items:
            redis_key = self.keys.entry(entry.key)
            pipe.hset(redis_key, mapping=q.entry_to_hash(entry, self._blob(vector), now))
            if entry.expires_at is not None:
                pipe.pexpireat(redis_key, int(entry.expires_at * 1000))
            else:
                pipe.persist(redis_key)
        # The entry carries its hit count, as in the local store: 0 for a prompt stored again (a new entry,
        # whose count starts again), the carried count for a restore or a migration. Last one wins.
        counts = {entry.key: int(entry.hit_count) for entry, _ in items}
        kept: dict[Any, Any] = {key: n for key, n in counts.items() if n > 0}
        reset = [key for key, n in counts.items() if n <= 0]
        if reset:
            pipe.hdel(self.keys.hits, *reset)
        if kept:
            pipe.hset(self.keys.hits, mapping=kept)
        await self._run(pipe.execute)

    async def delete(self, key: str) -> bool:
        pipe = self.client.pipeline(transaction=False)
        pipe.unlink(self.keys.entry(key))
        pipe.hdel(self.keys.hits, key)
        removed, _ = await self._run(pipe.execute)
        return bool(removed)

    async def _delete_matching(self, text: str) -> int:
        """Delete every entry matching ``text``. Through the aggregate cursor, as FT.SEARCH's LIMIT fails
        outright when MAXSEARCHRESULTS is below a page; and in passes until one deletes nothing, because
        a walk that deletes as it goes may step over a few documents."""
        deleted = 0
        while True:
            removed_in_pass = 0
            async for rows in self._scan(text, [], BATCH):
                redis_keys = [q.text(row["__key"]) for row in rows]
                pipe = self.client.pipeline(transaction=False)
                pipe.unlink(*redis_keys)
                pipe.hdel(self.keys.hits, *[self.keys.entry_key(key) for key in redis_keys])
                removed, _ = await self._run(pipe.execute)
                removed_in_pass += int(removed)
            deleted += removed_in_pass
            if not removed_in_pass:  # nothing left, or listed but already gone (the index catches up)
                return deleted

    async def clear(self) -> int:
        if await self._facts() is None:
            if self._bound is None:
                raise await self._missing()
            await self._create_index(self._bound)
            return 0
        deleted = await self._delete_matching("*")
        await self._run(lambda: self.client.delete(self.keys.hits))
        return deleted

    async def purge_expired(self) -> int:
        purged = await self._delete_matching(q.expired(time.time()))
        # Redis drops expired keys by itself; their hit counts are the only thing left behind.
        stale: list[str] = []
        async for key in self.client.hscan_iter(self.keys.hits, count=BATCH):
            stale.append(q.text(key[0] if isinstance(key, tuple) else key))
        if stale:
            pipe = self.client.pipeline(transaction=False)
            for key in stale:
                pipe.exists(self.keys.entry(key))
            alive = await self._run(pipe.execute)
            gone = [key for key, exists in zip(stale, alive, strict=True) if not exists]
            if gone:
                await self._run(lambda: self.client.hdel(self.keys.hits, *gone))
        return purged

    async def count(self) -> int:
        facts = await self._facts()
        if facts is None:
            if self._bound is None:
                raise await self._missing()
            return 0
        return facts.documents
