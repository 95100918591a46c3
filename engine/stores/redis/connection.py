"""The Redis client and the translation of its failures into the engine's operator-readable errors.

Fail fast: a short connect timeout and one immediate retry (enough to replace a pooled connection that
died when Redis restarted), never redis-py's default loop of retries with backoff, so a request made
while Redis is down gets a 503 at once and the first one after it is back succeeds.

High availability: a ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`` URL (or
REDIS_SENTINELS + REDIS_SENTINEL_MASTER, which the settings turn into one) gives a client of the primary
that Sentinel names for ``service``, through redis-py's Sentinel support: every new connection asks the
Sentinels where the primary is, so after a failover the client follows the new primary by itself. The
URL's credentials (else REDIS_PASSWORD) are the data nodes'; the Sentinels' own password, when they have
one, is ``sentinel_password`` (REDIS_SENTINEL_PASSWORD).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, overload
from urllib.parse import quote, unquote, urlsplit

import redis
import redis.sentinel
from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.errors import BackendUnavailableError, IndexMismatchError, IndexMissingError, SemcacheError
from engine.redact import redact_secret

DEFAULT_URL = "redis://localhost:6379"
SENTINEL_SCHEME = "redis+sentinel://"
NEEDS_SEARCH_HINT = (
    "use Redis Stack or Redis 8 with the Query Engine (plain Redis has no vector search), "
    "or set SEMCACHE_STORE=local"
)
FAILOVER_HINT = (
    "retry in a few seconds: with Sentinel (REDIS_SENTINELS or a redis+sentinel:// URL) semcache follows "
    "the new primary by itself"
)


class NotReplicatedError(rex.RedisError):
    """A write the primary applied but fewer replicas than SEMCACHE_REDIS_WAIT_REPLICAS confirmed in time."""

    def __init__(self, wanted: int, confirmed: int, timeout: float) -> None:
        super().__init__(f"WAIT {wanted}: {confirmed} replica(s) confirmed within {timeout:g} s")
        self.wanted, self.confirmed, self.timeout = wanted, confirmed, timeout


@dataclass(frozen=True, slots=True)
class SentinelAddress:
    """What a ``redis+sentinel://`` URL names: the Sentinels, the service (master name), the database and
    the data nodes' credentials."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


