"""The index life cycle of ``RedisStore``: open, bind (create, or check and adopt), close, drop.

Creating the index again when it went away under a bound store is ``RedisCore._run``'s recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.exceptions import RedisError

from engine.errors import IndexMismatchError
from engine.models import EmbedderIdentity
from engine.stores.base import mismatch_error
from engine.stores.redis import query as q
from engine.stores.redis import schema as s
from engine.stores.redis.connection import is_existing_index, is_missing_index
from engine.stores.redis.core import RedisCore

logger = logging.getLogger(__name__)


class LifecycleMixin(RedisCore):
    """Opening, binding, adopting, closing and dropping the index."""

    @property
    def recorded_identity(self) -> EmbedderIdentity | None:
        return self._recorded

    async def open(self) -> EmbedderIdentity | None:
        await self._run(self.client.ping)
        facts = await self._facts()
        if facts is not None and facts.scope_folds_case:
            facts = await self._make_scopes_exact(facts)
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

    async def _make_scopes_exact(self, facts: s.IndexFacts) -> s.IndexFacts | None:
        """Redefine an index whose scope field folds case (created before scopes were exact), in place.

        A TAG field's flags cannot be changed by FT.ALTER, so the definition is dropped without its
        documents and created again with the same vector field; Redis indexes the existing entries again in
        the background (searches meanwhile miss rather than serve another scope's answer). Replicas that
        race here each leave the same definition behind.
        """
        logger.warning(
            "index %s on %s folds the case of scopes (created by an earlier version): redefining it so "
            "scopes are exact; its %d entries are kept and indexed again",
            self.name,
            self.safe_url,
            facts.documents,
        )
        args = s.recreate_args(self.keys, facts, self.hnsw.ef_runtime)
        for command in (["FT.DROPINDEX", self.name], args):
            try:
                await self.client.execute_command(*command)
            except RedisError as exc:
                if not (is_missing_index(exc) or is_existing_index(exc)):  # another replica got there first
                    raise self._error(exc) from None
            except OSError as exc:
                raise self._error(exc) from None
        return await self._facts()

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
