"""API-key check for the ``/cache`` and ``/metrics`` routes (health stays open for orchestrators).

With ``SEMCACHE_API_KEY`` set, a request must carry it as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``. The comparison takes the same time whatever the key sent, so timing tells nothing.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from engine.errors import AuthenticationError


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


def key_matches(expected: str, presented: str | None) -> bool:
    # Compared as bytes so a non-ASCII key cannot make compare_digest raise.
    return hmac.compare_digest(expected.encode(), (presented or "").encode())


async def require_api_key(request: Request) -> None:
    """FastAPI dependency: raises ``AuthenticationError`` (401) when a key is configured and not presented."""
    expected: str | None = request.app.state.api_key
    if expected is None:
        return
    presented = presented_key(request)
    if not key_matches(expected, presented):
        missing = presented is None
        raise AuthenticationError(
            "API key missing" if missing else "API key wrong",
            "send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>' (the server's SEMCACHE_API_KEY)",
        )
