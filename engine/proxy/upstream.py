"""The upstream: one ``httpx.AsyncClient`` for an OpenAI-compatible base URL, and the header rules.

Requests keep the client's headers (``Authorization`` above all: the upstream's key is the client's, and
this module is the only place that touches it, to pass it on) minus hop-by-hop headers, the proxy's own
``x-semcache-*`` headers and, when the proxy has an API key, the ``X-API-Key`` that carried it. Answers
keep the upstream's status, body and headers minus hop-by-hop headers and the framing httpx undoes
(``content-length``, ``content-encoding``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # httpx imports its command line, and with it rich, when imported: kept off the headless import path.
    import httpx

#: RFC 9110 section 7.6.1, plus the headers httpx sets itself for the new connection.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
    }
)
_NOT_RETURNED = frozenset({"content-length", "content-encoding", "date", "server"}) | _HOP_BY_HOP


class Upstream:
    def __init__(self, base_url: str, timeout: float, *, strip_api_key: bool) -> None:
        self.base_url = base_url.rstrip("/")
        self.strip_api_key = strip_api_key
        import httpx

        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            follow_redirects=False,
        )

    def url(self, path: str, query: str = "") -> str:
        """``/v1/chat/completions`` -> ``{base}/chat/completions``: the base URL is the one an OpenAI client
        is given (it ends in ``/v1`` for most servers)."""
        tail = path[len("/v1") :] if path.startswith("/v1") else path
        return f"{self.base_url}{tail}" + (f"?{query}" if query else "")

    def request_headers(self, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        kept: dict[str, str] = {}
        for name, value in headers:
            lower = name.lower()
            if lower in _HOP_BY_HOP or lower.startswith("x-semcache"):
                continue
            if lower == "x-api-key" and self.strip_api_key:
                continue
            kept[lower] = value
        return kept

    @staticmethod
    def response_headers(headers: httpx.Headers) -> dict[str, str]:
        # X-Request-ID is semcache's own (one id follows a request across replicas and logs); the upstream's
        # id is kept for the client under another name.
        kept = {name: value for name, value in headers.items() if name.lower() not in _NOT_RETURNED}
        renamed = {"x-request-id": "x-upstream-request-id"}
        return {renamed.get(name.lower(), name): value for name, value in kept.items()}

    async def send(
        self, method: str, path: str, query: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> httpx.Response:
        """The upstream's answer, its body not read yet (the caller streams or reads it, then closes it)."""
        request = self.client.build_request(
            method, self.url(path, query), headers=self.request_headers(headers), content=body
        )
        return await self.client.send(request, stream=True)

    async def aclose(self) -> None:
        await self.client.aclose()
