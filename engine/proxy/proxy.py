"""``CachingProxy``: a completion request answered from the cache, or forwarded and its answer stored.

    request -> (scope, prompt) or a reason to bypass                        request.py
            -> cache.check(prompt, scope)      a hit: the stored answer, as JSON or as SSE       answer.py
            -> the upstream                    a miss: its answer relayed as it arrives          upstream.py
            -> cache.store(prompt, answer, scope, metadata)   only a complete, storable answer

The cache is reached only through its public ``check`` and ``store``, so its rules (verification,
TTL, stats shared across replicas) apply to proxied requests as to any other. A cache that is starting
or failing never fails a request: the request is forwarded (``x-semcache: bypass``). An upstream that is
down never fails a hit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from engine.errors import InvalidInputError
from engine.models import CheckResult
from engine.proxy.answer import Answer, StreamAssembler, replay_events, response_body
from engine.proxy.request import TENANT_PATTERN, TENANT_RULE, Kind, Lookup, Uncacheable, lookup_for
from engine.proxy.upstream import Upstream
from engine.server.state import ServerState

if TYPE_CHECKING:
    # httpx imports its command line, and with it rich, when imported: kept off the headless import path.
    import httpx

log = logging.getLogger("semcache.proxy")

_TRUE = ("1", "true", "yes", "on")
_ROUTES: dict[Kind, str] = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}


@dataclass(frozen=True, slots=True)
class Directives:
    """What the client asked of the cache for this request."""

    #: ``x-semcache-bypass: 1``: neither look up nor store; the request is only forwarded.
    bypass: bool
    #: ``Cache-Control: no-cache``: do not look up, but store the fresh answer (it replaces the old one).
    no_lookup: bool
    #: ``Cache-Control: no-store`` or ``x-semcache-no-store: 1``: look up, but do not store the answer.
    no_store: bool
    tenant: str | None

    @classmethod
    def of(cls, request: Request) -> Directives:
        headers = request.headers
        control = {part.strip().lower() for part in headers.get("cache-control", "").split(",")}
        tenant = headers.get("x-semcache-scope") or None
        if tenant is not None and not TENANT_PATTERN.match(tenant):
            raise InvalidInputError(f"x-semcache-scope {tenant!r} is not allowed", f"use {TENANT_RULE}")
        return cls(
            bypass=headers.get("x-semcache-bypass", "").lower() in _TRUE,
            no_lookup="no-cache" in control,
            no_store="no-store" in control or headers.get("x-semcache-no-store", "").lower() in _TRUE,
            tenant=tenant,
        )


async def _replay(events: list[bytes]) -> AsyncIterator[bytes]:
    # An async iterator: Starlette would hand a plain one to a worker thread, one hop per event.
    for event in events:
        yield event


def openai_error(status: int, message: str, kind: str) -> JSONResponse:
    """An error of the proxy's own (no upstream answer to pass on), in OpenAI's error shape."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status)


