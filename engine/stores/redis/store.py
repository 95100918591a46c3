"""``RedisStore``: the ``VectorStore`` protocol on a RediSearch HNSW index (Redis Stack, Redis 8).

Every replica of the server can share one Redis: entries, the recorded embedder identity, hit/miss
counters and recent latencies all live there (see ``schema`` for the key layout).

The class reads top to bottom: construction, plumbing (one command, its errors, recovery when the index
went away), life cycle, reads, writes, listing, counters, feedback, inspection. The pure parts live beside it:
``query`` (query strings, reply parsing), ``schema`` (FT.CREATE, FT.INFO, the identity record),
``connection`` (the client, error translation) and ``health`` (reading INFO).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from engine.errors import IndexMismatchError, IndexMissingError, NotFoundError, SemcacheError
from engine.models import (
    CacheEntry,
    ComponentHealth,
    EmbedderIdentity,
    EntryFeedback,
    EntryPage,
    IndexInfo,
    Match,
    StoreCounters,
)
from engine.redact import redact_url
from engine.stores import breadth
from engine.stores.base import (
    LATENCY_WINDOW,
    Capacity,
    check_expiry,
    eviction_rank,
    mismatch_error,
    unit_vector,
)
from engine.stores.redis import query as q
from engine.stores.redis import schema as s
from engine.stores.redis.connection import (
    DEFAULT_URL,
    acknowledged_pipeline,
    is_existing_index,
    is_missing_index,
    make_client,
    translate,
)
from engine.stores.redis.health import server_health

if TYPE_CHECKING:
    from engine.config import Settings

__all__ = ["DEFAULT_URL", "RedisStore"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
#: Keys per pipeline / rows per cursor read when walking or deleting many entries.
BATCH = 1000
#: Seconds a KNN search's breadth may be sized by an index size read earlier (``_search_breadth``).
DOCUMENTS_MAX_AGE = 30.0

# Capacity: while one is configured, every entry has a rank in the sorted set ``Keys.rank`` (and in its
# scope's, ``Keys.scope_rank``), written in the upsert's own MULTI with this script at its end, so the
# index is never over its capacity once an upsert returns, however many replicas write. A rank whose
# entry is gone (expired, or evicted by Redis's maxmemory) is dropped when met, uncounted; purge_expired
# drops the rest. Keys are reached by name inside the script: semcache runs on one Redis (or a
# primary with replicas), never a cluster.
_EVICT = """
local rank, stats = KEYS[1], KEYS[2]
local cap, scope_cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local prefix, hits, fb, refused_prefix, rank_prefix = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local evicted, top = 0, nil
local function remove(member, scope)
  local key = prefix .. member
  local actual = redis.call('HGET', key, 'scope')
  if not actual or (scope and actual ~= scope) then
    redis.call('ZREM', rank, member)
    if scope then redis.call('ZREM', rank_prefix .. scope, member) end
    return false
  end
  redis.call('UNLINK', key, refused_prefix .. member)
  redis.call('HDEL', hits, member)
  redis.call('HDEL', fb, member .. ':w', member .. ':r')
  redis.call('ZREM', rank, member)
  redis.call('ZREM', rank_prefix .. actual, member)
  return true
end
local function shrink(zset, limit, scope)
  while redis.call('ZCARD', zset) > limit do
    local lowest = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
    if remove(lowest[1], scope) then
      evicted = evicted + 1
      local score = tonumber(lowest[2])
      if top == nil or score > top then top = score end
    end
    redis.call('ZREM', zset, lowest[1])
  end
end
if scope_cap > 0 then
  for i = 9, #ARGV do shrink(rank_prefix .. ARGV[i], scope_cap, ARGV[i]) end
end
if cap > 0 then shrink(rank, cap, nil) end
if evicted > 0 then
  redis.call('HINCRBY', stats, 'evictions', evicted)
  if ARGV[8] == 'lfu' and top > tonumber(redis.call('HGET', stats, 'lfu_age') or '0') then
    redis.call('HSET', stats, 'lfu_age', tostring(top))
  end
end
return evicted
"""

# One round trip per lookup. Hit counts live in a side hash, not in the entry: touching any field of an
# indexed HASH makes RediSearch re-index the whole document, HNSW vector included (~1.5 ms at 20k).
_RECORD_LOOKUP = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
if #KEYS == 4 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
  if ARGV[5] ~= '' then
    redis.call('PEXPIREAT', KEYS[3], ARGV[5])
    redis.call('HSET', KEYS[3], 'expires_at', ARGV[6])
  end
  if #ARGV > 6 then
    local score = nil
    if ARGV[7] == 'lru' then
      score = ARGV[8]
    elseif ARGV[7] == 'lfu' then
      local n = tonumber(redis.call('HGET', KEYS[4], ARGV[4]) or '1')
      score = tonumber(redis.call('HGET', KEYS[1], 'lfu_age') or '0') + n + 1
    elseif ARGV[5] ~= '' then
      score = ARGV[6]
    end
    if score then
      redis.call('ZADD', ARGV[9], 'XX', score, ARGV[4])
      local scope = redis.call('HGET', KEYS[3], 'scope')
      if scope then redis.call('ZADD', ARGV[10] .. scope, 'XX', score, ARGV[4]) end
    end
  end
end
return 1
"""