_HOST_PORT = re.compile(r"^(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]/,]+))(?::(?P<port>\d{1,5}))?$")


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (the port defaults to Sentinel's 26379); ``ValueError`` saying what is wrong."""
    found: list[tuple[str, int]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        match = _HOST_PORT.match(part)
        port = int(match.group("port") or 26379) if match else 0
        if match is None or not 0 < port < 65536:
            raise ValueError(f"{part!r} is not host:port")
        found.append((match.group("ip6") or match.group("host"), port))
    if not found:
        raise ValueError("no Sentinel address")
    return tuple(found)


def parse_sentinel_url(url: str) -> SentinelAddress:
    """Read ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``; ``ValueError``."""
    if not url.startswith(SENTINEL_SCHEME):
        raise ValueError(f"not a {SENTINEL_SCHEME} URL")
    rest = url[len(SENTINEL_SCHEME) :].split("?", 1)[0].split("#", 1)[0]
    netloc, _, path = rest.partition("/")
    credentials, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError("the path must be /service or /service/db (service: the Sentinel master name)")
    if len(parts) == 2 and not parts[1].isdigit():
        raise ValueError(f"database {parts[1]!r} is not a number")
    return SentinelAddress(
        parse_sentinels(hosts), unquote(parts[0]), int(parts[1]) if len(parts) == 2 else 0, username, password
    )


def sentinel_url(sentinels: str, service: str) -> str:
    """The ``redis+sentinel://`` URL of REDIS_SENTINELS + REDIS_SENTINEL_MASTER (no credentials in it)."""
    hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in parse_sentinels(sentinels))
    return f"{SENTINEL_SCHEME}{hosts}/{quote(service, safe='')}"


class _SentinelClient(Redis):
    """The primary's client; closing it also closes its connections to the Sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        if manager is not None:
            await manager.aclose()


class _SyncSentinelClient(redis.Redis):
    def close(self) -> None:
        super().close()
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        if manager is not None:
            manager.close()


@overload
def make_client(
    url: str,
    password: str | None,
    *,
    connect_timeout: float = ...,
    socket_timeout: float | None = ...,
    sentinel_password: str | None = ...,
    sync: Literal[False] = ...,
) -> Redis: ...


@overload
def make_client(
    url: str,
    password: str | None,
    *,
    connect_timeout: float = ...,
    socket_timeout: float | None = ...,
    sentinel_password: str | None = ...,
    sync: Literal[True],
) -> redis.Redis: ...


def make_client(
    url: str,
    password: str | None,
    *,
    connect_timeout: float = 2.0,
    socket_timeout: float | None = 10.0,
    sentinel_password: str | None = None,
    sync: bool = False,
) -> Redis | redis.Redis:
    """Every Redis client semcache opens (the store's, the index pointer's, the backups'): asyncio unless
    ``sync``. TLS comes from the URL (``rediss://``); ``socket_timeout=None`` waits as long as it takes.
    A ``redis+sentinel://`` URL gives a client of the primary Sentinel names (see the module's doc)."""
    options: dict[str, Any] = {
        # RESP3 answers FT.SEARCH / FT.INFO with maps, which read without positional parsing.
        "protocol": 3,
        "decode_responses": False,  # vectors are bytes
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
        "retry_on_error": [rex.ConnectionError, rex.TimeoutError],
    }
    # Each face needs its own kind of Retry: given the synchronous one, the asyncio client never retries.
    retry = Retry(NoBackoff(), 1) if sync else AsyncRetry(NoBackoff(), 1)
    if url.startswith(SENTINEL_SCHEME):
        return _sentinel_client(url, password, sentinel_password, options, retry, sync)
    # REDIS_PASSWORD fills in for a URL without one; a password in the URL wins, as the seed did.
    if password and urlsplit(url).password is None:
        options["password"] = password
    if sync:
        return redis.Redis.from_url(url, retry=retry, **options)
    return Redis.from_url(url, retry=retry, **options)


def _sentinel_client(
    url: str,
    password: str | None,
    sentinel_password: str | None,
    options: dict[str, Any],
    retry: Any,
    sync: bool,
) -> Redis | redis.Redis:
    address = parse_sentinel_url(url)
    data = dict(options, retry=retry, db=address.db)
    if address.username:
        data["username"] = address.username
    if address.password is not None or password:
        data["password"] = address.password if address.password is not None else password
    # The Sentinels are asked once per new connection; a dead one is skipped at once, never retried.
    asking: dict[str, Any] = {
        "socket_connect_timeout": options["socket_connect_timeout"],
        "socket_timeout": options["socket_connect_timeout"],
        "retry": Retry(NoBackoff(), 0) if sync else AsyncRetry(NoBackoff(), 0),
    }
    if sentinel_password:
        asking["password"] = sentinel_password
    sentinels = list(address.sentinels)
    if sync:
        manager = redis.sentinel.Sentinel(sentinels, sentinel_kwargs=asking, **data)
        return manager.master_for(address.service, redis_class=_SyncSentinelClient)
    async_manager = AsyncSentinel(sentinels, sentinel_kwargs=asking, **data)
    client: Redis = async_manager.master_for(address.service, redis_class=_SentinelClient)
    return client


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "no detail"


def translate(exc: BaseException, where: str, secrets: tuple[str | None, ...], index: str) -> SemcacheError:
    """One operator-readable error for a redis-py failure; ``where`` is the already redacted URL."""
    detail = _one_line(redact_secret(str(exc), *secrets))
    lowered = detail.lower()
    if isinstance(exc, rex.AuthenticationError) or any(
        marker in lowered
        for marker in ("wrongpass", "noauth", "invalid username-password", "invalid password")
    ):
        return BackendUnavailableError(
            f"Redis at {where} refused the credentials ({detail})",
            "check the user name and password in REDIS_URL, or REDIS_PASSWORD",
        )
    if isinstance(exc, rex.NoPermissionError) or "noperm" in lowered:
        return BackendUnavailableError(
            f"the Redis user at {where} lacks a permission ({detail})",
            "grant the ACL user the rights in deploy/redis/semcache.acl (the error names the missing one)",
        )
    if isinstance(exc, rex.BusyLoadingError):
        return BackendUnavailableError(f"Redis at {where} is loading its data set", "retry in a few seconds")
    if isinstance(exc, NotReplicatedError):
        return BackendUnavailableError(
            f"a write to Redis at {where} was not confirmed by {exc.wanted} replica(s) within "
            f"{exc.timeout:g} s (WAIT answered {exc.confirmed}); it may still exist on the primary",
            "check that the replicas are up and in sync, or lower SEMCACHE_REDIS_WAIT_REPLICAS "
            "(or raise SEMCACHE_REDIS_WAIT_TIMEOUT)",
        )
    if type(exc).__name__ == "MasterNotFoundError":  # the sync and asyncio faces each have their own class
        return BackendUnavailableError(
            f"no Sentinel at {where} names a reachable primary (a failover may be under way)",
            FAILOVER_HINT + "; check the Sentinels, the service name and REDIS_SENTINEL_PASSWORD",
        )
    if isinstance(exc, rex.ReadOnlyError) or lowered.startswith("readonly"):
        return BackendUnavailableError(
            f"Redis at {where} is a read-only replica, not the primary (a failover may be under way)",
            FAILOVER_HINT + "; without Sentinel, point REDIS_URL at the primary",
        )
    if isinstance(exc, rex.ConnectionError | rex.TimeoutError | OSError):
        return BackendUnavailableError(
            f"cannot reach Redis at {where} ({detail})",
            "start Redis Stack (or Redis 8), or fix REDIS_URL",
        )
    if "unknown command" in lowered and "ft." in lowered:
        return BackendUnavailableError(f"Redis at {where} has no search module", NEEDS_SEARCH_HINT)
    if "no such index" in lowered or "unknown index name" in lowered:
        return IndexMissingError(
            f"index {index} does not exist on Redis at {where}",
            "store an entry or start `semcache-tui --serve` to create it; `semcache-tui index` lists indexes",
        )
    if "expected size" in lowered or "blob size" in lowered:
        return IndexMismatchError(
            f"index {index} on {where} holds vectors of another dimension ({detail})",
            "run `semcache-tui migrate plan` to move the cache to the new embedder",
        )
    if "oom" in lowered and "maxmemory" in lowered:
        return BackendUnavailableError(
            f"Redis at {where} is out of memory ({detail})",
            "raise maxmemory, set an eviction policy, or clear the cache",
        )
    return _refused(exc, where)


#: What each Redis error code means to an operator; Redis's own text is never passed on (it can name a
#: command, and a command's arguments are a cache's data).
_REFUSALS: dict[str, tuple[str, str]] = {
    "MISCONF": ("cannot persist to disk, so it refuses writes", "fix the disk or the persistence settings"),
    "BUSY": ("is busy running a script", "wait for it to finish, or stop it with SCRIPT KILL"),
    "WRONGTYPE": (
        "holds a key of another type under the index's key prefix",
        "another application writes under this prefix: choose another CACHE_INDEX_NAME",
    ),
    "MOVED": ("is a Redis Cluster node", "semcache needs a standalone primary (with Sentinel for failover)"),
    "CROSSSLOT": (
        "is a Redis Cluster node",
        "semcache needs a standalone primary (with Sentinel for failover)",
    ),
    "NOREPLICAS": (
        "has too few replicas to accept writes (min-replicas-to-write)",
        "bring the replicas back, or lower min-replicas-to-write",
    ),
    "MASTERDOWN": ("is a replica that lost its primary", FAILOVER_HINT),
}


def _refused(exc: BaseException, where: str) -> BackendUnavailableError:
    """A refusal we have no words for: its kind (Redis's error code, never its text) and what to do."""
    found = re.match(r"^([A-Z][A-Z_]{1,20})\b", str(exc))
    code = found.group(1) if found else type(exc).__name__
    if code in _REFUSALS:
        what, hint = _REFUSALS[code]
        return BackendUnavailableError(f"Redis at {where} {what} ({code})", hint)
    return BackendUnavailableError(
        f"Redis at {where} refused a request semcache sent ({code})",
        "see the Redis server log for the reason; check the Redis version (Redis Stack 7.2+ or Redis 8) "
        "and report it if it persists",
    )


def is_missing_index(exc: BaseException) -> bool:
    lowered = str(exc).lower()
    return isinstance(exc, rex.ResponseError) and (
        "no such index" in lowered or "unknown index name" in lowered
    )


def is_existing_index(exc: BaseException) -> bool:
    return isinstance(exc, rex.ResponseError) and "already exists" in str(exc).lower()


def acknowledged_pipeline(client: Redis, *, transaction: bool, replicas: int, timeout: float) -> Pipeline:
    """A pipeline whose writes are confirmed by ``replicas`` replicas (WAIT) before ``execute`` returns;
    ``NotReplicatedError`` when fewer confirm within ``timeout`` seconds. A plain pipeline for 0.

    WAIT counts the replicas that reached the last write *of its own connection*, so it must follow the
    writes on the connection that sent them: here, on the pipeline's, right after the batch (after EXEC
    for a transaction: inside MULTI it would not block)."""
    if replicas <= 0:
        return client.pipeline(transaction=transaction)
    return _WaitingPipeline(client, transaction, replicas, timeout)


class _WaitingPipeline(Pipeline):
    def __init__(self, client: Redis, transaction: bool, replicas: int, timeout: float) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, transaction, None)
        self._replicas, self._timeout = replicas, timeout

    async def _wait(self, connection: Any) -> None:
        await connection.send_command("WAIT", self._replicas, max(1, int(self._timeout * 1000)))
        confirmed = int(await connection.read_response())
        if confirmed < self._replicas:
            raise NotReplicatedError(self._replicas, confirmed, self._timeout)

    async def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: Any) -> Any:
        response = await super()._execute_transaction(connection, commands, raise_on_error)
        await self._wait(connection)
        return response

    async def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        response = await super()._execute_pipeline(connection, commands, raise_on_error)
        await self._wait(connection)
        return response
