"""The wire shapes of the HTTP API, converted from engine/models.py (the data model is defined there once).

The seed service's routes, fields and meanings are kept as they were (``prompt``, ``is_hit``, ``matches``
with ``vector_distance``, ``cosine_similarity``, ``cached_at``...), so its clients work unchanged; what we
add is only ever an extra field or an extra route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, field_validator

from engine.cache import MAX_K, MAX_TTL, ttl_seconds
from engine.errors import InvalidInputError
from engine.keys import SCOPE_REGEX, SCOPE_RULE
from engine.models import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    CacheEntry,
    CacheStats,
    Candidate,
    CheckResult,
    ComponentHealth,
    EmbedderIdentity,
    EntryPage,
    IndexInfo,
    Match,
    clamp_distance,
    readable_metadata,
)

# The schema publishes the rules engine/cache.py enforces (with messages that name them): a text must hold
# a non-blank character, a scope must match SCOPE_REGEX. Validation stays there, for every caller.
_TEXT: dict[str, Any] = {"minLength": 1}
_SCOPE: dict[str, Any] = {"pattern": SCOPE_REGEX}
_SCOPE_HELP = f"{SCOPE_RULE}; none means the default scope"
_K_RANGE: dict[str, Any] = {"minimum": 1, "maximum": MAX_K}

# -- requests --------------------------------------------------------------------------------------------


class CheckRequest(BaseModel):
    prompt: str = Field(description="the prompt to look up", json_schema_extra=_TEXT)
    threshold: float | None = Field(
        None,
        description="cosine distance in [0, 2]; lower is stricter (default: the server's)",
        json_schema_extra={"minimum": 0.0, "maximum": 2.0},
    )
    scope: str | None = Field(
        None,
        description=f"only entries stored in this scope can match: {_SCOPE_HELP}",
        json_schema_extra=_SCOPE,
    )
    k: int = Field(5, description="at most this many matches, closest first", json_schema_extra=_K_RANGE)
    explain: bool = Field(
        False, description="add `explain`: every candidate with its distance, score and reason"
    )


class StoreRequest(BaseModel):
    prompt: str = Field(json_schema_extra=_TEXT)
    response: str = Field(json_schema_extra=_TEXT)
    metadata: dict[str, Any] | None = Field(
        None,
        description=f"any JSON object, at most {MAX_METADATA_DEPTH} levels deep and {MAX_METADATA_BYTES} "
        "bytes serialized",
    )
    scope: str | None = Field(None, description=_SCOPE_HELP, json_schema_extra=_SCOPE)
    ttl: int | None = Field(
        None,
        ge=0,
        le=MAX_TTL,
        description=f"seconds to keep the entry: 0 keeps it forever, otherwise 1 to {MAX_TTL} (100 years); "
        "none means the server's default",
    )

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl_in_range(cls, value: object) -> object:
        # Before pydantic's own checks, so 1.5, 1e16 and 10**400 are all refused naming the range.
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 3600.0 is a whole number of seconds
        try:
            return ttl_seconds(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None


class BatchStoreRequest(BaseModel):
    items: list[StoreRequest] = Field(description="prompt/response pairs, stored all or nothing")


class SearchRequest(BaseModel):
    prompt: str = Field(json_schema_extra=_TEXT)
    scope: str | None = Field(None, description=_SCOPE_HELP, json_schema_extra=_SCOPE)
    k: int = Field(
        10, description="how many nearest entries, whatever their distance", json_schema_extra=_K_RANGE
    )
    verdicts: bool = Field(
        False, description="add `verdicts`: each match judged by the check's rule at `threshold`"
    )
    threshold: float | None = Field(
        None, description="the distance cap of the verdicts (default: the server's)"
    )
    target_precision: float | None = Field(
        None, description="the precision target of the verdicts (default: the server's)"
    )


class FeedbackRequest(BaseModel):
    prompt: str = Field(description="the prompt the entry was served for", json_schema_extra=_TEXT)
    key: str = Field(description="the key of the entry that was served")
    correct: bool = Field(description="false: the served answer was wrong for this prompt")
    scope: str | None = Field(
        None, description=f"the scope of the check: {_SCOPE_HELP}", json_schema_extra=_SCOPE
    )


# -- responses -------------------------------------------------------------------------------------------


class MatchOut(BaseModel):
    prompt: str
    response: str
    vector_distance: float = Field(ge=0.0, le=2.0)
    cosine_similarity: float = Field(ge=-1.0, le=1.0)
    cached_at: float = Field(description="unix timestamp of the store")
    metadata: dict[str, Any] = Field(default_factory=dict)
    key: str
    scope: str
    expires_at: float | None = None
    hit_count: int = 0

    @classmethod
    def of(cls, match: Match) -> MatchOut:
        distance = clamp_distance(match.distance)
        entry = match.entry
        return cls(
            prompt=entry.prompt,
            response=entry.response,
            vector_distance=distance,
            cosine_similarity=1.0 - distance,
            cached_at=entry.created_at,
            metadata=readable_metadata(entry.metadata),
            key=entry.key,
            scope=entry.scope,
            expires_at=entry.expires_at,
            hit_count=entry.hit_count,
        )


class RejectedOut(MatchOut):
    reason: str


class ExplainOut(BaseModel):
    key: str
    prompt: str
    vector_distance: float
    score: float | None = Field(description="the verifier's score; null when it did not run")
    served: bool
    reason: str

    @classmethod
    def of(cls, candidate: Candidate) -> ExplainOut:
        return cls(
            key=candidate.match.entry.key,
            prompt=candidate.match.entry.prompt,
            vector_distance=clamp_distance(candidate.match.distance),
            score=None if candidate.score is None else round(candidate.score, 6),
            served=candidate.served,
            reason=candidate.reason,
        )


class VerdictOut(ExplainOut):
    passed: bool
    cut: float | None

    @classmethod
    def of(cls, candidate: Candidate) -> VerdictOut:
        return cls(**ExplainOut.of(candidate).model_dump(), passed=candidate.passed, cut=candidate.cut)


class CheckResponse(BaseModel):
    prompt: str
    is_hit: bool
    matches: list[MatchOut]
    lookup_time_ms: float
    scope: str
    threshold: float
    exact: bool = Field(False, description="answered by the exact-repeat path, without an embedding")
    rejected: list[RejectedOut] = Field(
        default_factory=list, description="candidates within the threshold that verification turned down"
    )
    explain: list[ExplainOut] | None = Field(
        None, description="only when asked (`explain: true`): every candidate, served or refused, and why"
    )

    @classmethod
    def of(cls, result: CheckResult, explain: bool = False) -> CheckResponse:
        return cls(
            prompt=result.prompt,
            is_hit=result.is_hit,
            matches=[MatchOut.of(match) for match in result.matches],
            lookup_time_ms=result.lookup_time_ms,
            scope=result.scope,
            threshold=result.threshold,
            exact=result.exact,
            rejected=[
                RejectedOut(**MatchOut.of(match).model_dump(), reason=reason)
                for match, reason in result.rejected
            ],
            explain=[ExplainOut.of(c) for c in result.candidates] if explain else None,
        )

    def to_json(self) -> str:
        """The seed's fields exactly, plus ``explain`` only when it was asked for."""
        return self.model_dump_json(exclude=None if self.explain is not None else {"explain"})


