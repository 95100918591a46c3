"""Every request's id: the caller's ``X-Request-ID`` when it is a sane token, else a new one.

It is returned in the response's ``X-Request-ID``, written in the access log line and put in every JSON
error body, so an operator can follow one request from a client's or a load balancer's log across replicas.
An incoming id that is too long or holds anything but a token's characters is replaced, never logged: it
would otherwise be a way to write into our logs.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from starlette.types import Scope

HEADER = "X-Request-ID"
_HEADER_RAW = HEADER.lower().encode()
_TOKEN = re.compile(r"^[A-Za-z0-9._:@/+=\-]{1,128}$")

#: The id of the request being answered, for code that has no scope at hand (the error bodies).
_current: ContextVar[str | None] = ContextVar("semcache_request_id", default=None)


def incoming_or_new(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == _HEADER_RAW:
            text = value.decode("latin-1")
            if _TOKEN.match(text):
                return text
            break
    return uuid.uuid4().hex


def current() -> str | None:
    return _current.get()


def bind(request_id: str) -> object:
    """Make ``request_id`` current; give the result to ``unbind`` when the request is done."""
    return _current.set(request_id)


def unbind(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
