"""The semantic cache: the one home of the cache's rules.

    check(prompt) -> exact repeat? (no embedding, served)
                  -> embed -> search in scope within the cap (CACHE_DISTANCE_THRESHOLD), with vectors
                  -> verify the candidates (``judge``): feedback refusals, critical-token rules, the
                     learned verifier's score against the entry's own cut -> serve the best that passes
                  -> record the lookup in the store -> CheckResult (with every candidate explained)

Stores keep data; embedders make vectors; this module decides what is a hit, how keys and expiry are
derived, what input is acceptable and what is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.config import DEFAULT_MODELS, PLAIN_DISTANCE_THRESHOLD, VERIFIED_DISTANCE_CAP
from engine.embeddings.base import Embedder, normalize_rows
from engine.errors import InvalidInputError
from engine.keys import DEFAULT_SCOPE, SCOPE_RULE, entry_key, normalize_prompt, query_key, valid_scope
from engine.models import (
    MAX_TIMESTAMP,
    CacheEntry,
    CacheStats,
    Candidate,
    CheckResult,
    ComponentHealth,
    EmbedderIdentity,
    EntryFeedback,
    EntryPage,
    FeedbackResult,
    HealthReport,
    IndexInfo,
    Match,
    metadata_problem,
)
from engine.rates import CounterRate
from engine.stores.base import IMPORT_NOTE, VectorStore
from engine.verification import critical
from engine.verification.features import DIMENSION
from engine.verification.model import Verdict, Verifier

MAX_K = 100
#: The longest TTL a store accepts: 100 years, in seconds. Beyond it a Unix expiry time leaves the range
#: every store and reader handles (and "forever" is spelled 0).
MAX_TTL = 100 * 31_557_600
#: The deepest page of ``list_entries``: Redis answers at most MAXSEARCHRESULTS (1,000,000 by default)
#: results per query, so offset + limit beyond it is refused here on both stores, for one contract.
MAX_LISTING = 1_000_000
#: The model the verifier was trained on (its vectors are features): when the cache's embedder is this one,
#: at its full dimension, the vectors the search returns are the verifier's; otherwise the few candidates
#: are embedded again with it (``bundled_embedder``).
BUNDLED_IDENTITY = EmbedderIdentity(
    "sentence-transformers", DEFAULT_MODELS["sentence-transformers"], DIMENSION
)
#: An entry is evicted once it has at least this many wrong reports and more than twice as many wrong as
#: right ones: three independent "wrong" are rarely an accident, and an entry mostly right keeps serving
#: (with its tightened cut, and never again for the prompts reported wrong).
EVICT_AFTER_WRONG = 3
#: Candidates served by the exact-repeat path need no verification.
EXACT_REASON = "exact repeat"
REFUSED_REASON = "reported wrong for this prompt"
OVER_CAP_REASON = "over the distance cap"


@dataclass(slots=True)
class CachePolicy:
    """The knobs of the cache's rules (from ``Settings``; see ``engine.assembly.policy_from_settings``).

    ``threshold`` is the distance cap of retrieval when ``verify_candidates`` is on (the verifier decides
    within it), and the seed's static threshold when it is off (distance alone decides).
    """

    threshold: float = VERIFIED_DISTANCE_CAP
    ttl: int = 604800
    extend_ttl_on_hit: bool = False
    verify_candidates: bool = True
    max_prompt_chars: int = 32768
    #: The precision the operator asks of served answers; ``None``: the verifier's own default.
    target_precision: float | None = None

    @classmethod
    def plain(cls, **knobs: Any) -> CachePolicy:
        """The seed's behaviour (SEMCACHE_VERIFY=off): distance alone, at the seed's threshold."""
        knobs.setdefault("threshold", PLAIN_DISTANCE_THRESHOLD)
        return cls(verify_candidates=False, **knobs)


@dataclass(slots=True)
class StoreRequest:
    prompt: str
    response: str
    scope: str = DEFAULT_SCOPE
    metadata: dict[str, Any] | None = None
    ttl: int | None = None


@dataclass(slots=True)
class RestoreResult:
    """What ``SemanticCache.restore_entries`` did with one batch."""

    written: int = 0
    #: Entries whose ``expires_at`` had passed: skipped, never written.
    expired: int = 0
    #: Entries written with a freshly computed vector (none given, or not of this embedder's dimension).
    embedded: int = 0


# -- the rule of a hit -------------------------------------------------------------------------------------


def entry_target(target: float, feedback: EntryFeedback | None) -> float:
    """The precision one entry must be served at: the operator's target, tightened by its wrong reports.

    Each wrong report beyond the right ones divides the tolerated error by one more:
    ``1 - (1 - target) / (1 + max(0, wrong - right))`` (0.88 -> 0.94 -> 0.96 -> 0.97). This is a per-entry
    threshold learned from the entry's own observations, in the spirit of vCache (Schroeder et al., 2025,
    "vCache: Verified Semantic Prompt Caching"), which learns one decision boundary per cached entry rather
    than one global threshold.
    """
    excess = 0 if feedback is None else max(0, feedback.wrong - feedback.right)
    return 1.0 - (1.0 - target) / (1.0 + excess)


def should_evict(feedback: EntryFeedback) -> bool:
    """At least ``EVICT_AFTER_WRONG`` wrong reports, and more than twice as many wrong as right."""
    return feedback.wrong >= EVICT_AFTER_WRONG and feedback.wrong > 2 * feedback.right


def judge(
    verifier: Verifier,
    matches: Sequence[Match],
    verdicts: Sequence[Verdict],
    *,
    cap: float,
    target: float,
    feedback: Mapping[str, EntryFeedback],
    query: str,
) -> list[Candidate]:
    """The decision on each candidate (given in search order) and which one is served.

    ``verdicts`` are the verifier's, one per match, computed at cut 0 (so each holds the score, or the
    critical-token veto). A candidate passes when it is within the distance ``cap``, its entry was not
    reported wrong for this query (``query`` is the query's key, ``engine.keys.query_key``), no rule
    vetoed it and its score reaches its entry's own cut (``entry_target``). The passing candidate with the
    highest score is served (ties: the nearer). ``check`` decides with it, and ``verdicts`` (the query
    lab's marks) too, so the marks an operator sees and the answers ``check`` gives are the same rule's.
    """
    judged: list[Candidate] = []
    for match, verdict in zip(matches, verdicts, strict=True):
        entry_feedback = feedback.get(match.entry.key)
        cut = verifier.cut_for_precision(entry_target(target, entry_feedback))
        score: float | None = verdict.score
        if match.distance > cap:
            judged.append(
                Candidate(
                    match, score, False, False, f"{OVER_CAP_REASON} ({match.distance:.3f} > {cap:.3f})", cut
                )
            )
        elif entry_feedback is not None and query in entry_feedback.refused_queries:
            judged.append(Candidate(match, score, False, False, REFUSED_REASON, cut))
        elif not verdict.passed:
            judged.append(Candidate(match, score, False, False, verdict.reason, cut))
        elif verdict.score >= cut:
            judged.append(
                Candidate(
                    match, score, True, False, f"passed: score {verdict.score:.2f} >= cut {cut:.2f}", cut
                )
            )
        else:
            tightened = entry_feedback is not None and entry_feedback.wrong > entry_feedback.right
            note = (
                f" (tightened by {entry_feedback.wrong} wrong reports)"
                if tightened and entry_feedback
                else ""
            )
            judged.append(
                Candidate(match, score, False, False, f"score {verdict.score:.2f} < cut {cut:.2f}{note}", cut)
            )
    return _serve_best(judged, lambda c: (c.score or 0.0, -c.match.distance))


def judge_by_distance(matches: Sequence[Match], cap: float) -> list[Candidate]:
    """The seed's rule (SEMCACHE_VERIFY=off): every candidate within the threshold passes; the nearest is
    served."""
    judged = [
        Candidate(match, None, True, False, f"passed: distance {match.distance:.3f} <= {cap:.3f}")
        if match.distance <= cap
        else Candidate(match, None, False, False, f"{OVER_CAP_REASON} ({match.distance:.3f} > {cap:.3f})")
        for match in matches
    ]
    return _serve_best(judged, lambda c: (0.0, -c.match.distance))


def _serve_best(judged: list[Candidate], rank: Any) -> list[Candidate]:
    passing = [c for c in judged if c.passed]
    if passing:
        best = max(passing, key=rank)
        best.served = True
        best.reason = "served: " + best.reason.removeprefix("passed: ")
        for other in passing:
            if other is not best:
                other.reason += " (a better candidate was served)"
    return judged


def result_of(
    prompt: str, scope: str, cap: float, candidates: list[Candidate], *, exact: bool = False
) -> CheckResult:
    """A ``CheckResult`` in the seed's shape (``matches``: the served one first, then the others that
    passed; ``rejected``: the refused ones within the cap, with their reason) and every candidate."""
    passing = sorted((c for c in candidates if c.passed), key=lambda c: not c.served)
    rejected = [(c.match, c.reason) for c in candidates if not c.passed and c.match.distance <= cap]
    return CheckResult(
        prompt,
        scope,
        cap,
        bool(passing),
        [c.match for c in passing],
        0.0,
        exact=exact,
        rejected=rejected,
        candidates=candidates,
    )


def judge_without_score(policy: CachePolicy, prompt: str, match: Match, threshold: float) -> str | None:
    """Why ``match`` is refused by distance or by a critical-token rule, or ``None``: the part of the rule
    that needs no vectors, for the query lab's synchronous marks until it asks ``verdicts`` (which adds the
    verifier's score and feedback, and is what ``check`` decides with)."""
    if match.distance > threshold:
        return "over threshold"
    if policy.verify_candidates and match.distance > 0.0:
        return critical.rejection_reason(prompt, match.entry.prompt)
    return None


def valid_text(value: str, what: str) -> str:
    """``value`` if it can be stored and sent as UTF-8; a lone surrogate ("\\ud800", valid in JSON) cannot."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} holds a lone surrogate (U+{ord(value[exc.start]):04X}) at character {exc.start}",
            "send valid Unicode text: a surrogate must come in a pair",
        ) from None
    return value


def ttl_seconds(ttl: object) -> int:
    """``ttl`` if it is a whole number of seconds in the documented range (0 keeps an entry forever)."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
        shown = repr(ttl) if not isinstance(ttl, int) or abs(ttl) < 10**20 else "out of range"
        raise InvalidInputError(
            f"ttl {shown} is not allowed: use 0 (keep forever) or 1 to {MAX_TTL} seconds (100 years)",
            "send a whole number of seconds",
        )
    return ttl


def _metadata(metadata: object) -> dict[str, Any]:
    problem = metadata_problem(metadata)
    if problem is not None:
        raise InvalidInputError(problem, "send a smaller, flatter JSON object as metadata")
    assert isinstance(metadata, dict)  # metadata_problem refuses anything else
    return dict(metadata)


# -- the bundled model, for a cache whose embedder is another one ------------------------------------------

_bundled_lock = threading.Lock()
_bundled: Embedder | None = None


def bundled_embedder() -> Embedder:
    """The bundled model (default model settings, through ``create_embedder``), created on first need and
    shared by every cache of the process, so it loads once. Only the query and its few candidates are
    embedded with it (about 10-35 ms for 6 short texts on 2 busy cores; see README)."""
    global _bundled
    with _bundled_lock:
        if _bundled is None:
            from engine.config import Settings
            from engine.embeddings import create_embedder

            settings = Settings.model_validate({}).model_copy(
                update={
                    "embedding_provider": BUNDLED_IDENTITY.provider,
                    "embedding_model": BUNDLED_IDENTITY.model,
                    "embedding_output_dimension": None,
                }
            )
            _bundled = create_embedder(settings)
        return _bundled


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


class CacheObserver(Protocol):
    """What a server watches inside the cache (engine/server/instrument.py): searches, stores and the
    evictions the store's capacity limit made (reported by the store itself, ``VectorStore.on_evict``)."""

    def searched(self, seconds: float) -> None: ...

    def stored(self, entries: int) -> None: ...

    def evicted(self, entries: int) -> None: ...


class SemanticCache:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        policy: CachePolicy | None = None,
        observer: CacheObserver | None = None,
        *,
        verifier_path: Path | None = None,
        model_cache_dir: Path | None = None,
    ) -> None:
        self.vector_store = store
        self.embedder = embedder
        self.policy = policy or CachePolicy()
        self.observer = observer
        #: The verifier's weights (SEMCACHE_VERIFIER_PATH); ``None``: the ones shipped with the package.
        self.verifier_path = verifier_path
        #: Where the verifier's cross-encoder is exported for ONNX Runtime (the embedder's model cache).
        self.model_cache_dir = model_cache_dir
        self.verifier: Verifier | None = None
        self._ready: asyncio.Future[EmbedderIdentity] | None = None
        self._opened = False
        #: Fed by every read of the store's eviction counter (``stats``, ``index_info``), so
        #: ``IndexInfo.evictions_per_minute`` is known once this cache has read it twice.
        self._evictions = CounterRate()

    # -- life cycle --------------------------------------------------------------------------------------

    async def open_store(self) -> EmbedderIdentity | None:
        """Open the store without the embedder: enough for stats, listing, deleting and clearing."""
        if not self._opened:
            recorded = await self.vector_store.open()
            self._opened = True
            return recorded
        return self.vector_store.recorded_identity

    async def start(self) -> EmbedderIdentity:
        """Open the store, load the embedder (off the event loop) and bind the index to its identity.

        Concurrent callers share one start; a failed start is retried by the next caller.
        """
        if self._ready is None or (self._ready.done() and self._ready.exception() is not None):
            self._ready = asyncio.ensure_future(self._start())
        return await asyncio.shield(self._ready)

    async def _start(self) -> EmbedderIdentity:
        # First, and never skipped while verifying: a missing or damaged weights file fails the start with a
        # ``VerifierError`` (the server stays not ready with its message), never a cache that serves every
        # candidate. SEMCACHE_VERIFY=off does not read it.
        if self.policy.verify_candidates:
            self.load_verifier()
        await self.open_store()
        identity = await self.embedder.load()
        await self.vector_store.bind(identity)
        return identity

    @property
    def ready(self) -> bool:
        return self._ready is not None and self._ready.done() and self._ready.exception() is None

    @property
    def identity(self) -> EmbedderIdentity | None:
        configured = self.embedder.identity
        return configured if configured is not None else self.vector_store.recorded_identity

    @property
    def index_name(self) -> str:
        return self.vector_store.name

    @property
    def store_kind(self) -> str:
        return self.vector_store.kind

    async def close(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        await self.vector_store.close()
        await self.embedder.close()

    # -- the rules ---------------------------------------------------------------------------------------

    def _prompt(self, prompt: str, what: str = "prompt") -> str:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidInputError(f"{what} is empty", f"send a non-empty {what}")
        valid_text(prompt, what)
        if len(prompt) > self.policy.max_prompt_chars:
            raise InvalidInputError(
                f"{what} is {len(prompt)} characters, over the limit of {self.policy.max_prompt_chars}",
                "shorten it or raise SEMCACHE_MAX_PROMPT_CHARS",
            )
        return prompt

    @staticmethod
    def _scope(scope: str | None) -> str:
        # The one rule for every operation: no scope means the default one; an empty scope is refused.
        scope = DEFAULT_SCOPE if scope is None else scope
        if not valid_scope(scope):
            raise InvalidInputError(f"scope {scope!r} is not allowed", f"use {SCOPE_RULE}")
        return scope

    def _threshold(self, threshold: float | None) -> float:
        # ``is None``, not falsiness: a threshold of 0 means "identical meaning only" and is honoured.
        value = self.policy.threshold if threshold is None else float(threshold)
        if not 0.0 <= value <= 2.0 or value != value:
            raise InvalidInputError(
                f"threshold {threshold} is out of range",
                "use a cosine distance between 0 and 2 (lower is stricter)",
            )
        return value

    def _ttl(self, ttl: int | None) -> int:
        return self.policy.ttl if ttl is None else ttl_seconds(ttl)

    def judge(self, prompt: str, match: Match, threshold: float) -> str | None:
        return judge_without_score(self.policy, prompt, match, threshold)

    def load_verifier(self) -> Verifier:
        # About 10 ms (a 413 KB file, its sha256 and an npz): once per cache, at start.
        if self.verifier is None:
            self.verifier = Verifier.load(self.verifier_path, self.model_cache_dir)
        return self.verifier

    def _target(self, target_precision: float | None) -> float:
        verifier = self.load_verifier()
        value = self.policy.target_precision if target_precision is None else target_precision
        return verifier.default_target_precision if value is None else float(value)

    async def _judge(
        self,
        prompt: str,
        scope: str,
        vector: np.ndarray | None,
        matches: Sequence[Match],
        cap: float,
        target_precision: float | None = None,
    ) -> list[Candidate]:
        """Every candidate judged by the rule (``judge``, or ``judge_by_distance`` without verification)."""
        if not self.policy.verify_candidates:
            return judge_by_distance(matches, cap)
        if not matches:
            return []
        verifier = self.load_verifier()
        target = self._target(target_precision)
        query_vector, vectors = await self._verifier_vectors(prompt, vector, matches)
        pairs = [(m.entry.prompt, v) for m, v in zip(matches, vectors, strict=True)]
        # The feedback read (a store round trip) and the scoring (CPU) overlap. Scoring 5 candidates takes
        # 0.4 ms p50 with the texts' features cached and 2-8 ms with new texts on 2 busy cores
        # (MODEL_CARD.md), against about 0.1 ms for the hop to a thread: off the event loop it goes.
        feedback, verdicts = await asyncio.gather(
            self.vector_store.feedback([m.entry.key for m in matches]),
            asyncio.to_thread(verifier.verdicts, prompt, query_vector, pairs, 0.0),
        )
        return judge(
            verifier,
            matches,
            verdicts,
            cap=cap,
            target=target,
            feedback=feedback,
            query=query_key(scope, prompt),
        )

    async def _verifier_vectors(
        self, prompt: str, vector: np.ndarray | None, matches: Sequence[Match]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The bundled model's vectors of the query and of each candidate's prompt: the search's own when
        the cache's embedder is the bundled model at full dimension, else computed for these texts only."""
        if self.embedder.identity == BUNDLED_IDENTITY:
            if vector is None:
                vector = (await self.embedder.embed([prompt]))[0]
            missing = [m.entry.key for m in matches if m.vector is None]
            stored = await self.vector_store.get_vectors(missing) if missing else {}
            if all(m.vector is not None or m.entry.key in stored for m in matches):
                return vector, [m.vector if m.vector is not None else stored[m.entry.key] for m in matches]
        model = bundled_embedder()
        await model.load()
        computed = await model.embed([prompt, *(m.entry.prompt for m in matches)])
        return computed[0], list(computed[1:])

    # -- the store, watched ------------------------------------------------------------------------------

    async def _search(
        self,
        vector: np.ndarray,
        *,
        scope: str,
        k: int,
        max_distance: float | None,
        with_vectors: bool = False,
    ) -> list[Match]:
        started = time.perf_counter()
        try:
            return await self.vector_store.search(
                vector, scope=scope, k=k, max_distance=max_distance, with_vectors=with_vectors
            )
        finally:
            if self.observer is not None:
                self.observer.searched(time.perf_counter() - started)

    async def _upsert(self, items: list[tuple[CacheEntry, np.ndarray]]) -> None:
        await self.vector_store.upsert(items)
        if self.observer is not None:
            self.observer.stored(len(items))

    # -- operations --------------------------------------------------------------------------------------

    async def check(
        self, prompt: str, scope: str | None = None, threshold: float | None = None, k: int = 5
    ) -> CheckResult:
        prompt = self._prompt(prompt)
        scope = self._scope(scope)
        limit = self._threshold(threshold)
        if not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k={k} is out of range", f"ask for 1 to {MAX_K} matches")
        await self.start()
        started = time.perf_counter()

        exact = await self.vector_store.get(entry_key(scope, prompt))
        if exact is not None and normalize_prompt(exact.prompt) == normalize_prompt(prompt):
            served = Candidate(Match(exact, 0.0), None, True, True, EXACT_REASON)
            result = result_of(prompt, scope, limit, [served], exact=True)
        else:
            vector = (await self.embedder.embed([prompt]))[0]
            verify = self.policy.verify_candidates
            matches = await self._search(vector, scope=scope, k=k, max_distance=limit, with_vectors=verify)
            result = result_of(prompt, scope, limit, await self._judge(prompt, scope, vector, matches, limit))

        result.lookup_time_ms = (time.perf_counter() - started) * 1000.0
        best = result.best
        extend_to = None
        if best is not None and self.policy.extend_ttl_on_hit and best.entry.expires_at is not None:
            extend_to = time.time() + self._ttl(None)
        await self.vector_store.record_lookup(
            hit_key=best.entry.key if best else None, latency_ms=result.lookup_time_ms, extend_to=extend_to
        )
        return result

    async def nearest(self, prompt: str, scope: str | None = None, k: int = 10) -> list[Match]:
        """The k nearest entries whatever their distance, with their stored vectors, for the query lab
        (which asks ``verdicts`` about them). Counts nothing."""
        prompt = self._prompt(prompt)
        scope = self._scope(scope)
        if not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k={k} is out of range", f"ask for 1 to {MAX_K} matches")
        await self.start()
        vector = (await self.embedder.embed([prompt]))[0]
        return await self._search(vector, scope=scope, k=k, max_distance=None, with_vectors=True)

    async def verdicts(
        self,
        prompt: str,
        matches: Sequence[Match],
        *,
        scope: str | None = None,
        threshold: float | None = None,
        target_precision: float | None = None,
    ) -> list[Candidate]:
        """Each of ``matches`` (from ``nearest``) judged by ``check``'s own rule at the distance cap
        ``threshold`` and ``target_precision`` (the policy's when ``None``): for the query lab, whose marks
        follow the operator's cap. An exact repeat of ``prompt`` is served, as ``check`` serves it.
        Counts nothing."""
        prompt = self._prompt(prompt)
        scope = self._scope(scope)
        cap = self._threshold(threshold)
        if target_precision is not None and not 0.0 < target_precision <= 1.0:
            raise InvalidInputError(
                f"target precision {target_precision} is out of range", "use a number above 0 and at most 1"
            )
        await self.start()
        exact_key = entry_key(scope, prompt)
        others = [m for m in matches if m.entry.key != exact_key]
        judged = {
            id(c.match): c for c in await self._judge(prompt, scope, None, others, cap, target_precision)
        }
        out: list[Candidate] = []
        for match in matches:
            if match.entry.key == exact_key:
                for other in judged.values():
                    if other.served:
                        other.served = False
                        other.reason = other.reason.replace("served: ", "passed: ", 1)
                out.append(Candidate(match, None, True, True, EXACT_REASON))
            else:
                out.append(judged[id(match)])
        return out

    async def feedback(
        self, prompt: str, key: str, correct: bool, scope: str | None = None
    ) -> FeedbackResult:
        """Record that entry ``key``'s answer was wrong (or right) for ``prompt`` in ``scope``.

        Wrong: the entry is never served for this prompt again (until reported right), its own cut
        tightens (``entry_target``), and it is evicted once ``should_evict`` says so. Right: the prompt is
        served from it again. ``NotFoundError`` for an unknown key.
        """
        prompt = self._prompt(prompt)
        scope = self._scope(scope)
        if not isinstance(correct, bool):
            raise InvalidInputError("correct must be true or false", "send correct: true or false")
        if not isinstance(key, str) or not key.strip():
            raise InvalidInputError("key is empty", "send the key of the entry that was served")
        await self.open_store()
        recorded = await self.vector_store.record_feedback(key, query_key(scope, prompt), correct)
        evicted = False
        if not correct and should_evict(recorded):
            evicted = await self.vector_store.delete(key)
        return FeedbackResult(recorded.wrong, recorded.right, evicted)

    def _entry(self, request: StoreRequest, now: float) -> CacheEntry:
        prompt = self._prompt(request.prompt)
        response = self._prompt(request.response, "response")
        scope = self._scope(request.scope)
        ttl = self._ttl(request.ttl)
        metadata = _metadata(request.metadata or {})
        return CacheEntry(
            key=entry_key(scope, prompt),
            scope=scope,
            prompt=prompt,
            response=response,
            metadata=metadata,
            created_at=now,
            expires_at=now + ttl if ttl > 0 else None,
        )

    async def store(
        self,
        prompt: str,
        response: str,
        scope: str | None = None,
        metadata: dict[str, Any] | None = None,
        ttl: int | None = None,
    ) -> CacheEntry:
        entries = await self.store_many(
            [StoreRequest(prompt, response, DEFAULT_SCOPE if scope is None else scope, metadata, ttl)]
        )
        return entries[0]

    async def store_many(self, requests: Sequence[StoreRequest]) -> list[CacheEntry]:
        """Validate every request first (all or nothing), then embed them in one batch and upsert."""
        if not requests:
            return []
        now = time.time()
        entries = [self._entry(request, now) for request in requests]
        # The same prompt twice in one batch is one entry: the last response wins, as sequential stores would.
        unique: dict[str, CacheEntry] = {}
        for entry in entries:
            unique[entry.key] = entry
        await self.start()
        batch = list(unique.values())
        vectors = await self.embedder.embed([entry.prompt for entry in batch])
        await self._upsert(list(zip(batch, vectors, strict=True)))
        return entries

    # -- backup and restore (engine/backup/) ------------------------------------------------------------

    async def iter_entries(
        self, batch: int = 500, scope: str | None = None
    ) -> AsyncIterator[list[CacheEntry]]:
        """Every live entry exactly once, ``batch`` at a time, for exports and migrations. Counts nothing,
        needs no embedder.

        The store walks a cursor rather than offsets (``VectorStore.iter_entries``): Redis caps offsets at
        MAXSEARCHRESULTS, and an entry expiring or a new one arriving meanwhile does not shift a live entry
        past the cursor unseen.
        """
        if not 2 <= batch <= 1000:
            raise InvalidInputError(f"batch={batch} is out of range", "use 2 to 1000")
        await self.open_store()
        async for page in self.vector_store.iter_entries(batch=batch, scope=scope):
            if page:
                yield page

    def prepare_restore(self, entry: CacheEntry) -> CacheEntry:
        """Check an entry read from a backup against this cache's rules; return it under the key they
        derive from (scope, prompt), so a restored entry lands where ``store`` would have put it."""
        prompt = self._prompt(entry.prompt)
        response = self._prompt(entry.response, "response")
        scope = self._scope(entry.scope)
        metadata = _metadata(entry.metadata)
        for name, value in (("created_at", entry.created_at), ("expires_at", entry.expires_at)):
            if value is None and name == "expires_at":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidInputError(f"{name} {value!r} is not a time", f"{name} must be Unix seconds")
            if not 0 <= value <= MAX_TIMESTAMP:
                raise InvalidInputError(
                    f"{name} {value!r} is out of range",
                    f"{name} must be Unix seconds from 0 to {MAX_TIMESTAMP:.0f} (the end of year 9999)",
                )
        if isinstance(entry.hit_count, bool) or not isinstance(entry.hit_count, int) or entry.hit_count < 0:
            raise InvalidInputError(f"hit_count {entry.hit_count!r} is not allowed", "use a count, 0 or more")
        return replace(
            entry,
            key=entry_key(scope, prompt),
            scope=scope,
            prompt=prompt,
            response=response,
            metadata=metadata,
            created_at=float(entry.created_at),
            expires_at=None if entry.expires_at is None else float(entry.expires_at),
        )

    async def restore_entries(
        self,
        entries: Sequence[CacheEntry],
        vectors: Sequence[np.ndarray | None] | None = None,
        *,
        now: float | None = None,
    ) -> RestoreResult:
        """Upsert entries exactly as given (created_at, expires_at, metadata, hit count), for imports.

        All or nothing: every entry is checked by ``prepare_restore`` before anything is written. Entries
        already expired at ``now`` are skipped and counted. A vector is reused when it has this embedder's
        dimension (the caller decides whether it came from the same identity); the others are embedded
        here, in one batch.
        """
        if vectors is not None and len(vectors) != len(entries):
            raise InvalidInputError(f"{len(entries)} entries but {len(vectors)} vectors")
        given = list(vectors) if vectors is not None else [None] * len(entries)
        prepared = [self.prepare_restore(entry) for entry in entries]
        now = time.time() if now is None else now
        result = RestoreResult()
        unique: dict[str, tuple[CacheEntry, np.ndarray | None]] = {}
        for entry, vector in zip(prepared, given, strict=True):
            if entry.is_expired(now):
                result.expired += 1
                continue
            unique[entry.key] = (entry, vector)
        if not unique:
            return result
        identity = await self.start()
        batch = list(unique.values())
        missing = [
            i
            for i, (_, vector) in enumerate(batch)
            if vector is None or np.asarray(vector).shape != (identity.dimension,)
        ]
        computed = await self.embedder.embed([batch[i][0].prompt for i in missing]) if missing else None
        fresh = dict(zip(missing, computed if computed is not None else [], strict=True))
        items: list[tuple[CacheEntry, np.ndarray]] = []
        for i, (entry, vector) in enumerate(batch):
            if i in fresh:
                items.append((entry, fresh[i]))
            else:
                items.append((entry, normalize_rows(np.asarray(vector, dtype=np.float32))[0]))
        await self._upsert(items)
        result.written = len(items)
        result.embedded = len(missing)
        return result

    async def get(self, key: str) -> CacheEntry | None:
        await self.open_store()
        return await self.vector_store.get(key)

    async def delete(self, key: str) -> bool:
        await self.open_store()
        return await self.vector_store.delete(key)

    async def clear(self) -> int:
        await self.open_store()
        return await self.vector_store.clear()

    async def list_entries(
        self, offset: int = 0, limit: int = 50, scope: str | None = None, contains: str | None = None
    ) -> EntryPage:
        if offset < 0 or not 1 <= limit <= 1000:
            raise InvalidInputError("offset must be 0 or more and limit 1 to 1000")
        if offset + limit > MAX_LISTING:
            raise InvalidInputError(
                f"offset {offset} + limit {limit} is past the deepest page, {MAX_LISTING} entries",
                "narrow the listing with scope or contains, or export the cache (`semcache-tui backup`)",
            )
        if scope is not None:
            scope = self._scope(scope)
        if contains is not None:
            valid_text(contains, "contains")
        await self.open_store()
        return await self.vector_store.list_entries(
            offset=offset, limit=limit, scope=scope, contains=contains
        )

    async def stats(self) -> CacheStats:
        await self.open_store()
        counters = await self.vector_store.counters()
        self._evictions.observe(counters.evictions)
        return CacheStats(
            entries=await self.vector_store.count(),
            hits=counters.hits,
            misses=counters.misses,
            latency_p50_ms=percentile(counters.recent_latencies_ms, 50),
            latency_p95_ms=percentile(counters.recent_latencies_ms, 95),
            feedback_wrong=counters.feedback_wrong,
            feedback_right=counters.feedback_right,
            evictions=counters.evictions,
        )

    async def index_info(self) -> IndexInfo:
        await self.open_store()
        info = await self.vector_store.info()
        self._evictions.observe(info.evictions)
        info.evictions_per_minute = self._evictions.per_minute()
        marker = (await self.vector_store.notes()).get(IMPORT_NOTE)
        if marker is not None:  # a backup import is running, or was killed half-way
            info.extra["import_incomplete"] = marker
        return info

    async def purge_expired(self) -> int:
        await self.open_store()
        return await self.vector_store.purge_expired()

    async def health(self) -> HealthReport:
        """Store and embedder health; never computes an embedding."""
        try:
            await self.open_store()
            store_health = await self.vector_store.health()
        except Exception as exc:  # a health report describes failures instead of raising them
            store_health = ComponentHealth("store", "down", str(exc))
        if store_health.status != "down":
            with contextlib.suppress(Exception):  # the marker is a fact; reading it never fails health
                marker = (await self.vector_store.notes()).get(IMPORT_NOTE)
                if marker is not None:
                    store_health.facts["import_incomplete"] = marker
        embedder_health = await self.embedder.health()
        recorded = self.vector_store.recorded_identity
        configured = self.embedder.identity
        if recorded is not None and configured is not None and recorded != configured:
            store_health = ComponentHealth(
                "store",
                "down",
                f"index holds {recorded.describe()}, configured {configured.describe()}",
                store_health.latency_ms,
                store_health.facts,
            )
        return HealthReport([store_health, embedder_health])
