"""``RedisCore``: what every part of ``RedisStore`` stands on.

The connection and its settings, the mapping of Redis failures to one operator-readable error, the recovery
when the index went away under a bound store (which has to create the index again, so index creation and
FT.INFO reading live here too), and the aggregate-cursor walk over the index that several parts share.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.errors import IndexMismatchError, IndexMissingError, SemcacheError
from engine.models import EmbedderIdentity
from engine.redact import redact_url
from engine.stores.redis import query as q
from engine.stores.redis import schema as s
from engine.stores.redis.connection import (
    is_existing_index,
    is_missing_index,
    make_client,
    translate,
)

T = TypeVar("T")
DEFAULT_URL = "redis://localhost:6379"
#: Keys per pipeline / rows per cursor read when walking or deleting many entries.
BATCH = 1000


class RedisCore:
    """State and plumbing of ``RedisStore``; the mixins beside it build on this."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        name: str = "semantic_cache",
        password: str | None = None,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 200,
        hnsw_ef_runtime: int = 64,
        range_epsilon: float = 0.2,
        connect_timeout: float = 2.0,
        socket_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.name = name
        self.safe_url = redact_url(url)
        self.keys = s.Keys(name)
        self.hnsw = s.Hnsw(hnsw_m, hnsw_ef_construction, hnsw_ef_runtime)
        self.range_epsilon = range_epsilon
        self._password = password
        self._secrets = (password, urlsplit(url).password)
        self._timeouts = (connect_timeout, socket_timeout)
        self._client: Redis | None = None
        self._recorded: EmbedderIdentity | None = None
        self._bound: EmbedderIdentity | None = None
        self._vector_field = s.VECTOR
        self._hnsw_index = True

    @property
    def client(self) -> Redis:
        if self._client is None:
            connect, socket_timeout = self._timeouts
            self._client = make_client(
                self.url, self._password, connect_timeout=connect, socket_timeout=socket_timeout
            )
        return self._client

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

    async def _command(self, *args: Any) -> Any:
        return await self._run(lambda: self.client.execute_command(*args))

    async def list_indexes(self) -> list[str]:
        names = await self._run(lambda: self.client.execute_command("FT._LIST"))
        return sorted(q.text(name) for name in names)

    # -- the index itself ------------------------------------------------------------------------------

    async def _facts(self) -> s.IndexFacts | None:
        """FT.INFO of our index, or ``None`` when there is none."""
        try:
            reply = await self.client.execute_command("FT.INFO", self.name)
        except RedisError as exc:
            if is_missing_index(exc):
                return None
            raise self._error(exc) from None
        except OSError as exc:
            raise self._error(exc) from None
        return s.IndexFacts.parse(reply)

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
        meta = await self._run(lambda: self.client.hgetall(self.keys.meta))
        identity = s.meta_identity(meta)
        if identity is not None and identity.dimension == facts.dimension:
            return identity, True
        return s.unrecorded_identity(facts.dimension), False

    async def _create_index(self, identity: EmbedderIdentity) -> bool:
        """Create the index and record ``identity``; ``False`` when another process created it first."""
        try:
            await self.client.execute_command(*s.create_args(self.keys, identity.dimension, self.hnsw))
        except RedisError as exc:
            if is_existing_index(exc):
                return False
            raise self._error(exc) from None
        except OSError as exc:
            raise self._error(exc) from None
        self._vector_field, self._hnsw_index = s.VECTOR, True
        meta = s.identity_to_meta(identity, s.VECTOR, self.hnsw)
        await self._run(lambda: self.client.hset(self.keys.meta, mapping=meta))
        return True

    # -- walking the index -----------------------------------------------------------------------------

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
