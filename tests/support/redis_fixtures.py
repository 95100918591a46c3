"""Pytest plugin: a real Redis Stack for the session (see ``tests/support/redis_server.py``).

Fixtures
- ``redis_url``: a Redis Stack URL; ``SEMCACHE_TEST_REDIS_URL`` when set (an external server, which tests
  only touch through unique index names: never FLUSHALL, never stopped), else the session's own server.
- ``redis_server``: the session's own ``RedisServer`` (url, port, stop(), start()); a test that stops it
  must start it again in a ``finally``. Always a server this session started, even with an external URL.
- ``plain_redis_url``: the same binary without the search module, for the "needs Redis Stack" error.
- ``redis_server_factory``: extra servers for one test (a password, a private server to kill...),
  closed when the test ends.
A Redis Stack that cannot be run here fails the tests that need it with one line saying what was tried.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.redis_server import (
    EXTERNAL_URL_ENV,
    RedisServer,
    RedisStackPaths,
    RedisStackUnavailable,
    ensure_redis_stack,
)


def _fail(exc: RedisStackUnavailable) -> Any:
    pytest.fail(f"Redis Stack for tests: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def redis_stack_paths() -> RedisStackPaths:
    try:
        return ensure_redis_stack()
    except RedisStackUnavailable as exc:
        return _fail(exc)


def _started(server: RedisServer) -> RedisServer:
    try:
        return server.start()
    except RedisStackUnavailable as exc:
        server.close()
        return _fail(exc)


@pytest.fixture(scope="session")
def redis_server(redis_stack_paths: RedisStackPaths) -> Iterator[RedisServer]:
    server = _started(RedisServer(redis_stack_paths))
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    external = os.environ.get(EXTERNAL_URL_ENV)
    if external:
        return external
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture(scope="session")
def plain_redis_url(redis_stack_paths: RedisStackPaths) -> Iterator[str]:
    server = _started(RedisServer(redis_stack_paths, search=False))
    yield server.url
    server.close()


@pytest.fixture
def redis_server_factory(redis_stack_paths: RedisStackPaths) -> Iterator[Callable[..., RedisServer]]:
    """``factory(password=..., search=..., appendonly=..., extra_args=...)`` -> a started server."""
    servers: list[RedisServer] = []

    def factory(**options: Any) -> RedisServer:
        server = RedisServer(redis_stack_paths, **options)
        servers.append(server)
        return _started(server)

    yield factory
    for server in servers:
        server.close()
