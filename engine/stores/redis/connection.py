"""The Redis client and the translation of its failures into the engine's operator-readable errors.

Fail fast: a short connect timeout and one immediate retry (enough to replace a pooled connection that
died when Redis restarted), never redis-py's default loop of retries with backoff, so a request made
while Redis is down gets a 503 at once and the first one after it is back succeeds.
"""

from __future__ import annotations

from typing import Any, Literal, overload
from urllib.parse import urlsplit

import redis
from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.errors import BackendUnavailableError, IndexMismatchError, IndexMissingError, SemcacheError
from engine.redact import redact_secret

DEFAULT_URL = "redis://localhost:6379"
NEEDS_SEARCH_HINT = (
    "use Redis Stack or Redis 8 with the Query Engine (plain Redis has no vector search), "
    "or set SEMCACHE_STORE=local"
)


@overload
def make_client(
    url: str,
    password: str | None,
    *,
    connect_timeout: float = ...,
    socket_timeout: float | None = ...,
    sync: Literal[False] = ...,
) -> Redis: ...


@overload
def make_client(
    url: str,
    password: str | None,
    *,
    connect_timeout: float = ...,
    socket_timeout: float | None = ...,
    sync: Literal[True],
) -> redis.Redis: ...


def make_client(
    url: str,
    password: str | None,
    *,
    connect_timeout: float = 2.0,
    socket_timeout: float | None = 10.0,
    sync: bool = False,
) -> Redis | redis.Redis:
    """Every Redis client semcache opens (the store's, the index pointer's, the backups'): asyncio unless
    ``sync``. TLS comes from the URL (``rediss://``); ``socket_timeout=None`` waits as long as it takes."""
    options: dict[str, Any] = {
        # RESP3 answers FT.SEARCH / FT.INFO with maps, which read without positional parsing.
        "protocol": 3,
        "decode_responses": False,  # vectors are bytes
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
        "retry_on_error": [rex.ConnectionError, rex.TimeoutError],
    }
    # REDIS_PASSWORD fills in for a URL without one; a password in the URL wins, as the seed did.
    if password and urlsplit(url).password is None:
        options["password"] = password
    # Each face needs its own kind of Retry: given the synchronous one, the asyncio client never retries.
    if sync:
        return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 1), **options)
    return Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 1), **options)


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
    return BackendUnavailableError(f"Redis at {where} answered an error ({detail})")


def is_missing_index(exc: BaseException) -> bool:
    lowered = str(exc).lower()
    return isinstance(exc, rex.ResponseError) and (
        "no such index" in lowered or "unknown index name" in lowered
    )


def is_existing_index(exc: BaseException) -> bool:
    return isinstance(exc, rex.ResponseError) and "already exists" in str(exc).lower()
