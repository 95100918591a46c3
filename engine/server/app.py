"""The app factory: ``create_app(settings, cache)`` assembles routes, middleware and background tasks.

Start-up never blocks on the model: the app answers at once (``/health/live``), ``cache.start()`` runs as a
background task (retried with back-off while the store is down), ``/health/ready`` says 503 until it has
finished, and a request that needs the model simply awaits the same start. Other background tasks purge
expired entries periodically and follow the active-index pointer after a migration (``follow.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from engine.assembly import IndexFollower, build_cache
from engine.cache import SemanticCache
from engine.config import Settings
from engine.server import errors
from engine.server.follow import follow_active_index
from engine.server.instrument import server_instruments
from engine.server.limits import BodySizeLimit, RateLimit, RateLimiter
from engine.server.logs import RequestLog
from engine.server.metrics import ServerMetrics
from engine.server.routes import cache_router, health_router, metrics_router
from engine.server.shutdown import ShutdownDeadline
from engine.server.state import ServerState, secrets_of
from engine.service import CacheService

log = logging.getLogger("semcache.server")

#: How ``serve`` hands the settings (command-line flags included) to worker processes.
SETTINGS_ENV = "SEMCACHE_SERVER_SETTINGS_JSON"

_RETRY_START_MAX_S = 30.0


def create_app(settings: Settings | None = None, cache: CacheService | None = None) -> FastAPI:
    """The HTTP app. Without ``cache``, one is built from ``settings`` and closed at shutdown; a given
    cache belongs to the caller (it gets the server's instruments, see ``server_instruments``, but is never
    closed or moved along the active-index pointer here)."""
    settings = settings or Settings.load()
    metrics = ServerMetrics()
    instruments = server_instruments(metrics)
    built: SemanticCache | None = None
    served: CacheService
    if cache is None:
        served = built = build_cache(settings, instruments)
    else:
        # Only a cache in this process has an embedder and a store to watch.
        served = instruments.fit(cache) if isinstance(cache, SemanticCache) else cache
    state = ServerState(cache=served, settings=settings, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.tasks.append(asyncio.create_task(_start_in_background(state), name="semcache-start"))
        state.tasks.append(asyncio.create_task(_purge_periodically(state), name="semcache-purge"))
        if built is not None and settings.follow_interval > 0:  # a given cache is the caller's to move
            follower = IndexFollower(settings, instruments)
            state.tasks.append(
                asyncio.create_task(
                    follow_active_index(state, follower, built, settings.follow_interval),
                    name="semcache-follow",
                )
            )
        try:
            yield
        finally:
            tasks, state.tasks = list(state.tasks), []
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if built is not None:
                await state.cache.close()  # the cache served last: a migration may have replaced ``built``
            log.info("server stopped")

    app = FastAPI(
        title="semcache",
        summary="A semantic cache for LLM responses",
        description=(
            "Check a prompt before calling your LLM; store the answer after. Drop-in for the seed service "
            "(`/cache/check`, `/cache/store`, `/cache/stats`, `/cache/clear`, `/health`), plus scopes, TTLs, "
            "batches, entries, search, index info and Prometheus metrics. With SEMCACHE_API_KEY set, "
            "`/cache` and `/metrics` need `Authorization: Bearer <key>` or `X-API-Key: <key>`."
        ),
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.server = state
    app.state.api_key = settings.api_key
    app.state.secrets = secrets_of(settings)
    errors.install(app)
    app.include_router(health_router)
    app.include_router(cache_router)
    app.include_router(metrics_router)
    if settings.upstream_url:  # the OpenAI-compatible caching proxy
        from engine.proxy import proxy_router

        app.include_router(proxy_router(state))

    # Added innermost first: the request log sees everything, including 413s and 429s.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.rate_limit > 0:
        app.add_middleware(RateLimit, limiter=RateLimiter(settings.rate_limit, settings.rate_limit_burst))
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(ShutdownDeadline)  # inside the request log, which then shows the 503
    app.add_middleware(RequestLog, metrics=metrics)
    return app


async def _start_in_background(state: ServerState) -> None:
    delay = 1.0
    while True:
        started = time.perf_counter()
        try:
            identity = await state.cache.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.start_error = exc
            log.warning("start failed: %s; retrying in %.0f s", state.redact(str(exc)), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_START_MAX_S)
            continue
        state.start_error = None
        log.info(
            "ready: %s store, index %s, %s (%.1f s)",
            state.store_kind,
            state.index_name,
            identity.describe(),
            time.perf_counter() - started,
        )
        return


async def _purge_periodically(state: ServerState) -> None:
    interval = state.settings.purge_interval
    while True:
        await asyncio.sleep(interval)
        if not state.ready:
            continue
        try:
            purged = await state.cache.purge_expired()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next round tries again; the store may be back by then
            log.warning("purging expired entries failed: %s", state.redact(str(exc)))
            continue
        if purged:
            log.info("purged %d expired entries", purged)


def app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes: settings from ``serve`` (or the environment)."""
    raw = os.environ.get(SETTINGS_ENV)
    settings = Settings(**json.loads(raw)) if raw else Settings.load()
    return create_app(settings)
