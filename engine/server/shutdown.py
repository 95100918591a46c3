"""The answer a request gets when the server stops before it finishes.

On SIGTERM uvicorn waits ``SEMCACHE_SHUTDOWN_GRACE`` seconds for requests in flight, then cancels the ones
still running. Left alone, uvicorn answers those with a bare text 500, and the client cannot tell a crash
from a stop. Here they get a JSON 503 ``shutting_down`` with ``Retry-After`` (another replica, or this one
restarted, will answer) and ``Connection: close``. Whether a write cancelled in flight landed is not
known, and need not be: writes are keyed by (scope, prompt), so the retry is safe.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("semcache.server")

#: Seconds a stopped request's client should wait before retrying: about a restart of a replica.
RETRY_AFTER_S = 5


class ShutdownDeadline:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_and_note(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except asyncio.CancelledError:
            # uvicorn cancels a request only when the grace period of a shutdown is over.
            if started:
                raise  # half a response cannot be replaced; uvicorn closes the connection
            log.warning(
                "%s %s stopped at the shutdown deadline: answered 503", scope["method"], scope["path"]
            )
            await send_and_note(_shutting_down_start())
            await send({"type": "http.response.body", "body": _SHUTTING_DOWN_BODY, "more_body": False})


_SHUTTING_DOWN_BODY = json.dumps(
    {
        "error": "shutting_down",
        "message": "the server stopped before this request finished",
        "hint": f"retry in {RETRY_AFTER_S} s (on another replica, or this one once restarted)",
    }
).encode()


def _shutting_down_start() -> Message:
    return {
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_SHUTTING_DOWN_BODY)).encode()),
            (b"retry-after", str(RETRY_AFTER_S).encode()),
            (b"connection", b"close"),
        ],
    }