class CachingProxy:
    def __init__(self, upstream: Upstream, state: ServerState) -> None:
        self.upstream = upstream
        self.state = state
        settings = state.settings
        self.max_temperature = settings.proxy_max_temperature
        self.store_length = settings.proxy_store_length
        self.store_tool_calls = settings.proxy_store_tool_calls

    # -- the completion routes ---------------------------------------------------------------------------

    async def complete(self, request: Request, kind: Kind) -> Response:
        raw = await request.body()
        directives = Directives.of(request)
        lookup: Lookup | Uncacheable
        body: object = None
        if directives.bypass:
            lookup = Uncacheable("x-semcache-bypass")
        else:
            with contextlib.suppress(ValueError):  # else not cacheable; the upstream says what is wrong
                body = json.loads(raw)
            lookup = lookup_for(
                kind,
                body,
                tenant=directives.tenant,
                max_temperature=self.max_temperature,
                max_prompt_chars=self.state.cache.policy.max_prompt_chars,
            )
        if isinstance(lookup, Uncacheable):
            return await self._forward(request, raw, kind, "bypass", lookup.reason, None)
        if directives.no_lookup:
            outcome, reason = "bypass", "Cache-Control: no-cache"
        else:
            result, reason = await self._check(lookup)
            if result is not None and result.is_hit:
                served = self._serve_hit(kind, lookup, result, body)
                if served is not None:
                    return served
            outcome = "miss" if result is not None else "bypass"
        store = None if directives.no_store else lookup
        return await self._forward(request, raw, kind, outcome, reason, store)

    async def _check(self, lookup: Lookup) -> tuple[CheckResult | None, str]:
        if not self.state.ready:
            return None, "the cache is starting"
        try:
            return await self.state.cache.check(lookup.prompt, scope=lookup.scope), ""
        except Exception as exc:  # the cache failing must not fail the LLM call
            log.warning("proxy: lookup failed, forwarding: %s", self.state.redact(str(exc)))
            return None, "the cache is unavailable"

    def _serve_hit(self, kind: Kind, lookup: Lookup, result: CheckResult, body: object) -> Response | None:
        best = result.best
        assert best is not None
        try:
            answer = Answer.from_entry(best.entry.response, best.entry.metadata)
        except ValueError:
            log.warning("proxy: entry %s is not a proxy answer; forwarding", best.entry.key)
            return None
        model = body.get("model") if isinstance(body, dict) else None
        self.state.metrics.proxy_requests.labels(_ROUTES[kind], "hit").inc()
        self.state.metrics.proxy_tokens_saved.inc(answer.tokens)
        headers = {
            "x-semcache": "hit",
            "x-semcache-distance": f"{max(best.distance, 0.0):.6f}",
            "x-semcache-key": best.entry.key,
            "x-semcache-tokens-saved": str(answer.tokens),
        }
        if lookup.stream:
            events = list(replay_events(kind, answer, model, lookup.include_usage))
            return StreamingResponse(_replay(events), media_type="text/event-stream", headers=headers)
        return JSONResponse(response_body(kind, answer, model), headers=headers)

    # -- forwarding --------------------------------------------------------------------------------------

    async def passthrough(self, request: Request) -> Response:
        """Any other ``/v1/*`` route: forwarded unchanged, the answer streamed back as it arrives."""
        raw = await request.body()
        return await self._forward(request, raw, None, None, "", None)

    async def _forward(
        self,
        request: Request,
        raw: bytes,
        kind: Kind | None,
        outcome: str | None,
        reason: str,
        store: Lookup | None,
    ) -> Response:
        import httpx

        metrics = self.state.metrics
        extra: dict[str, str] = {}
        if kind is not None and outcome is not None:
            metrics.proxy_requests.labels(_ROUTES[kind], outcome).inc()
            extra["x-semcache"] = outcome
            if reason:
                extra["x-semcache-reason"] = reason
        started = time.perf_counter()
        try:
            upstream = await self.upstream.send(
                request.method, request.url.path, request.url.query, request.headers.items(), raw
            )
        except httpx.TimeoutException:
            metrics.proxy_upstream_errors.labels("timeout").inc()
            response = openai_error(504, "the upstream did not answer in time", "upstream_timeout")
            response.headers.update(extra)
            return response
        except httpx.TransportError as exc:
            metrics.proxy_upstream_errors.labels("connection").inc()
            log.warning("proxy: the upstream cannot be reached: %s", type(exc).__name__)
            response = openai_error(502, "the upstream cannot be reached", "upstream_unavailable")
            response.headers.update(extra)
            return response

        headers = {**self.upstream.response_headers(upstream.headers), **extra}
        if upstream.status_code >= 400:
            metrics.proxy_upstream_errors.labels("status").inc()
        streamed = upstream.headers.get("content-type", "").startswith("text/event-stream")
        if streamed or kind is None:
            relay = self._relay(
                upstream, started, kind if streamed and upstream.status_code == 200 else None, store
            )
            return StreamingResponse(relay, status_code=upstream.status_code, headers=headers)

        try:
            content = await upstream.aread()
        except httpx.HTTPError:
            metrics.proxy_upstream_errors.labels("stream").inc()
            return openai_error(502, "the upstream's answer was cut off", "upstream_unavailable")
        finally:
            await upstream.aclose()
        metrics.proxy_upstream_seconds.observe(time.perf_counter() - started)
        if store is not None and upstream.status_code == 200:
            try:
                answer = Answer.from_body(store.kind, json.loads(content))
            except ValueError:
                answer = None
            await self._store(store, answer)
        return Response(content, status_code=upstream.status_code, headers=headers)

    async def _relay(
        self, upstream: httpx.Response, started: float, kind: Kind | None, store: Lookup | None
    ) -> AsyncIterator[bytes]:
        """The upstream's body as it arrives. A streamed answer is stored just before its ``[DONE]`` is
        passed on (clients may hang up as soon as they read it); when the client goes away earlier,
        Starlette cancels this at its next ``await``: the upstream is closed and nothing is stored."""
        import httpx

        assembler = StreamAssembler(kind) if kind is not None and store is not None else None
        observed = False
        try:
            async for data in upstream.aiter_bytes():
                if assembler is not None and store is not None:
                    assembler.feed(data)
                    if assembler.done:
                        cut = data.find(b"data: [DONE]")
                        if cut > 0:
                            yield data[:cut]
                            data = data[cut:]
                        self.state.metrics.proxy_upstream_seconds.observe(time.perf_counter() - started)
                        observed = True
                        await self._store(store, assembler.answer())
                        assembler = None
                yield data
        except httpx.HTTPError as exc:
            # The client sees the stream end without [DONE]; nothing is stored.
            self.state.metrics.proxy_upstream_errors.labels("stream").inc()
            log.warning("proxy: the upstream's stream broke off: %s", type(exc).__name__)
            return
        finally:
            await upstream.aclose()
        if assembler is not None:
            log.info("proxy: not stored: the upstream's stream ended without [DONE]")
        if not observed:
            self.state.metrics.proxy_upstream_seconds.observe(time.perf_counter() - started)

    async def _store(self, lookup: Lookup, answer: Answer | None) -> None:
        if answer is None:
            log.info("proxy: not stored: the upstream's answer was incomplete")
            return
        why_not = answer.storable(store_length=self.store_length, store_tool_calls=self.store_tool_calls)
        if why_not is not None:
            log.info("proxy: not stored: %s", why_not)
            return
        response, metadata = answer.to_entry(lookup.kind)
        try:
            await self.state.cache.store(lookup.prompt, response, scope=lookup.scope, metadata=metadata)
        except Exception as exc:  # the client has its answer; a failed store only costs a future hit
            log.warning("proxy: storing the answer failed: %s", self.state.redact(str(exc)))
