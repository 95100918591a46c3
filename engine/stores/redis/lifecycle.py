"""The index life cycle of ``RedisStore``: open, bind (create, or check and adopt), close, drop.

Creating the index again when it went away under a bound store is ``RedisCore._run``'s recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.exceptions import RedisError

from engine.errors import IndexMismatchError
from engine.models import EmbedderIdentity
from engine.stores.base import mismatch_error
from engine.stores.redis import query as q
from engine.stores.redis import schema as s
from engine.stores.redis.core import RedisCore


class LifecycleMixin(RedisCore):
    """Opening, binding, adopting, closing and dropping the index."""

    @property
    def recorded_identity(self) -> EmbedderIdentity | None:
        return self._recorded

    async def open(self) -> EmbedderIdentity | None:
        await self._run(self.client.ping)
        facts = await self._facts()
        self._recorded = None if facts is None else (await self._read_identity(facts))[0]
        return self._recorded

    async def bind(self, identity: EmbedderIdentity) -> None:
        for _ in range(3):  # a lost creation race is followed by a read of the winner's index
            facts = await self._facts()
            if facts is None:
                if await self._create_index(identity):
                    break
                continue
            recorded, trusted = await self._read_identity(facts)
            assert recorded is not None
            if (trusted and recorded != identity) or recorded.dimension != identity.dimension:
                self._recorded = recorded
                raise mismatch_error(self.name, recorded, identity)
            metric = str((facts.vector_field or {}).get("distance_metric", "COSINE")).upper()
            if metric != "COSINE":
                raise IndexMismatchError(
                    f"index {self.name} measures {metric} distance; semcache thresholds are cosine distances",
                    "choose another CACHE_INDEX_NAME, or run `semcache-tui migrate plan`",
                )
            if not trusted:
                await self._adopt(facts, identity)
            break
        self._bound = self._recorded = identity

    async def _adopt(self, facts: s.IndexFacts, identity: EmbedderIdentity) -> None:
        """Take over an index of the right dimension created without a record (the seed service's):
        add the fields our queries need and put its scope-less entries in the default scope."""
        present = facts.field_names()
        for name, spec in s.OUR_INDEXED_FIELDS.items():
            if name not in present:
                await self._command("FT.ALTER", self.name, "SCHEMA", "ADD", name, *spec)
        if s.SCOPE not in present:
            async for rows in self._scan("*", []):
                pipe = self.client.pipeline(transaction=False)
                for row in rows:
                    pipe.hsetnx(q.text(row["__key"]), s.SCOPE, "default")
                await self._run(pipe.execute)
        meta = s.identity_to_meta(identity, self._vector_field, self.hnsw)
        await self._run(lambda: self.client.hset(self.keys.meta, mapping=meta))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # Closing a connection to a Redis that went away must not fail shutdown.
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def drop(self) -> int:
        facts = await self._facts()
        documents = facts.documents if facts is not None else 0
        # Unbind first: a dropped index must not be recreated by the "index went away" recovery in _run.
        self._bound = self._recorded = None
        if facts is not None:
            await self._command("FT.DROPINDEX", self.name, "DD")
        # Only our own bookkeeping keys: the migration pointer also lives under @semcache:{name}: and stays.
        keys = self.keys
        await self._run(lambda: self.client.delete(keys.meta, keys.stats, keys.latencies, keys.hits))
        await self.close()
        return documents

    async def wait_indexed(self, timeout: float = 10.0) -> None:
        """Wait for a background (re)index after FT.CREATE on existing keys (tools and tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            facts = await self._facts()
            if facts is None or not int(float(facts.raw.get("indexing", 0) or 0)):
                return
            await asyncio.sleep(0.05)
