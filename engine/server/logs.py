"""One log line per request (plain text, or one JSON object per line), and the request metrics.

A request line carries method, path (without the query string), status, duration, client address and the
request id (``request_id.py``); never another header, so neither an API key nor a password can reach the log. What a client sends cannot forge a
line either: the text format escapes control characters (CR, LF, the other C0 and C1 codes) in every
argument of every message, and the JSON format escapes them as JSON does.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.server import request_id
from engine.server.metrics import ServerMetrics

log = logging.getLogger("semcache.server")
access_log = logging.getLogger("semcache.access")

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with every control character (and the Unicode line separators) escaped: one line, always."""
    return _CONTROL.sub(lambda found: ascii(found.group())[1:-1], text)


class Verbatim(str):
    """An argument logged as it is, line breaks included: for text we wrote ourselves (a traceback's frames)."""

    __slots__ = ()


def _escaped(value: object) -> object:
    if isinstance(value, Verbatim | int | float):  # numbers keep %d and %.1f working
        return value
    return printable(value if isinstance(value, str) else str(value))


class TextFormatter(logging.Formatter):
    """Plain text, one line per message whatever its arguments hold (a path with %0A, a header's value)."""

    def format(self, record: logging.LogRecord) -> str:
        if record.args:
            record = logging.makeLogRecord(record.__dict__)
            if isinstance(record.args, Mapping):
                record.args = {k: _escaped(v) for k, v in record.args.items()}
            else:
                record.args = tuple(_escaped(v) for v in record.args or ())
        return super().format(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which worker, with --workers above 1
            "message": record.getMessage(),
        }
        body.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def log_config(json_logs: bool, level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for our loggers and uvicorn's (whose own access log we replace)."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if json_logs
        else {
            "()": TextFormatter,
            "fmt": "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
            "datefmt": "%Y-%m-%dT%H:%M:%S",
        }
    )
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "loggers": {
            "semcache": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    # Every route of the app (APIRoute, the docs' Route) has a path template; a mount or nothing has none.
    return route.path if isinstance(route, Route) and route.path else "unmatched"


class RequestLog:
    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        rid = request_id.incoming_or_new(scope)
        rid_header = (b"x-request-id", rid.encode())

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [h for h in message.get("headers", ()) if h[0].lower() != rid_header[0]]
                message = {**message, "headers": [*headers, rid_header]}
            await send(message)

        token = request_id.bind(rid)
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            request_id.unbind(token)
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = str(scope["method"])
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.request_seconds.labels(method, route).observe(elapsed)
            client = scope.get("client")
            address = f"{client[0]}:{client[1]}" if client else "-"
            access_log.info(
                "%s %s %s %d %.1fms id=%s",
                address,
                method,
                scope.get("path", ""),
                status,
                elapsed * 1000.0,
                rid,
                extra={
                    "request_id": rid,
                    "client": address,
                    "method": method,
                    "path": scope.get("path", ""),
                    "status": status,
                    "duration_ms": round(elapsed * 1000.0, 3),
                },
            )
