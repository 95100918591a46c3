"""The data model, defined once. The server's schemas, the panel and the command line all speak these."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

#: Metadata deeper than this is refused at the door: deep nesting costs every reader (serializers recurse),
#: while real metadata (a model name, a user id, a few tags) is two or three levels deep.
MAX_METADATA_DEPTH = 16
#: Metadata larger than this, serialized as UTF-8 JSON, is refused: it is stored and sent with every hit.
MAX_METADATA_BYTES = 64 * 1024
#: Timestamps (``created_at``, ``expires_at``) are Unix seconds from 0 to the end of year 9999, the range
#: every store, ``datetime`` and JSON reader handles.
MAX_TIMESTAMP = 253402300799.0


def metadata_problem(metadata: object) -> str | None:
    """Why ``metadata`` cannot be stored (not an object, too deep, too big, not JSON), or ``None``.

    The depth is measured without recursion, so a hostile document cannot exhaust the stack here.
    """
    if not isinstance(metadata, dict):
        return "metadata is not a JSON object"
    stack: list[tuple[object, int]] = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            return f"metadata is nested deeper than the limit of {MAX_METADATA_DEPTH} levels"
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values() if isinstance(item, dict | list))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value if isinstance(item, dict | list))
    try:
        size = len(json.dumps(metadata, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except (ValueError, TypeError) as exc:  # NaN, Infinity, a lone surrogate, a value JSON cannot hold
        return f"metadata is not valid JSON ({type(exc).__name__}: {str(exc)[:80]})"
    if size > MAX_METADATA_BYTES:
        return f"metadata is {size} bytes of JSON, over the limit of {MAX_METADATA_BYTES}"
    return None


def readable_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` as readers may show it: an entry written before the limits (or by another tool) whose
    metadata breaks them is shown with a marker instead, so one bad entry cannot fail a listing or a hit."""
    problem = metadata_problem(metadata)
    return metadata if problem is None else {"_semcache_unreadable": problem}


@dataclass(frozen=True, slots=True)
class EmbedderIdentity:
    """What filled an index. Vectors from two identities must never be mixed."""

    provider: str
    model: str
    dimension: int

    def describe(self) -> str:
        return f"{self.provider}:{self.model} ({self.dimension} dims)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbedderIdentity:
        return cls(provider=str(data["provider"]), model=str(data["model"]), dimension=int(data["dimension"]))


@dataclass(slots=True)
class CacheEntry:
    key: str
    scope: str
    prompt: str
    response: str
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    expires_at: float | None = None
    hit_count: int = 0

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def remaining_ttl(self, now: float) -> float | None:
        return None if self.expires_at is None else max(0.0, self.expires_at - now)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clamp_distance(distance: float) -> float:
    """Cosine distance in [0, 2]. Float error puts an exact repeat at -1e-7 and an opposite at 2+1e-7."""
    if math.isnan(distance):
        return 2.0
    return min(2.0, max(0.0, float(distance)))


@dataclass(slots=True)
class Match:
    entry: CacheEntry
    distance: float
    #: The entry's stored unit vector, when the search was asked for it (``with_vectors``).
    vector: np.ndarray | None = None

    @property
    def similarity(self) -> float:
        """Cosine similarity, 1 - distance, in [-1, 1]."""
        return 1.0 - self.distance


@dataclass(slots=True)
class Candidate:
    """One candidate of a check, judged: why it was served or refused (the explanation of a decision)."""

    match: Match
    #: The verifier's score (probability that both texts ask the same thing); ``None`` when it did not run
    #: (verification off, an exact repeat, a candidate over the cap or refused by feedback).
    score: float | None
    #: It may be served: within the cap, not refused by feedback, past the critical rules and the cut.
    passed: bool
    #: It is the one served (the passing candidate with the highest score).
    served: bool
    #: "served: score 0.93 >= cut 0.85", "numbers differ: 5 vs 50", "score 0.42 < cut 0.85"...
    reason: str
    #: The score cut this entry had to reach (its own, tightened by wrong reports); ``None`` without one.
    cut: float | None = None