class StoreResponse(BaseModel):
    success: bool
    key: str
    message: str


class BatchStoreResponse(BaseModel):
    success: bool
    keys: list[str]
    stored: int
    message: str


class SearchResponse(BaseModel):
    prompt: str
    scope: str
    matches: list[MatchOut]
    verdicts: list[VerdictOut] | None = Field(None, description="only when asked (`verdicts: true`)")


class FeedbackResponse(BaseModel):
    success: bool
    key: str
    wrong: int = Field(description="wrong reports of this entry")
    right: int = Field(description="right reports of this entry")
    evicted: bool = Field(description="the entry was deleted for its wrong reports")


class EmbedderOut(BaseModel):
    provider: str
    model: str
    dimension: int

    @classmethod
    def of(cls, identity: EmbedderIdentity | None) -> EmbedderOut | None:
        return None if identity is None else cls(**identity.to_dict())


class StatsResponse(BaseModel):
    total_entries: int
    index_name: str
    threshold: float
    ttl_seconds: int
    hits: int
    misses: int
    lookups: int
    hit_rate: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    embedder: EmbedderOut | None
    store: str
    verify_candidates: bool
    max_prompt_chars: int
    target_precision: float | None = None
    feedback_wrong: int = 0
    feedback_right: int = 0
    #: Entries removed to keep the index within SEMCACHE_MAX_ENTRIES, ever, by every replica.
    evictions: int = 0

    @classmethod
    def of(
        cls,
        stats: CacheStats,
        *,
        index_name: str,
        threshold: float,
        ttl: int,
        embedder: EmbedderIdentity | None,
        store: str,
        verify_candidates: bool,
        max_prompt_chars: int,
        target_precision: float | None = None,
    ) -> StatsResponse:
        return cls(
            total_entries=stats.entries,
            index_name=index_name,
            threshold=threshold,
            ttl_seconds=ttl,
            hits=stats.hits,
            misses=stats.misses,
            lookups=stats.lookups,
            hit_rate=stats.hit_rate,
            latency_p50_ms=stats.latency_p50_ms,
            latency_p95_ms=stats.latency_p95_ms,
            embedder=EmbedderOut.of(embedder),
            store=store,
            verify_candidates=verify_candidates,
            max_prompt_chars=max_prompt_chars,
            target_precision=target_precision,
            feedback_wrong=stats.feedback_wrong,
            feedback_right=stats.feedback_right,
            evictions=stats.evictions,
        )


