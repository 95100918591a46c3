"""The routes. Each one translates HTTP to one call of the cache and back; the rules live in engine/cache.py."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from engine.cache import MAX_LISTING
from engine.cache import StoreRequest as CacheStoreRequest
from engine.errors import NotFoundError
from engine.keys import DEFAULT_SCOPE, SCOPE_REGEX, SCOPE_RULE
from engine.models import CacheEntry, ComponentHealth, HealthReport
from engine.server.auth import key_matches, presented_key, require_api_key
from engine.server.metrics import CONTENT_TYPE
from engine.server.schemas import (
    BatchStoreRequest,
    BatchStoreResponse,
    CheckRequest,
    CheckResponse,
    ClearResponse,
    ComponentOut,
    DeleteResponse,
    EntriesResponse,
    EntryOut,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    IndexInfoOut,
    MatchOut,
    ReadyResponse,
    SearchRequest,
    SearchResponse,
    StatsResponse,
    StoreRequest,
    StoreResponse,
    VerdictOut,
)
from engine.server.state import ServerState, server_state

#: A health call that takes longer than this reports the component down instead of hanging the probe.
HEALTH_TIMEOUT_S = 5.0

State = Annotated[ServerState, Depends(server_state)]

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": "the body is not valid UTF-8 or not valid JSON"},
    401: {"model": ErrorResponse, "description": "API key missing or wrong"},
    413: {"model": ErrorResponse, "description": "the body is over SEMCACHE_MAX_BODY_BYTES"},
    422: {"model": ErrorResponse, "description": "invalid input; the message names the field and the rule"},
    429: {"model": ErrorResponse, "description": "over SEMCACHE_RATE_LIMIT; see Retry-After"},
    503: {"model": ErrorResponse, "description": "a dependency (store, embedder) is down, or shutting down"},
}
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "no entry with this key"}
}

cache_router = APIRouter(
    prefix="/cache", tags=["cache"], dependencies=[Depends(require_api_key)], responses=_ERRORS
)
metrics_router = APIRouter(tags=["operations"], dependencies=[Depends(require_api_key)])
health_router = APIRouter(tags=["health"])


# -- the seed service's routes ---------------------------------------------------------------------------


@cache_router.post("/check", response_model=CheckResponse, summary="Look a prompt up")
async def check(body: CheckRequest, state: State) -> Response:
    result = await state.cache.check(body.prompt, scope=body.scope, threshold=body.threshold, k=body.k)
    metrics = state.metrics
    if result.is_hit:
        metrics.hits.inc()
        if result.exact:
            metrics.exact_hits.inc()
    else:
        metrics.misses.inc()
    if result.rejected:
        metrics.refused([reason for _, reason in result.rejected])
    # The hot path: serialized once by the schema itself, not validated again by FastAPI.
    return Response(CheckResponse.of(result, body.explain).to_json(), media_type="application/json")


@cache_router.post("/store", response_model=StoreResponse, summary="Store a prompt and its response")
async def store(body: StoreRequest, state: State) -> StoreResponse:
    entries = await _store_many(state, [body])
    return StoreResponse(success=True, key=entries[0].key, message="Successfully stored in cache")


async def _store_many(state: ServerState, items: list[StoreRequest]) -> list[CacheEntry]:
    requests = [
        CacheStoreRequest(
            item.prompt,
            item.response,
            DEFAULT_SCOPE if item.scope is None else item.scope,
            item.metadata,
            item.ttl,
        )
        for item in items
    ]
    # Validated all or nothing, embedded in one batch.
    return await state.cache.store_many(requests)


@cache_router.get("/stats", response_model=StatsResponse, summary="Entries, hits, misses, latency")
async def stats(state: State) -> StatsResponse:
    figures = await state.cache.stats()
    policy = state.cache.policy
    return StatsResponse.of(
        figures,
        index_name=state.index_name,
        threshold=policy.threshold,
        ttl=policy.ttl,
        embedder=state.identity,
        store=state.store_kind,
        verify_candidates=policy.verify_candidates,
        max_prompt_chars=policy.max_prompt_chars,
        target_precision=policy.target_precision,
    )


@cache_router.delete("/clear", response_model=ClearResponse, summary="Delete every entry")
async def clear(state: State) -> ClearResponse:
    deleted = await state.cache.clear()
    return ClearResponse(success=True, deleted_count=deleted, message=f"Cleared {deleted} entries from cache")


# -- ours ------------------------------------------------------------------------------------------------


@cache_router.post("/store/batch", response_model=BatchStoreResponse, summary="Store many pairs at once")
async def store_batch(body: BatchStoreRequest, state: State) -> BatchStoreResponse:
    entries = await _store_many(state, body.items)
    keys = [entry.key for entry in entries]
    return BatchStoreResponse(
        success=True, keys=keys, stored=len(keys), message=f"Stored {len(keys)} entries"
    )


@cache_router.post(
    "/search", response_model=SearchResponse, summary="The k nearest entries, whatever their distance"
)
async def search(body: SearchRequest, state: State) -> Response:
    matches = await state.cache.nearest(body.prompt, scope=body.scope, k=body.k)
    scope = DEFAULT_SCOPE if body.scope is None else body.scope
    answer = SearchResponse(
        prompt=body.prompt, scope=scope, matches=[MatchOut.of(m) for m in matches], verdicts=None
    )
    if not body.verdicts:
        return Response(answer.model_dump_json(exclude={"verdicts"}), media_type="application/json")
    judged = await state.cache.verdicts(
        body.prompt,
        matches,
        scope=body.scope,
        threshold=body.threshold,
        target_precision=body.target_precision,
    )
    answer.verdicts = [VerdictOut.of(c) for c in judged]
    return Response(answer.model_dump_json(), media_type="application/json")


@cache_router.post(
    "/feedback",
    response_model=FeedbackResponse,
    responses={404: {"model": ErrorResponse, "description": "no entry with this key"}},
    summary="Report a served answer as wrong (never served again for this prompt) or right",
)
async def feedback(body: FeedbackRequest, state: State) -> FeedbackResponse:
    recorded = await state.cache.feedback(body.prompt, body.key, body.correct, scope=body.scope)
    state.metrics.feedback.labels(verdict="right" if body.correct else "wrong").inc()
    return FeedbackResponse(
        success=True,
        key=body.key,
        wrong=recorded.wrong,
        right=recorded.right,
        evicted=recorded.evicted,
    )


@cache_router.get("/entries", response_model=EntriesResponse, summary="Entries, a page at a time")
async def entries(
    state: State,
    offset: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_LISTING,
            description=f"entries to skip; offset + limit is at most {MAX_LISTING} (Redis's "
            "MAXSEARCHRESULTS): deeper pages are refused on both stores",
        ),
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    scope: Annotated[
        str | None,
        # The pattern is published; engine/cache.py enforces it, with the message every route gives.
        Query(
            description=f"only this scope ({SCOPE_RULE}); none lists every scope",
            json_schema_extra={"pattern": SCOPE_REGEX},
        ),
    ] = None,
    contains: Annotated[str | None, Query(description="only prompts containing this text")] = None,
) -> EntriesResponse:
    page = await state.cache.list_entries(offset=offset, limit=limit, scope=scope, contains=contains)
    return EntriesResponse.of(page)


@cache_router.get("/entries/{key}", response_model=EntryOut, summary="One entry", responses=_NOT_FOUND)
async def entry(key: str, state: State) -> EntryOut:
    found = await state.cache.get(key)
    if found is None:
        raise NotFoundError(f"no entry with key {key}", "list keys with GET /cache/entries")
    return EntryOut.of(found)


@cache_router.delete(
    "/entries/{key}", response_model=DeleteResponse, summary="Delete one entry", responses=_NOT_FOUND
)
async def delete_entry(key: str, state: State) -> DeleteResponse:
    if not await state.cache.delete(key):
        raise NotFoundError(f"no entry with key {key}", "list keys with GET /cache/entries")
    return DeleteResponse(success=True, key=key, message=f"Deleted entry {key}")


@cache_router.get("/index", response_model=IndexInfoOut, summary="The index: store, algorithm, embedder")
async def index(state: State) -> IndexInfoOut:
    return IndexInfoOut.of(await state.cache.index_info())


@metrics_router.get("/metrics", summary="Prometheus metrics of this process", response_class=Response)
async def metrics(state: State) -> Response:
    from engine.server.gauges import scrape

    return Response(state.metrics.render() + await scrape(state), media_type=CONTENT_TYPE)


# -- health ----------------------------------------------------------------------------------------------


async def _health_report(state: ServerState) -> HealthReport:
    try:
        return await asyncio.wait_for(state.cache.health(), HEALTH_TIMEOUT_S)
    except TimeoutError:
        return HealthReport([ComponentHealth("store", "down", f"no health answer in {HEALTH_TIMEOUT_S:g} s")])


@health_router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "a dependency is down"}},
    summary="Store and embedder health (never computes an embedding)",
    description="Open to all for the seed's clients and load balancers; with SEMCACHE_API_KEY set, the "
    "detail (message and components: hosts, versions, memory, index names, counts) only with the key.",
)
async def health(request: Request, state: State) -> JSONResponse:
    report = await _health_report(state)
    down = [c for c in report.components if c.status == "down"]
    store = report.component("store")
    body = HealthResponse(
        status=report.status,
        cache_healthy=store is not None and store.ok,
        ready=state.ready,
        down=[c.name for c in down],
        message="",
    )
    expected = state.settings.api_key
    if expected is None or key_matches(expected, presented_key(request)):
        body.message = state.redact("; ".join(f"{c.name} down: {c.detail}" for c in down))
        body.components = [ComponentOut.of(c, state.redact) for c in report.components]
    return JSONResponse(body.model_dump(), status_code=503 if down else 200)


@health_router.get("/health/live", summary="The process answers")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@health_router.get(
    "/health/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "starting, or a dependency is down"}},
    summary="Ready to serve: the model is loaded and the store answers",
)
async def ready(state: State) -> JSONResponse:
    if not state.ready:
        error = state.start_error
        body = ReadyResponse(
            ready=False,
            status="failed" if error is not None else "starting",
            detail=state.redact(str(error))
            if error is not None
            else "loading the model and opening the store",
        )
        return JSONResponse(body.model_dump(), status_code=503)
    report = await _health_report(state)
    down = [c for c in report.components if c.status == "down"]
    if down:
        detail = state.redact("; ".join(f"{c.name} down: {c.detail}" for c in down))
        return JSONResponse(ReadyResponse(ready=False, status="unhealthy", detail=detail).model_dump(), 503)
    return JSONResponse(ReadyResponse(ready=True, status="ready").model_dump())
