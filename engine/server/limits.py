"""Request size limit and per-client rate limit, as plain ASGI middleware (they run before any parsing).

- A body over ``max_body_bytes`` answers 413 with a JSON error, whether it announces its length or not.
- With a rate (requests per second per client, ``SEMCACHE_RATE_LIMIT``), each client has a token bucket
  of ``burst`` tokens; an empty bucket answers 429 with ``Retry-After``. Health routes are never limited:
  an orchestrator probing a busy server must not take it out of rotation.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.server import request_id

#: Past this many bytes a refused body is no longer read: the connection is closed after the answer.
_DRAIN_LIMIT = 64 * 1024 * 1024


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    rid = request_id.current()
    payload = json.dumps({**body, "request_id": rid} if rid else body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


def _too_large(limit: int) -> dict[str, Any]:
    return {
        "error": "request_too_large",
        "message": f"request body is over the limit of {limit} bytes",
        "hint": "send less at once (split a batch) or raise SEMCACHE_MAX_BODY_BYTES",
    }


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _drain(receive, declared)
            await send_json(send, 413, _too_large(self.max_bytes))
            return
        # Read the body here (it is small by construction) so a chunked body over the limit is refused
        # before the application parses anything.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await _drain(receive, size)
                await send_json(send, 413, _too_large(self.max_bytes))
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _drain(receive: Receive, already: int) -> None:
    """Read and drop the rest of a refused body, so the client gets its 413 instead of a broken pipe."""
    read = 0
    while already + read <= _DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class TokenBucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    """Token buckets keyed by client address."""

    def __init__(self, rate: float, burst: int | None = None, max_clients: int = 10000) -> None:
        self.rate = rate
        self.burst = float(burst if burst is not None else max(1, math.ceil(rate)))
        self.max_clients = max_clients
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, client: str, now: float | None = None) -> float:
        """0 when the request may go, else the seconds until it could."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._forget_idle(now)
            bucket = self._buckets[client] = TokenBucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        # A bucket that has refilled completely carries no information: dropping it changes nothing.
        full_after = self.burst / self.rate
        for client in [c for c, b in self._buckets.items() if now - b.updated >= full_after]:
            del self._buckets[client]


class RateLimit:
    def __init__(
        self, app: ASGIApp, limiter: RateLimiter, prefixes: tuple[str, ...] = ("/cache", "/metrics")
    ):
        self.app = app
        self.limiter = limiter
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.limiter.take(client[0] if client else "unknown")
        if wait > 0:
            retry = max(1, math.ceil(wait))
            body = {
                "error": "rate_limited",
                "message": f"more than {self.limiter.rate:g} requests per second from this client",
                "hint": f"retry after {retry} s, or raise SEMCACHE_RATE_LIMIT",
            }
            await send_json(send, 429, body, {"Retry-After": str(retry)})
            return
        await self.app(scope, receive, send)
