"""Every failure the engine can name becomes a JSON error with the right status; none becomes a bare 500.

    SemcacheError             -> its own .status and .to_dict()  (422 bad input, 404, 503 dependency down;
                                 backend_unavailable with ``Retry-After``)
    request validation        -> 422 {"error": "invalid_input", ...}
    a store client's own
    connection error          -> 503 {"error": "backend_unavailable", ...} with ``Retry-After``
    anything else             -> 500 {"error": "internal"}, logged with its traceback, and the
                                 connection closed (``Connection: close``): a pooled client then opens a
                                 new one instead of meeting a reset on its next request

Every body carries the request's id (``request_id``, as in the ``X-Request-ID`` header and the access log).
Secrets (the API key, the Redis password, passwords inside URLs) are removed from every message.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from engine.errors import BackendUnavailableError, SemcacheError
from engine.redact import redact_secret
from engine.server import request_id
from engine.server.logs import Verbatim

log = logging.getLogger("semcache.server")
#: Seconds a client is asked to wait after a 503 ``backend_unavailable`` (Redis down, restarting or failing
#: over: a Sentinel failover takes a few seconds, and the first request after it succeeds).
BACKEND_RETRY_AFTER = "2"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    422: "invalid_input",
    429: "rate_limited",
    503: "unavailable",
}


def error_body(code: str, message: str, hint: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if hint:
        body["hint"] = hint
    body.update(extra)
    return _identified(body)


def _identified(body: dict[str, Any]) -> dict[str, Any]:
    rid = request_id.current()
    return {**body, "request_id": rid} if rid else body


def _secrets(request: Request) -> Sequence[str | None]:
    secrets: tuple[str, ...] = request.app.state.secrets  # set by create_app, as every app state is
    return secrets


def _clean(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    secrets = _secrets(request)
    return _identified({k: redact_secret(v, *secrets) if isinstance(v, str) else v for k, v in body.items()})


def _is_connection_error(exc: BaseException) -> bool:
    """A store client's own 'cannot reach the server' error that a store let through unwrapped."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    try:
        from redis.exceptions import BusyLoadingError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | BusyLoadingError)


async def semcache_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SemcacheError)
    if exc.status >= 500:
        log.warning(
            "%s %s: %s", request.method, request.url.path, redact_secret(str(exc), *_secrets(request))
        )
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if isinstance(exc, BackendUnavailableError):
        headers = {"Retry-After": BACKEND_RETRY_AFTER}
    return JSONResponse(_clean(request, exc.to_dict()), status_code=exc.status, headers=headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        # The offending input is left out: it can be a megabyte of prompt, or a secret sent by mistake.
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append({"field": location, "problem": str(error.get("msg", "invalid"))})
    first = problems[0] if problems else {"field": "", "problem": "invalid request"}
    message = f"{first['field']}: {first['problem']}" if first["field"] else first["problem"]
    body = error_body("invalid_input", message, "see /docs for the request schema", details=problems)
    return JSONResponse(_clean(request, body), status_code=422)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    body = error_body(_HTTP_CODES.get(exc.status_code, "error"), message)
    return JSONResponse(_clean(request, body), status_code=exc.status_code, headers=headers)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route of this path answers: starlette names only the first route's (GET and
    DELETE on /cache/entries/{key} are two routes), so each method is tried against every route."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    secrets = _secrets(request)
    if _is_connection_error(exc):
        message = redact_secret(f"the store cannot be reached: {exc}", *secrets)
        log.warning("%s %s: %s", request.method, request.url.path, message)
        body = error_body(
            "backend_unavailable", message, "check that the store (Redis) is running and reachable"
        )
        return JSONResponse(body, status_code=503, headers={"Retry-After": BACKEND_RETRY_AFTER})
    # The traceback's frames, then the message redacted: the stock formatter would print it verbatim.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "%s %s failed: %s: %s\n%s",
        request.method,
        request.url.path,
        type(exc).__name__,
        redact_secret(str(exc), *secrets),
        Verbatim(frames.rstrip()),
    )
    body = error_body("internal", f"internal error ({type(exc).__name__}); the server log has the details")
    return JSONResponse(body, status_code=500, headers={"Connection": "close"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(SemcacheError, semcache_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