@dataclass(slots=True)
class CheckResult:
    prompt: str
    scope: str
    threshold: float
    is_hit: bool
    matches: list[Match]
    lookup_time_ms: float
    #: True when the answer came from the exact-repeat path, without computing an embedding.
    exact: bool = False
    #: Candidates within the threshold that verification rejected, with the reason (for the query lab).
    rejected: list[tuple[Match, str]] = field(default_factory=list)
    #: Every candidate judged, nearest first, with its score and reason (``explain``).
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None

    @property
    def best_refused(self) -> Candidate | None:
        """The refused candidate that came closest to being served (highest score, else nearest)."""
        refused = [c for c in self.candidates if not c.passed]
        if not refused:
            return None
        return max(refused, key=lambda c: (c.score if c.score is not None else -1.0, -c.match.distance))


@dataclass(slots=True)
class CacheStats:
    entries: int
    hits: int
    misses: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    #: Feedback reports ever recorded, wrong and right (``SemanticCache.feedback``).
    feedback_wrong: int = 0
    feedback_right: int = 0
    #: Entries removed to keep the index within its capacity, ever (``StoreCounters.evictions``).
    evictions: int = 0

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0


@dataclass(slots=True)
class StoreCounters:
    """Hit/miss counters and recent lookup latencies, as kept by a store for every process that shares it."""

    hits: int
    misses: int
    recent_latencies_ms: list[float]
    #: Feedback reports ever recorded (``VectorStore.record_feedback``), wrong and right.
    feedback_wrong: int = 0
    feedback_right: int = 0
    #: Entries removed to keep the index within its capacity (``SEMCACHE_MAX_ENTRIES``), ever.
    evictions: int = 0


@dataclass(slots=True)
class EntryFeedback:
    """What operators and applications reported about the hits one entry served."""

    wrong: int = 0
    right: int = 0
    #: The query keys this entry must never be served for again (reported wrong, not since reported right).
    refused_queries: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """An entry's feedback after one report, and whether the report got it evicted."""

    wrong: int
    right: int
    evicted: bool


@dataclass(slots=True)
class EntryPage:
    entries: list[CacheEntry]
    total: int
    offset: int
    limit: int


@dataclass(slots=True)
class IndexInfo:
    """What an operator needs to know about one index, whichever store holds it."""

    name: str
    store: str
    documents: int
    identity: EmbedderIdentity | None
    algorithm: str
    metric: str
    parameters: dict[str, Any] = field(default_factory=dict)
    fields: list[dict[str, Any]] = field(default_factory=list)
    memory_bytes: int | None = None
    indexing_failures: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: The capacity the index is held to (``None``: no limit) and the eviction policy that keeps it.
    max_entries: int | None = None
    max_entries_per_scope: int | None = None
    eviction_policy: str | None = None
    #: Entries evicted to keep the capacity, ever (every process sharing the store).
    evictions: int = 0
    #: ``evictions``' growth per minute over about the last minute, as seen by the process that read the
    #: counter more than once (engine/rates.py); ``None`` when it has read it only once.
    evictions_per_minute: float | None = None

    @property
    def memory_per_entry(self) -> float | None:
        """Bytes of index memory per document (``memory_bytes`` / ``documents``), when both are known."""
        if not self.memory_bytes or not self.documents:
            return None
        return self.memory_bytes / self.documents


@dataclass(slots=True)
class ComponentHealth:
    name: str
    status: str  # "ok" | "degraded" | "down" | "loading"
    detail: str = ""
    latency_ms: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "degraded")


@dataclass(slots=True)
class HealthReport:
    components: list[ComponentHealth]

    @property
    def status(self) -> str:
        if any(c.status == "down" for c in self.components):
            return "unhealthy"
        if any(c.status in ("degraded", "loading") for c in self.components):
            return "degraded"
        return "healthy"

    def component(self, name: str) -> ComponentHealth | None:
        return next((c for c in self.components if c.name == name), None)
