"""Prometheus metrics of a server: requests, hits and misses, and the embed and search stages.

Each app has its own registry (two apps in one process, as in tests, do not collide). With ``--workers``
above 1, a scrape reaches one worker at random, so every worker writes its numbers to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, set up by ``serve``) and ``/metrics``
answers with the sum over all of them. Several servers (replicas) are scraped one by one, as usual; the
figures they share through the store (entries, hits and misses of every replica) are in ``/cache/stats``.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: prometheus_client's own variable: set, every process of the server shares its numbers through that folder.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "semcache_http_requests_total",
            "HTTP requests answered, by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "semcache_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["method", "route"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.hits = Counter("semcache_cache_hits_total", "Checks answered with a hit", registry=self.registry)
        self.exact_hits = Counter(
            "semcache_cache_exact_hits_total",
            "Hits answered by the exact-repeat path, without an embedding",
            registry=self.registry,
        )
        self.misses = Counter(
            "semcache_cache_misses_total", "Checks answered with a miss", registry=self.registry
        )
        self.stored_total = Counter("semcache_cache_stored_total", "Entries stored", registry=self.registry)
        self.evictions = Counter(
            "semcache_cache_evictions_total",
            "Entries evicted to keep the index within SEMCACHE_MAX_ENTRIES, by this server's writes (every "
            "replica's together: `evictions` in `semcache-tui index`)",
            registry=self.registry,
        )
        self.embed_seconds = Histogram(
            "semcache_embed_duration_seconds",
            "Time of one (batched) call of the embedder",
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.embed_batch_size = Histogram(
            "semcache_embed_batch_size",
            "Texts per call of the embedder (concurrent checks share one call)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
            registry=self.registry,
        )
        self.search_seconds = Histogram(
            "semcache_search_duration_seconds",
            "Time of one vector search in the store",
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        # The OpenAI-compatible proxy (engine/proxy), when an upstream is configured.
        self.proxy_requests = Counter(
            "semcache_proxy_requests_total",
            "Requests to the proxy's completion routes, by route and outcome (hit, miss, bypass)",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.proxy_upstream_seconds = Histogram(
            "semcache_proxy_upstream_duration_seconds",
            "Time until the upstream's answer was complete (the whole stream for a streamed one)",
            buckets=(*_STAGE_BUCKETS, 30.0, 60.0, 120.0, 300.0),
            registry=self.registry,
        )
        self.proxy_upstream_errors = Counter(
            "semcache_proxy_upstream_errors_total",
            "Upstream failures passed to the client, by kind (status, timeout, connection, stream)",
            ["kind"],
            registry=self.registry,
        )
        self.proxy_tokens_saved = Counter(
            "semcache_proxy_tokens_saved_total",
            "Estimate of upstream tokens saved: the prompt and completion tokens of the answers served on hits",
            registry=self.registry,
        )

        self.feedback = Counter(
            "semcache_feedback_total",
            "Feedback reports received, by verdict (wrong or right)",
            ["verdict"],
            registry=self.registry,
        )
        self.verifier_refusals = Counter(
            "semcache_verifier_refusals_total",
            "Candidates within the cap that verification refused, by kind of reason",
            ["reason_kind"],
            registry=self.registry,
        )

    # The cache's observer (engine/cache.py CacheObserver): every search and store of every cache served.
    def searched(self, seconds: float) -> None:
        self.search_seconds.observe(seconds)

    def stored(self, entries: int) -> None:
        self.stored_total.inc(entries)

    def evicted(self, entries: int) -> None:
        """The store's ``on_evict``: entries one of this server's writes evicted."""
        self.evictions.inc(entries)

    def observe_embed_batch(self, texts: int, requests: int, seconds: float) -> None:
        self.embed_seconds.observe(seconds)
        self.embed_batch_size.observe(texts)

    def refused(self, reasons: list[str]) -> None:
        for reason in reasons:
            self.verifier_refusals.labels(reason_kind=reason_kind(reason)).inc()

    def render(self) -> bytes:
        if os.environ.get(MULTIPROCESS_ENV):
            combined = CollectorRegistry()
            MultiProcessCollector(combined)
            return generate_latest(combined)
        return generate_latest(self.registry)


def reason_kind(reason: str) -> str:
    """A refusal's reason without its particulars, a bounded label: "numbers differ: 5 vs 50" -> "numbers
    differ", "score 0.42 < cut 0.85" -> "score below cut"."""
    if reason.startswith("score "):
        return "score below cut"
    return reason.split(":", 1)[0].split(" (", 1)[0]