# One atomic report. Returns nil when the entry does not exist (Redis expires it on this EXISTS), else
# {wrong, right, refused queries} after the report.
_RECORD_FEEDBACK = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
if ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[2], ARGV[1] .. ':r', 1)
  redis.call('SREM', KEYS[3], ARGV[2])
  redis.call('HINCRBY', KEYS[4], 'feedback_right', 1)
else
  redis.call('HINCRBY', KEYS[2], ARGV[1] .. ':w', 1)
  redis.call('SADD', KEYS[3], ARGV[2])
  redis.call('HINCRBY', KEYS[4], 'feedback_wrong', 1)
end
return {redis.call('HGET', KEYS[2], ARGV[1] .. ':w') or '0', redis.call('HGET', KEYS[2], ARGV[1] .. ':r') or '0',
        redis.call('SMEMBERS', KEYS[3])}
"""


class RedisStore:
    kind = "redis"
    #: The index's M unless SEMCACHE_HNSW_M says otherwise (the value every index was created with so far;
    #: RediSearch's recall was measured at it, breadth.py). An existing index keeps the M it was created with.
    DEFAULT_M = 16

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        name: str = "semantic_cache",
        password: str | None = None,
        hnsw_m: int | None = None,
        hnsw_ef_construction: int = 200,
        hnsw_ef_runtime: int = 64,
        range_epsilon: float = 0.2,
        connect_timeout: float = 2.0,
        socket_timeout: float = 10.0,
        sentinel_password: str | None = None,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        capacity: Capacity | None = None,
        vector_type: str = "float32",
    ) -> None:
        self.url = url
        self.name = name
        self.safe_url = redact_url(url)
        self.keys = s.Keys(name)
        self.hnsw = s.Hnsw(hnsw_m or self.DEFAULT_M, hnsw_ef_construction, hnsw_ef_runtime)
        self.range_epsilon = range_epsilon
        self._password = password
        self._secrets = (password, urlsplit(url).password, sentinel_password)
        self._sentinel_password = sentinel_password
        #: Acknowledged writes (upsert, delete, clear, feedback) wait for this many replicas (WAIT).
        self.wait_replicas, self.wait_timeout = wait_replicas, wait_timeout
        self._timeouts = (connect_timeout, socket_timeout)
        self._client: Redis | None = None
        #: The identity read from the index (``open``), or bound to it (``bind``).
        self._recorded: EmbedderIdentity | None = None
        #: The identity this store writes with; ``None`` until ``bind`` (and again after ``drop``).
        self._bound: EmbedderIdentity | None = None
        #: The index's vector field and algorithm: ours, or those of an adopted index (the seed's).
        self._vector_field = s.VECTOR
        self._hnsw_index = True
        #: False once Redis refused CONFIG GET (a managed Redis, or the least-privilege ACL in
        #: deploy/redis/semcache.acl): health stops asking, so the ACL log does not fill with one refusal
        #: per poll, and reads persistence from INFO alone.
        self._config_readable = True
        self.capacity = capacity or Capacity()
        #: Told how many entries each of this process's writes evicted (the server's metrics).
        self.on_evict: Callable[[int], None] | None = None
        #: The type a new index stores vectors as; an existing index's own type (``_data_type``) wins.
        self.vector_type = s.VECTOR_TYPES.get(vector_type, vector_type.upper())
        self._data_type = "FLOAT32"
        #: The index's document count as last read (FT.INFO), and when: it sizes a KNN search's breadth.
        self._documents, self._documents_read_at = 0, -math.inf

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore:
        return cls(
            settings.redis_url or DEFAULT_URL,
            name=settings.index_name,
            password=settings.redis_password,
            hnsw_m=settings.hnsw_m,
            hnsw_ef_construction=settings.hnsw_ef_construction,
            hnsw_ef_runtime=settings.hnsw_ef_runtime,
            sentinel_password=settings.redis_sentinel_password,
            wait_replicas=settings.redis_wait_replicas,
            wait_timeout=settings.redis_wait_timeout,
            capacity=Capacity.from_settings(settings),
            vector_type=settings.vector_type,
        )

    def __repr__(self) -> str:
        return f"RedisStore({self.safe_url!r}, name={self.name!r})"

    @property
    def client(self) -> Redis:
        if self._client is None:
            connect, socket_timeout = self._timeouts
            self._client = make_client(
                self.url,
                self._password,
                connect_timeout=connect,
                socket_timeout=socket_timeout,
                sentinel_password=self._sentinel_password,
            )
        return self._client

    def _acknowledged(self, *, transaction: bool = False) -> Pipeline:
        """A pipeline for an acknowledged write: confirmed by SEMCACHE_REDIS_WAIT_REPLICAS replicas."""
        return acknowledged_pipeline(
            self.client, transaction=transaction, replicas=self.wait_replicas, timeout=self.wait_timeout
        )

    # -- plumbing --------------------------------------------------------------------------------------

    def _error(self, exc: BaseException) -> SemcacheError:
        return translate(exc, self.safe_url, self._secrets, self.name)

    async def _run(self, command: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis call; its failure becomes one operator-readable error (never a traceback)."""
        try:
            return await command()
        except RedisError as exc:
            if self._bound is not None and is_missing_index(exc):
                # Someone ran the seed's `FT.DROPINDEX {name} DD` to clear the cache: a bound store
                # recreates the index and carries on rather than failing every request until a restart.
                await self._create_index(self._bound)
                try:
                    return await command()
                except RedisError as again:
                    raise self._error(again) from None
            if is_missing_index(exc):
                raise await self._missing() from None
            raise self._error(exc) from None
        except OSError as exc:
            raise self._error(exc) from None

    async def _command(self, *args: Any) -> Any:
        return await self._run(lambda: self.client.execute_command(*args))

    async def _tolerant(self, tolerate: Callable[[RedisError], bool], *args: Any) -> tuple[bool, Any]:
        """(succeeded, reply) of one command run without ``_run``'s recovery, for the commands that make or
        read the index itself; a failure that ``tolerate`` accepts is ``(False, None)``."""
        try:
            return True, await self.client.execute_command(*args)
        except RedisError as exc:
            if tolerate(exc):
                return False, None
            raise self._error(exc) from None
        except OSError as exc:
            raise self._error(exc) from None

    async def _missing(self) -> IndexMissingError:
        try:
            names = await self.list_indexes()
        except SemcacheError:
            names = []
        known = ", ".join(names) if names else "none"
        return IndexMissingError(
            f"index {self.name} does not exist on Redis at {self.safe_url} (indexes there: {known})",
            "check CACHE_INDEX_NAME, or start the cache once (`semcache-tui --serve`) to create it",
        )

    async def exists(self) -> bool:
        return await self._facts() is not None

    async def list_indexes(self) -> list[str]:
        names = await self._run(lambda: self.client.execute_command("FT._LIST"))
        return sorted(q.text(name) for name in names)

    # -- the index itself ------------------------------------------------------------------------------

    async def _facts(self) -> s.IndexFacts | None:
        """FT.INFO of our index, or ``None`` when there is none."""
        found, reply = await self._tolerant(is_missing_index, "FT.INFO", self.name)
        return s.IndexFacts.parse(reply) if found else None

    async def _read_identity(self, facts: s.IndexFacts) -> tuple[EmbedderIdentity | None, bool]:
        """(identity, recorded by semcache). An index without a trustworthy record (the seed's, or one
        recreated under a stale record) is known only by its vector dimension."""
        vector = facts.vector_name
        if vector is None or facts.dimension is None:
            raise IndexMismatchError(
                f"index {self.name} on {self.safe_url} has no vector field: it is not a semantic cache",
                "choose another CACHE_INDEX_NAME",
            )
        self._vector_field = vector
        self._hnsw_index = str((facts.vector_field or {}).get("algorithm", "HNSW")).upper() == "HNSW"
        self._data_type = facts.data_type
        if self._data_type not in q.NUMPY_TYPES:
            raise IndexMismatchError(
                f"index {self.name} stores {self._data_type} vectors; semcache reads FLOAT32 and FLOAT16",
                "choose another CACHE_INDEX_NAME",
            )
        if self._data_type != self.vector_type:
            logger.warning(
                "index %s stores %s vectors, not the configured SEMCACHE_VECTOR_TYPE (%s): it keeps its own "
                "type; to change it, move the cache to a new index (`semcache-tui backup export`, then "
                "`backup import` into another CACHE_INDEX_NAME)",
                self.name,
                self._data_type,
                self.vector_type,
            )
        meta = await self._run(lambda: self.client.hgetall(self.keys.meta))
        identity = s.meta_identity(meta)
        if identity is not None and identity.dimension == facts.dimension:
            return identity, True
        return s.unrecorded_identity(facts.dimension), False

    async def _create_index(self, identity: EmbedderIdentity) -> bool:
        """Create the index and record ``identity``; ``False`` when another process created it first."""
        args = s.create_args(self.keys, identity.dimension, self.hnsw, self.vector_type)
        created, _ = await self._tolerant(is_existing_index, *args)
        if not created:
            return False
        self._vector_field, self._hnsw_index, self._data_type = s.VECTOR, True, self.vector_type
        meta = s.identity_to_meta(identity, s.VECTOR, self.hnsw)
        await self._run(lambda: self.client.hset(self.keys.meta, mapping=meta))
        return True

    async def _scan(
        self, query: str, fields: Sequence[str], count: int = BATCH
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every match of ``query`` in batches of up to ``count``, through an aggregate cursor: FT.SEARCH's
        LIMIT offset is capped by MAXSEARCHRESULTS (10000 in Redis Stack's own configuration)."""
        load = ["@__key", *(f"@{name}" for name in fields)]
        # TIMEOUT 0: no time limit. Under the default (500 ms, ON_TIMEOUT RETURN) a slow walk on a busy
        # server ends early with partial results and no error: an export would miss entries silently.
        args = ["FT.AGGREGATE", self.name, query, "LOAD", len(load), *load, "TIMEOUT", 0]
        reply = await self._command(*args, "WITHCURSOR", "COUNT", count, "DIALECT", 2)
        cursor = int(reply[1])
        try:
            while True:
                page, cursor = reply[0], int(reply[1])
                rows = [{q.text(k): v for k, v in values.items()} for _, values in q.results(page)[1]]
                if rows:
                    yield rows
                if cursor == 0:
                    return
                reply = await self._command("FT.CURSOR", "READ", self.name, cursor)
        finally:
            if cursor != 0:
                # A consumer that stopped early (an export that failed) would otherwise leave the cursor
                # holding server memory until Redis's idle timeout; failing to free it changes nothing.
                with contextlib.suppress(RedisError, OSError):
                    await self.client.execute_command("FT.CURSOR", "DEL", self.name, cursor)

    # -- life cycle: open, bind (create, or check and adopt), close, drop ------------------------------

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
        await self._prepare_ranks()

    async def _prepare_ranks(self) -> None:
        """Make the ranks cover every entry when a capacity is configured (ranking them once when the
        index was filled without one, or for another policy); without one, mark them as not kept, so a
        capacity configured later ranks again instead of trusting ranks that missed writes."""
        meta = self.keys.meta
        if not self.capacity.limited:
            await self._run(lambda: self.client.hdel(meta, "rank_policy"))
            return
        recorded = await self._run(lambda: self.client.hget(meta, "rank_policy"))
        if recorded is not None and q.text(recorded) == self.capacity.policy:
            return
        logger.info("ranking the entries of index %s for the %s policy", self.name, self.capacity.policy)
        await self._forget_ranks()
        fields = [s.SCOPE, s.CREATED, s.EXPIRES]
        match, cursor = q.glob_escape(self.keys.prefix) + "*", 0
        while True:
            step = functools.partial(self.client.scan, cursor, match=match, count=BATCH, _type="HASH")
            cursor, found = await self._run(step)
            keys = [q.text(raw) for raw in found]
            if keys:
                pipe = self.client.pipeline(transaction=False)
                for key in keys:
                    pipe.hmget(key, fields)
                rows = await self._run(pipe.execute)
                entries = [self.keys.entry_key(key) for key in keys]
                hits = await self._run(lambda: self.client.hmget(self.keys.hits, entries))  # noqa: B023
                pipe = self.client.pipeline(transaction=False)
                for key, (scope, created, expires), count in zip(entries, rows, hits, strict=True):
                    if scope is None:
                        continue
                    expiry = q.number(expires)
                    score = eviction_rank(
                        self.capacity.policy,
                        now=q.number(created),
                        hits=int(count or 0),
                        expires_at=expiry if expiry > 0 else None,
                        created_at=q.number(created),
                        lfu_age=0.0,
                    )
                    pipe.zadd(self.keys.rank, {key: score})
                    pipe.zadd(self.keys.scope_rank(q.text(scope)), {key: score})
                await self._run(pipe.execute)
            if int(cursor) == 0:
                break
        await self._run(lambda: self.client.hset(meta, "rank_policy", self.capacity.policy))
        # A capacity lowered since the last start applies now, not at the next write.
        await self._evict_over([], None)

    async def _forget_ranks(self) -> None:
        match, cursor, found = q.glob_escape(self.keys.rank_prefix) + "*", 0, [self.keys.rank]
        while True:
            step = functools.partial(self.client.scan, cursor, match=match, count=BATCH)
            cursor, keys = await self._run(step)
            found += [q.text(raw) for raw in keys]
            if int(cursor) == 0:
                break
        for start in range(0, len(found), BATCH):
            chunk = found[start : start + BATCH]
            await self._run(lambda: self.client.unlink(*chunk))  # noqa: B023

    def _evict_args(self, scopes: Sequence[str]) -> list[Any]:
        keys = self.keys
        return [
            _EVICT, 2, keys.rank, keys.stats,
            self.capacity.max_entries, self.capacity.max_entries_per_scope, keys.prefix, keys.hits,
            keys.feedback, keys.refused_prefix, keys.rank_prefix, self.capacity.policy, *scopes,
        ]  # fmt: skip

    async def _evict_over(self, scopes: Sequence[str], pipe: Pipeline | None) -> None:
        """Queue the eviction script on ``pipe`` (an upsert's), or run it now."""
        if pipe is not None:
            pipe.eval(*self._evict_args(scopes))
            return
        evicted = await self._run(lambda: self.client.eval(*self._evict_args(scopes)))
        if int(evicted or 0) and self.on_evict is not None:
            self.on_evict(int(evicted))

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

        def raced(exc: RedisError) -> bool:  # another replica got there first
            return is_missing_index(exc) or is_existing_index(exc)

        for command in (["FT.DROPINDEX", self.name], args):
            await self._tolerant(raced, *command)
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
        await self._run(
            lambda: self.client.delete(
                keys.meta, keys.stats, keys.latencies, keys.hits, keys.feedback, keys.notes
            )
        )
        await self._forget_every_refused()
        await self._forget_ranks()
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

    # -- reads -----------------------------------------------------------------------------------------

    async def get(self, key: str) -> CacheEntry | None:
        values = await self._run(lambda: self.client.hgetall(self.keys.entry(key)))
        if not values:
            return None
        entry = q.entry_from_hash(key, values)
        if entry.is_expired(time.time()):
            return None
        return (await self._with_hits([entry]))[0]

    async def search(
        self,
        vector: np.ndarray,
        *,
        scope: str,
        k: int,
        max_distance: float | None = None,
        with_vectors: bool = False,
    ) -> list[Match]:
        blob, now = self._blob(vector), time.time()
        if max_distance is None:
            text = q.knn(self._vector_field, k, scope)
            params: list[Any] = ["vec", blob, "ef", max(await self._search_breadth(), k)]
        else:
            text = q.in_range(self._vector_field, scope, hnsw=self._hnsw_index)
            # A hair over the threshold so float32 rounding cannot drop an entry sitting on it.
            params = ["radius", f"{max_distance + 1e-6:.9f}", "vec", blob]
            if self._hnsw_index:
                params += ["eps", self.range_epsilon]
        # Vectors only when asked: at k=5, 384 dims they add ~60 us to a ~1 ms range query (5 x 1.5 KB more
        # in the reply; bench/search_vectors.py), where the local store reads them for its re-ranking anyway.
        returned = [*s.ENTRY_FIELDS, s.DISTANCE, *([self._vector_field] if with_vectors else [])]
        reply = await self._command(
            "FT.SEARCH", self.name, text, "PARAMS", len(params), *params,
            "SORTBY", s.DISTANCE, "ASC", "RETURN", len(returned), *returned,
            "LIMIT", 0, k, "DIALECT", 2,
        )  # fmt: skip
        matches = []
        vector_field = self._vector_field.encode()
        for redis_key, values in q.results(reply)[1]:
            match = q.match(
                q.entry_from_hash(self.keys.entry_key(redis_key), values),
                values.get(s.DISTANCE.encode()),
                values.get(vector_field),
                self._data_type,
            )
            if match.entry.is_expired(now) or (max_distance is not None and match.distance > max_distance):
                continue
            if match.entry.scope != scope:  # never another scope's answer, whatever the index's definition
                continue
            matches.append(match)
        await self._with_hits([m.entry for m in matches])
        return matches

    async def _search_breadth(self) -> int:
        """EF_RUNTIME for a KNN query: the configured one, wider for a big index (breadth.py). The size is
        read at most every ``DOCUMENTS_MAX_AGE`` seconds: FT.INFO on every search would double its cost,
        and a breadth sized a few seconds late changes recall by nothing measurable."""
        now = time.monotonic()
        if now - self._documents_read_at >= DOCUMENTS_MAX_AGE:
            self._documents_read_at = now  # before the await: concurrent searches do not all ask
            facts = await self._facts()
            self._documents = facts.documents if facts is not None else 0
        return breadth.ef_for(self._documents, self.hnsw.ef_runtime, breadth.REDIS_REACH)

    async def count(self) -> int:
        facts = await self._facts()
        if facts is None:
            if self._bound is None:
                raise await self._missing()
            return 0
        return facts.documents

    # -- writes ----------------------------------------------------------------------------------------

    def _blob(self, vector: np.ndarray) -> bytes:
        flat = np.asarray(vector, dtype=np.float32).reshape(-1)
        if self._bound is not None and flat.shape[0] != self._bound.dimension:
            raise IndexMismatchError(
                f"a {flat.shape[0]}-dimension vector was sent to index {self.name}, which holds "
                f"{self._bound.describe()}",
                "run `semcache-tui migrate plan` to move the cache to the new embedder",
            )
        return flat.astype(q.NUMPY_TYPES[self._data_type]).tobytes()

    async def upsert(self, items: Sequence[tuple[CacheEntry, np.ndarray]]) -> None:
        if not items:
            return
        # Everything is checked before anything is sent: MULTI/EXEC applies a batch whole, but does not
        # roll back a command that fails at run time (a PEXPIREAT past year 9999) after the others.
        check_expiry([entry for entry, _ in items])
        blobs = [self._blob(unit_vector(vector)) for _, vector in items]
        now = time.time()
        pipe = self._acknowledged(transaction=True)
        for (entry, _), blob in zip(items, blobs, strict=True):
            redis_key = self.keys.entry(entry.key)
            pipe.hset(redis_key, mapping=q.entry_to_hash(entry, blob, now))
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
            # Stored again: a new entry, whose hit count and feedback start again.
            pipe.hdel(self.keys.hits, *reset)
            pipe.hdel(self.keys.feedback, *self._feedback_fields(reset))
            pipe.unlink(*[self.keys.refused(key) for key in reset])
        if kept:
            pipe.hset(self.keys.hits, mapping=kept)
        evict_at = None
        if self.capacity.limited:
            lfu_age = 0.0
            if self.capacity.policy == "lfu":
                lfu_age = q.number(await self._run(lambda: self.client.hget(self.keys.stats, "lfu_age")))
            for entry, _ in items:
                score = eviction_rank(
                    self.capacity.policy,
                    now=now,
                    hits=int(entry.hit_count),
                    expires_at=entry.expires_at,
                    created_at=float(entry.created_at),
                    lfu_age=lfu_age,
                )
                pipe.zadd(self.keys.rank, {entry.key: score})
                pipe.zadd(self.keys.scope_rank(entry.scope), {entry.key: score})
            evict_at = len(pipe.command_stack)
            await self._evict_over(sorted({entry.scope for entry, _ in items}), pipe)
        replies = await self._run(pipe.execute)
        if evict_at is not None and self.on_evict is not None and int(replies[evict_at] or 0):
            self.on_evict(int(replies[evict_at]))

    async def delete(self, key: str) -> bool:
        scope = None
        if self.capacity.limited:
            scope = await self._run(lambda: self.client.hget(self.keys.entry(key), s.SCOPE))
        pipe = self._acknowledged()
        pipe.unlink(self.keys.entry(key))
        if self.capacity.limited:
            pipe.zrem(self.keys.rank, key)
            if scope is not None:
                pipe.zrem(self.keys.scope_rank(q.text(scope)), key)
        pipe.hdel(self.keys.hits, key)
        pipe.hdel(self.keys.feedback, *self._feedback_fields([key]))
        pipe.unlink(self.keys.refused(key))
        removed, *_ = await self._run(pipe.execute)
        return bool(removed)

    async def _delete_matching(self, text: str) -> int:
        """Delete every entry matching ``text``. Through the aggregate cursor, as FT.SEARCH's LIMIT fails
        outright when MAXSEARCHRESULTS is below a page; and in passes until one deletes nothing, because
        a walk that deletes as it goes may step over a few documents."""
        deleted = 0
        while True:
            removed_in_pass = 0
            async for rows in self._scan(text, [s.SCOPE], BATCH):
                redis_keys = [q.text(row["__key"]) for row in rows]
                keys = [self.keys.entry_key(key) for key in redis_keys]
                pipe = self._acknowledged()
                pipe.unlink(*redis_keys)
                if self.capacity.limited:
                    pipe.zrem(self.keys.rank, *keys)
                    for row, key in zip(rows, keys, strict=True):
                        if s.SCOPE in row:
                            pipe.zrem(self.keys.scope_rank(q.text(row[s.SCOPE])), key)
                pipe.hdel(self.keys.hits, *keys)
                pipe.hdel(self.keys.feedback, *self._feedback_fields(keys))
                pipe.unlink(*[self.keys.refused(key) for key in keys])
                removed, *_ = await self._run(pipe.execute)
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
        pipe = self._acknowledged()
        pipe.delete(self.keys.hits, self.keys.feedback)
        await self._run(pipe.execute)
        await self._forget_every_refused()
        if self.capacity.limited:
            await self._forget_ranks()  # empty ranks are complete ranks: the policy record stays
        return deleted

    async def purge_expired(self) -> int:
        purged = await self._delete_matching(q.expired(time.time()))
        # Redis drops expired keys by itself; their hit counts and feedback are all that is left behind.
        # Feedback is not given the entry's expiry: a hit slides the entry's expiry (record_lookup), and
        # the refused queries must live exactly as long as the entry. Left behind, they are never read
        # (``feedback`` skips keys without an entry) and a prompt stored again resets them.
        stale: set[str] = set()
        async for field in self.client.hscan_iter(self.keys.hits, count=BATCH):
            stale.add(q.text(field[0] if isinstance(field, tuple) else field))
        async for field in self.client.hscan_iter(self.keys.feedback, count=BATCH):
            stale.add(q.text(field[0] if isinstance(field, tuple) else field)[:-2])  # less ":w" / ":r"
        async for refused in self._refused_keys():
            stale.add(refused[len(self.keys.refused_prefix) :])
        ordered = sorted(stale)
        for start in range(0, len(ordered), BATCH):
            chunk = ordered[start : start + BATCH]
            pipe = self.client.pipeline(transaction=False)
            for key in chunk:
                pipe.exists(self.keys.entry(key))
            alive = await self._run(pipe.execute)
            gone = [key for key, exists in zip(chunk, alive, strict=True) if not exists]
            if gone:
                pipe = self.client.pipeline(transaction=False)
                pipe.hdel(self.keys.hits, *gone)
                pipe.hdel(self.keys.feedback, *self._feedback_fields(gone))
                pipe.unlink(*[self.keys.refused(key) for key in gone])
                await self._run(pipe.execute)
        if self.capacity.limited:
            await self._drop_stale_ranks()
        return purged

    async def _drop_stale_ranks(self) -> None:
        """Drop the ranks of entries Redis removed by itself (expiry, maxmemory eviction): until then they
        count towards the capacity, so the index may hold fewer entries than it allows, never more."""
        zsets, match, cursor = [self.keys.rank], q.glob_escape(self.keys.rank_prefix) + "*", 0
        while True:
            step = functools.partial(self.client.scan, cursor, match=match, count=BATCH, _type="ZSET")
            cursor, keys = await self._run(step)
            zsets += [q.text(raw) for raw in keys]
            if int(cursor) == 0:
                break
        for zset in zsets:
            members = [
                q.text(m[0] if isinstance(m, tuple) else m) async for m in self.client.zscan_iter(zset)
            ]
            for start in range(0, len(members), BATCH):
                chunk = members[start : start + BATCH]
                pipe = self.client.pipeline(transaction=False)
                for member in chunk:
                    pipe.exists(self.keys.entry(member))
                alive = await self._run(pipe.execute)
                gone = [m for m, exists in zip(chunk, alive, strict=True) if not exists]
                if gone:
                    await self._run(lambda: self.client.zrem(zset, *gone))  # noqa: B023

    def _feedback_fields(self, keys: Sequence[str]) -> list[str]:
        return [field for key in keys for field in self.keys.feedback_fields(key)]

    async def _refused_keys(self) -> AsyncIterator[str]:
        """Every refused set of this index, its entry alive or not (a key met twice by SCAN is harmless)."""
        match, cursor = q.glob_escape(self.keys.refused_prefix) + "*", 0
        while True:
            step = functools.partial(self.client.scan, cursor, match=match, count=BATCH, _type="SET")
            cursor, found = await self._run(step)
            for raw in found:
                yield q.text(raw)
            if int(cursor) == 0:
                return

    async def _forget_every_refused(self) -> None:
        """Unlink every refused set of this index (``clear``, ``drop``), left behind by expiry included."""
        found = [key async for key in self._refused_keys()]
        for start in range(0, len(found), BATCH):
            pipe = self._acknowledged()
            pipe.unlink(*found[start : start + BATCH])
            await self._run(pipe.execute)

    # -- notes: the index's own bookkeeping (an import in progress) -----------------------------------

    async def set_note(self, name: str, value: dict[str, Any] | None) -> None:
        pipe = self._acknowledged()
        if value is None:
            pipe.hdel(self.keys.notes, name)
        else:
            pipe.hset(self.keys.notes, name, json.dumps(value))
        await self._run(pipe.execute)

    async def notes(self) -> dict[str, dict[str, Any]]:
        raw = await self._run(lambda: self.client.hgetall(self.keys.notes))
        return {q.text(name): note for name, value in raw.items() if (note := _note(value)) is not None}

    # -- listing: the panel's pages, exports' batches and their vectors --------------------------------

    async def list_entries(
        self, *, offset: int = 0, limit: int = 50, scope: str | None = None, contains: str | None = None
    ) -> EntryPage:
        text = q.filters(time.time(), scope)
        if not contains:
            returned = list(s.ENTRY_FIELDS)
            reply = await self._command(
                "FT.SEARCH", self.name, text, "SORTBY", s.CREATED, "DESC",
                "RETURN", len(returned), *returned, "LIMIT", offset, limit, "DIALECT", 2,
            )  # fmt: skip
            total, rows = q.results(reply)
            entries = [q.entry_from_hash(self.keys.entry_key(key), values) for key, values in rows]
            return EntryPage(await self._with_hits(entries), total, offset, limit)
        terms = q.contains_terms(contains)
        if terms:
            text += f" @{s.PROMPT}:({' '.join(terms)})"
        needle = contains.casefold()
        found: list[tuple[float, str]] = []
        async for batch in self._scan(text, [s.PROMPT, s.CREATED]):
            for row in batch:
                if needle in q.text(row.get(s.PROMPT, b"")).casefold():
                    found.append((-q.number(row.get(s.CREATED)), q.text(row["__key"])))
        found.sort()
        page_keys = [key for _, key in found[offset : offset + limit]]
        pipe = self.client.pipeline(transaction=False)
        for key in page_keys:
            pipe.hgetall(key)
        hashes = await self._run(pipe.execute) if page_keys else []
        entries = [
            q.entry_from_hash(self.keys.entry_key(key), values)
            for key, values in zip(page_keys, hashes, strict=True)
            if values
        ]
        return EntryPage(await self._with_hits(entries), len(found), offset, limit)

    async def iter_entries(
        self, *, batch: int = 500, scope: str | None = None
    ) -> AsyncIterator[list[CacheEntry]]:
        # SCAN over the entries' key prefix rather than a query of the index: Redis promises that SCAN meets
        # every key present for the whole walk, whatever state the index is in, and no result cap (LIMIT's
        # MAXSEARCHRESULTS) applies. A backup must not depend on the secondary index. A key can be met twice
        # (the keyspace rehashing); the keys seen drop the repeats.
        batch = max(1, batch)
        match = q.glob_escape(self.keys.prefix) + "*"
        fields = list(s.ENTRY_FIELDS)
        seen: set[str] = set()
        pending: list[CacheEntry] = []
        cursor = 0
        while True:
            step = functools.partial(
                self.client.scan, cursor, match=match, count=max(batch, 100), _type="HASH"
            )
            cursor, found = await self._run(step)
            keys = [key for key in dict.fromkeys(q.text(raw) for raw in found) if key not in seen]
            seen.update(keys)
            if keys:
                pipe = self.client.pipeline(transaction=False)
                for key in keys:
                    pipe.hmget(key, fields)
                rows = await self._run(pipe.execute)
                now = time.time()
                for key, values in zip(keys, rows, strict=True):
                    if values is None or values[0] is None:  # gone meanwhile, or not an entry (no prompt)
                        continue
                    entry = q.entry_from_hash(
                        self.keys.entry_key(key), dict(zip(fields, values, strict=True))
                    )
                    if entry.is_expired(now) or (scope is not None and entry.scope != scope):
                        continue
                    pending.append(entry)
            while len(pending) >= batch:
                page, pending = pending[:batch], pending[batch:]
                yield await self._with_hits(page)
            if int(cursor) == 0:
                break
        if pending:
            yield await self._with_hits(pending)

    async def get_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored float32 vector of each key that still exists (for exports); absent keys are left out."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            pipe = self.client.pipeline(transaction=False)
            for key in chunk:
                pipe.hget(self.keys.entry(key), self._vector_field)
            blobs = await self._run(pipe.execute)
            for key, blob in zip(chunk, blobs, strict=True):
                vector = q.vector(blob, self._data_type)
                if vector is not None:
                    found[key] = vector
        return found

    # -- counters: hits, misses, recent latencies, per-entry hit counts --------------------------------

    async def _with_hits(self, entries: list[CacheEntry]) -> list[CacheEntry]:
        if entries:
            counts = await self._run(lambda: self.client.hmget(self.keys.hits, [e.key for e in entries]))
            for entry, count in zip(entries, counts, strict=True):
                entry.hit_count = int(count or 0)
        return entries

    async def record_lookup(
        self, *, hit_key: str | None, latency_ms: float, extend_to: float | None = None
    ) -> None:
        keys = [self.keys.stats, self.keys.latencies]
        args: list[Any] = ["hits" if hit_key else "misses", f"{latency_ms:.4f}", LATENCY_WINDOW]
        if hit_key:
            keys += [self.keys.entry(hit_key), self.keys.hits]
            extend = (str(int(extend_to * 1000)), f"{extend_to:.6f}") if extend_to is not None else ("", "")
            args += [hit_key, *extend]
            if self.capacity.limited:
                args += [self.capacity.policy, f"{time.time():.6f}", self.keys.rank, self.keys.rank_prefix]
        await self._run(lambda: self.client.eval(_RECORD_LOOKUP, len(keys), *keys, *args))

    async def counters(self) -> StoreCounters:
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.keys.stats, ["hits", "misses", "feedback_wrong", "feedback_right", "evictions"])
        pipe.lrange(self.keys.latencies, 0, LATENCY_WINDOW - 1)
        (hits, misses, wrong, right, evictions), latencies = await self._run(pipe.execute)
        return StoreCounters(
            int(hits or 0),
            int(misses or 0),
            [q.number(v) for v in latencies],
            feedback_wrong=int(wrong or 0),
            feedback_right=int(right or 0),
            evictions=int(evictions or 0),
        )

    # -- feedback: counts beside the entries, a refused set per entry, totals in the stats hash ----------

    async def record_feedback(self, entry_key: str, query_key: str, correct: bool) -> EntryFeedback:
        keys = [
            self.keys.entry(entry_key),
            self.keys.feedback,
            self.keys.refused(entry_key),
            self.keys.stats,
        ]
        args = [entry_key, query_key, "1" if correct else "0"]
        pipe = self._acknowledged()
        pipe.eval(_RECORD_FEEDBACK, len(keys), *keys, *args)
        (reply,) = await self._run(pipe.execute)
        if reply is None:
            raise NotFoundError(
                f"no entry {entry_key} in index {self.name} to report feedback on",
                "it expired or was deleted; report feedback with the key of a hit the cache just served",
            )
        found = q.entry_feedback(*reply)
        return found if found is not None else EntryFeedback()

    async def feedback(self, entry_keys: Sequence[str]) -> dict[str, EntryFeedback]:
        if not entry_keys:
            return {}
        keys = list(dict.fromkeys(entry_keys))
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.exists(self.keys.entry(key))
            pipe.hmget(self.keys.feedback, list(self.keys.feedback_fields(key)))
            pipe.smembers(self.keys.refused(key))
        replies = await self._run(pipe.execute)
        found: dict[str, EntryFeedback] = {}
        for index, key in enumerate(keys):
            exists, (wrong, right), refused = replies[3 * index : 3 * index + 3]
            feedback = q.entry_feedback(wrong, right, refused) if exists else None
            if feedback is not None:
                found[key] = feedback
        return found

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
        # What a KNN query passes now: the configured breadth, wider for a big index (breadth.py).
        parameters["query_ef_runtime"] = breadth.ef_for(
            facts.documents, self.hnsw.ef_runtime, breadth.REDIS_REACH
        )
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
                "configured_vector_type": self.vector_type,
            },
            max_entries=self.capacity.max_entries or None,
            max_entries_per_scope=self.capacity.max_entries_per_scope or None,
            eviction_policy=self.capacity.policy,
            evictions=(await self.counters()).evictions,
        )

    async def health(self) -> ComponentHealth:
        """One PING and one INFO, never a scan (the panel polls it)."""
        started = time.perf_counter()
        try:
            await self.client.ping()
            latency_ms = (time.perf_counter() - started) * 1000.0
            pipe = self.client.pipeline(transaction=False)
            pipe.info("server", "memory", "clients", "stats", "persistence")
            pipe.execute_command("MODULE", "LIST")
            if self._config_readable:
                pipe.config_get("save")
                pipe.config_get("appendonly")
            # CONFIG may be refused: its replies then come back as errors, not raised.
            replies = await pipe.execute(raise_on_error=False)
            info, modules = replies[0], replies[1]
            save, appendonly = replies[2:4] if self._config_readable else (None, None)
            for reply in (info, modules):
                if isinstance(reply, Exception):
                    raise reply
            if isinstance(save, Exception) or isinstance(appendonly, Exception):
                self._config_readable = False
                save = appendonly = None
        except (RedisError, OSError) as exc:
            return ComponentHealth("store", "down", str(self._error(exc)))
        return server_health(
            info, modules, latency_ms, url=self.safe_url, index=self.name, save=save, appendonly=appendonly
        )


def _note(raw: Any) -> dict[str, Any] | None:
    """A stored note, or ``None`` for one that is not a JSON object (written by something else)."""
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None
