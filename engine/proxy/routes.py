"""The proxy's routes: ``POST /v1/chat/completions`` and ``/v1/completions`` through the cache, any other
``/v1/*`` passed through, and ``GET /proxy/stats``.

``SEMCACHE_API_KEY``, when set, is sent as ``X-API-Key`` on these routes: ``Authorization`` is the
client's key for the upstream and is only ever forwarded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from engine.errors import AuthenticationError
from engine.proxy.proxy import CachingProxy
from engine.proxy.upstream import Upstream
from engine.server.auth import key_matches, require_api_key
from engine.server.state import ServerState

_PASSED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def require_proxy_key(request: Request) -> None:
    """With ``SEMCACHE_API_KEY`` set, the proxy's routes need it as ``X-API-Key`` (401 otherwise)."""
    expected: str | None = request.app.state.api_key
    if expected is None:
        return
    presented = request.headers.get("x-api-key")
    if not key_matches(expected, presented):
        raise AuthenticationError(
            "API key missing" if presented is None else "API key wrong",
            "send semcache's key as 'X-API-Key: <key>'; 'Authorization' is forwarded to the upstream",
        )


def proxy_router(state: ServerState) -> APIRouter:
    """The routes, for an app whose settings name an upstream; the upstream client closes with the app."""
    settings = state.settings
    assert settings.upstream_url is not None
    upstream = Upstream(
        settings.upstream_url, settings.upstream_timeout, strip_api_key=bool(settings.api_key)
    )
    proxy = CachingProxy(upstream, state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await upstream.aclose()

    router = APIRouter(lifespan=lifespan)
    v1 = APIRouter(prefix="/v1", tags=["proxy"], dependencies=[Depends(require_proxy_key)])

    @v1.post("/chat/completions", summary="Chat completion through the cache (OpenAI-compatible)")
    async def chat_completions(request: Request) -> Response:
        return await proxy.complete(request, "chat")

    @v1.post("/completions", summary="Text completion through the cache (OpenAI-compatible)")
    async def completions(request: Request) -> Response:
        return await proxy.complete(request, "completion")

    @v1.api_route("/{path:path}", methods=_PASSED_METHODS, summary="Any other /v1 route, passed through")
    async def passthrough(request: Request, path: str) -> Response:
        return await proxy.passthrough(request)

    @router.get("/proxy/stats", tags=["proxy"], dependencies=[Depends(require_api_key)])
    async def proxy_stats() -> dict[str, Any]:
        """This process's proxy figures (``/metrics`` has the same as Prometheus series)."""
        return proxy_figures(state)

    router.include_router(v1)
    return router


def proxy_figures(state: ServerState) -> dict[str, Any]:
    registry = state.metrics.registry

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    outcomes = {
        outcome: sum(
            value("semcache_proxy_requests_total", route=route, outcome=outcome)
            for route in ("/v1/chat/completions", "/v1/completions")
        )
        for outcome in ("hit", "miss", "bypass")
    }
    count = value("semcache_proxy_upstream_duration_seconds_count")
    total = value("semcache_proxy_upstream_duration_seconds_sum")
    return {
        "upstream": state.settings.upstream_url,
        "hits": int(outcomes["hit"]),
        "misses": int(outcomes["miss"]),
        "bypasses": int(outcomes["bypass"]),
        "upstream_calls": int(count),
        "upstream_mean_seconds": total / count if count else None,
        "upstream_errors": int(
            sum(
                value("semcache_proxy_upstream_errors_total", kind=kind)
                for kind in ("status", "timeout", "connection", "stream")
            )
        ),
        "tokens_saved": int(value("semcache_proxy_tokens_saved_total")),
    }