class ClearResponse(BaseModel):
    success: bool
    deleted_count: int
    message: str


class DeleteResponse(BaseModel):
    success: bool
    key: str
    message: str


class EntryOut(BaseModel):
    key: str
    scope: str
    prompt: str
    response: str
    metadata: dict[str, Any]
    created_at: float
    expires_at: float | None
    hit_count: int

    @classmethod
    def of(cls, entry: CacheEntry) -> EntryOut:
        return cls(
            key=entry.key,
            scope=entry.scope,
            prompt=entry.prompt,
            response=entry.response,
            metadata=readable_metadata(entry.metadata),
            created_at=entry.created_at,
            expires_at=entry.expires_at,
            hit_count=entry.hit_count,
        )


class EntriesResponse(BaseModel):
    entries: list[EntryOut]
    total: int
    offset: int
    limit: int

    @classmethod
    def of(cls, page: EntryPage) -> EntriesResponse:
        return cls(
            entries=[EntryOut.of(entry) for entry in page.entries],
            total=page.total,
            offset=page.offset,
            limit=page.limit,
        )


class IndexInfoOut(BaseModel):
    name: str
    store: str
    documents: int
    identity: EmbedderOut | None
    algorithm: str
    metric: str
    parameters: dict[str, Any]
    fields: list[dict[str, Any]]
    memory_bytes: int | None
    indexing_failures: int
    extra: dict[str, Any]
    max_entries: int | None = Field(
        None,
        description="the most entries the index may hold (SEMCACHE_MAX_ENTRIES); null: no limit",
    )
    max_entries_per_scope: int | None = Field(
        None,
        description="the most entries one scope may hold (SEMCACHE_MAX_ENTRIES_PER_SCOPE); null: no limit",
    )
    eviction_policy: str | None = Field(
        None,
        description="which entries go first when a limit is reached (SEMCACHE_EVICTION_POLICY): lru (least "
        "recently hit), lfu (least often hit, with ageing) or ttl (soonest to expire); applies only when a "
        "limit is set",
    )
    evictions: int = Field(
        0,
        description="entries evicted to keep the index within its limits, ever, by every process sharing "
        "the store (expired entries removed are not counted)",
    )
    evictions_per_minute: float | None = Field(
        None,
        description="the growth of `evictions` per minute over about the last minute, as seen by this "
        "server's reads of the counter (each call of this route, of /cache/stats and of /metrics); null "
        "until it has read it twice, at least a second apart",
    )
    memory_per_entry_bytes: float | None = Field(
        None,
        description="`memory_bytes` / `documents`: the index memory per entry; null when either is unknown "
        "or zero",
    )

    @classmethod
    def of(cls, info: IndexInfo) -> IndexInfoOut:
        return cls(
            name=info.name,
            store=info.store,
            documents=info.documents,
            identity=EmbedderOut.of(info.identity),
            algorithm=info.algorithm,
            metric=info.metric,
            parameters=info.parameters,
            fields=info.fields,
            memory_bytes=info.memory_bytes,
            indexing_failures=info.indexing_failures,
            extra=info.extra,
            max_entries=info.max_entries,
            max_entries_per_scope=info.max_entries_per_scope,
            eviction_policy=info.eviction_policy,
            evictions=info.evictions,
            evictions_per_minute=info.evictions_per_minute,
            memory_per_entry_bytes=info.memory_per_entry,
        )


class ComponentOut(BaseModel):
    name: str
    status: str
    detail: str
    latency_ms: float | None
    facts: dict[str, Any]

    @classmethod
    def of(cls, component: ComponentHealth, redact: Callable[[str], str] = str) -> ComponentOut:
        return cls(
            name=component.name,
            status=component.status,
            detail=redact(component.detail),
            latency_ms=component.latency_ms,
            facts=component.facts,
        )


class HealthResponse(BaseModel):
    status: str = Field(description="healthy, degraded (e.g. the model is still loading) or unhealthy")
    cache_healthy: bool
    ready: bool
    down: list[str] = Field(default_factory=list, description="the dependencies that are down")
    message: str = Field("", description="what is down and why (with the API key, when one is set)")
    components: list[ComponentOut] = Field(
        default_factory=list, description="each dependency's detail (with the API key, when one is set)"
    )


class ReadyResponse(BaseModel):
    ready: bool
    status: str
    detail: str = ""


class ErrorResponse(BaseModel):
    error: str
    message: str
    hint: str | None = None
