"""``RemoteCache``: the ``CacheService`` of a running ``semcache-tui --serve``, over HTTP.

The control panel's ``--server URL`` mode uses it, so the panel works the same attached to a server as to
a cache opened in process. Errors come back as the engine's own: the server's JSON error code picks the
class (``invalid_input`` -> ``InvalidInputError``, ``backend_unavailable`` -> ``BackendUnavailableError``...),
401 becomes ``AuthenticationError`` ("API key missing or wrong"), and a server that cannot be reached is a
``BackendUnavailableError`` naming its URL.

An ``https://`` server is verified against the system's CAs, or ``ca_file`` (a private CA); a certificate
that does not verify is an error saying so and naming the option, never a silent fallback to no checking.
``client_cert`` (certificate, key) answers a server that requires client certificates (mutual TLS).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cache import CachePolicy, StoreRequest, judge_without_score
from engine.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConfigError,
    EmbedderError,
    IndexMismatchError,
    IndexMissingError,
    InvalidInputError,
    NotFoundError,
    ReadOnlyError,
    SemcacheError,
)
from engine.keys import DEFAULT_SCOPE
from engine.models import (
    CacheEntry,
    CacheStats,
    Candidate,
    CheckResult,
    ComponentHealth,
    EmbedderIdentity,
    EntryPage,
    FeedbackResult,
    HealthReport,
    IndexInfo,
    Match,
)
from engine.redact import redact_url
from engine.verification.model import Verifier

if TYPE_CHECKING:
    # httpx imports its command line, and with it rich, when imported: keep it off the headless path.
    import httpx

#: The engine's error class for each code the server answers with (``SemcacheError.to_dict``).
_ERRORS_BY_CODE: dict[str, type[SemcacheError]] = {
    cls.code: cls
    for cls in (
        InvalidInputError,
        NotFoundError,
        BackendUnavailableError,
        IndexMismatchError,
        IndexMissingError,
        EmbedderError,
        ReadOnlyError,
        AuthenticationError,
    )
}


class RemoteCache:
    """A ``CacheService`` backed by a semcache server at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        start_timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
        ca_file: str | Path | None = None,
        client_cert: tuple[str | Path, str | Path] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.safe_url = redact_url(self.base_url)
        self.policy = CachePolicy()
        self.start_timeout = start_timeout
        self._identity: EmbedderIdentity | None = None
        self._index_name: str | None = None
        self._store_kind: str | None = None
        self._ready = False
        self._verifier: Verifier | None = None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client_cert = self.base_url.startswith("https://") and client_cert is not None
        self._https = self.base_url.startswith("https://")
        import httpx

        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=_tls_context(ca_file, client_cert),
        )

    # -- plumbing ----------------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise BackendUnavailableError(
                f"the semcache server at {self.safe_url} did not answer in time",
                "check that it is running and not overloaded",
            ) from None
        except httpx.TransportError as exc:
            tls = _tls_failure(exc, self.safe_url) if self._https else None
            if tls is None and self._https and not self._client_cert and _hung_up(exc):
                # TLS 1.3 reports a refused client certificate only when the client next reads: the server
                # just hangs up. The most likely cause is named, with a "may".
                tls = BackendUnavailableError(
                    f"the semcache server at {self.safe_url} closed the connection after the TLS handshake: "
                    "it may require a client certificate (mutual TLS)",
                    "give one with --client-cert and --client-key (SEMCACHE_CLIENT_CERT, SEMCACHE_CLIENT_KEY)",
                )
            if tls is not None:
                raise tls from None
            raise BackendUnavailableError(
                f"cannot reach the semcache server at {self.safe_url} ({type(exc).__name__})",
                "start it with `semcache-tui --serve`, or check the --server URL",
            ) from None

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        if response.status_code >= 400:
            raise self._error(response)
        return response.json()

    def _error(self, response: httpx.Response) -> SemcacheError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        message = str(body.get("message") or f"HTTP {response.status_code} from {self.safe_url}")
        hint = body.get("hint")
        if response.status_code == 401:
            return AuthenticationError(
                f"API key missing or wrong for the semcache server at {self.safe_url}",
                "pass the server's key with --api-key or SEMCACHE_API_KEY",
            )
        cls = _ERRORS_BY_CODE.get(str(body.get("error", "")))
        if cls is None:
            cls = {404: NotFoundError, 413: InvalidInputError, 422: InvalidInputError}.get(
                response.status_code,
                BackendUnavailableError if response.status_code >= 500 else SemcacheError,
            )
        error = cls(message, hint)
        error.status = response.status_code
        return error

    # -- life cycle --------------------------------------------------------------------------------------

    async def open_store(self) -> EmbedderIdentity | None:
        """Read the server's policy and embedder identity (no waiting for the model)."""
        body = await self._json("GET", "/cache/stats")
        self._adopt(body)
        return self._identity

    async def start(self) -> EmbedderIdentity:
        """Wait until the server is ready (its model loaded, its store open), then read its policy."""
        if self._ready and self._identity is not None:
            return self._identity
        deadline = time.monotonic() + self.start_timeout
        while True:
            response = await self._request("GET", "/health/ready")
            if response.status_code == 200:
                break
            body = (
                response.json()
                if response.headers.get("content-type", "").startswith("application/json")
                else {}
            )
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"the semcache server at {self.safe_url} is not ready: {body.get('detail', response.status_code)}",
                    "see the server's log",
                )
            await asyncio.sleep(0.25)
        await self.open_store()
        if self._identity is None:
            raise EmbedderError(f"the semcache server at {self.safe_url} reports no embedder")
        self._ready = True
        return self._identity

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def identity(self) -> EmbedderIdentity | None:
        return self._identity

    @property
    def index_name(self) -> str | None:
        return self._index_name

    @property
    def store_kind(self) -> str | None:
        return self._store_kind

    async def close(self) -> None:
        await self._http.aclose()

    def _adopt(self, stats: dict[str, Any]) -> None:
        self.policy = CachePolicy(
            threshold=float(stats["threshold"]),
            ttl=int(stats["ttl_seconds"]),
            verify_candidates=bool(stats.get("verify_candidates", True)),
            max_prompt_chars=int(stats.get("max_prompt_chars", self.policy.max_prompt_chars)),
            target_precision=stats.get("target_precision"),
        )
        embedder = stats.get("embedder")
        self._identity = EmbedderIdentity.from_dict(embedder) if embedder else None
        self._index_name = stats.get("index_name")
        self._store_kind = stats.get("store")

    # -- operations --------------------------------------------------------------------------------------

    async def check(
        self, prompt: str, scope: str | None = None, threshold: float | None = None, k: int = 5
    ) -> CheckResult:
        payload = {"prompt": prompt, "scope": scope, "threshold": threshold, "k": k, "explain": True}
        body = await self._json("POST", "/cache/check", json=payload)
        matches = {m["key"]: _match(m) for m in [*body["matches"], *body.get("rejected", [])]}
        candidates = [_candidate(c, matches) for c in body.get("explain") or []]
        return CheckResult(
            prompt=body["prompt"],
            scope=body["scope"],
            threshold=float(body["threshold"]),
            is_hit=bool(body["is_hit"]),
            matches=[_match(m) for m in body["matches"]],
            lookup_time_ms=float(body["lookup_time_ms"]),
            exact=bool(body.get("exact", False)),
            rejected=[(_match(m), str(m["reason"])) for m in body.get("rejected", [])],
            candidates=candidates,
        )

    async def nearest(self, prompt: str, scope: str | None = None, k: int = 10) -> list[Match]:
        body = await self._json("POST", "/cache/search", json={"prompt": prompt, "scope": scope, "k": k})
        return [_match(m) for m in body["matches"]]

    def load_verifier(self) -> Verifier:
        """The shipped verifier, standing for the server's (see ``CacheService.load_verifier``)."""
        if self._verifier is None:
            self._verifier = Verifier.load()
        return self._verifier

    async def verdicts(
        self,
        prompt: str,
        matches: Sequence[Match],
        *,
        scope: str | None = None,
        threshold: float | None = None,
        target_precision: float | None = None,
    ) -> list[Candidate]:
        """Judged by the server (``/cache/search`` with ``verdicts``), which searches again: a match no
        longer among its nearest (deleted or expired meanwhile) is reported refused, saying so."""
        payload = {
            "prompt": prompt,
            "scope": scope,
            "k": max(1, min(100, len(matches))),
            "verdicts": True,
            "threshold": threshold,
            "target_precision": target_precision,
        }
        body = await self._json("POST", "/cache/search", json=payload)
        by_key = {m.entry.key: m for m in matches}
        judged = {c.match.entry.key: c for c in (_candidate(v, by_key) for v in body.get("verdicts") or [])}
        return [
            judged.get(m.entry.key) or Candidate(m, None, False, False, "no longer among the nearest entries")
            for m in matches
        ]

    def judge(self, prompt: str, match: Match, threshold: float) -> str | None:
        # The very rule the server applies, under ``self.policy``, which mirrors the server's.
        return judge_without_score(self.policy, prompt, match, threshold)

    async def feedback(
        self, prompt: str, key: str, correct: bool, scope: str | None = None
    ) -> FeedbackResult:
        payload = {"prompt": prompt, "key": key, "correct": correct, "scope": scope}
        body = await self._json("POST", "/cache/feedback", json=payload)
        return FeedbackResult(int(body["wrong"]), int(body["right"]), bool(body["evicted"]))

    async def store(
        self,
        prompt: str,
        response: str,
        scope: str | None = None,
        metadata: dict[str, Any] | None = None,
        ttl: int | None = None,
    ) -> CacheEntry:
        payload = {"prompt": prompt, "response": response, "scope": scope, "metadata": metadata, "ttl": ttl}
        body = await self._json("POST", "/cache/store", json=payload)
        entry = await self.get(body["key"])
        if entry is None:  # expired or deleted in between; describe what was stored
            now = time.time()
            scope = DEFAULT_SCOPE if scope is None else scope
            entry = CacheEntry(body["key"], scope, prompt, response, dict(metadata or {}), now)
        return entry

    async def store_many(self, requests: Sequence[StoreRequest]) -> list[CacheEntry]:
        """Stored all or nothing by the server through ``/cache/store/batch``, embedded in one batch there.

        The entries are described from the requests and the keys the server derived, with this client's
        clock and the server's TTL, rather than read back one request per entry.
        """
        if not requests:
            return []
        items = [
            {
                "prompt": r.prompt,
                "response": r.response,
                "scope": r.scope,
                "metadata": r.metadata,
                "ttl": r.ttl,
            }
            for r in requests
        ]
        body = await self._json("POST", "/cache/store/batch", json={"items": items})
        now = time.time()
        entries = []
        for key, request in zip(body["keys"], requests, strict=True):
            ttl = self.policy.ttl if request.ttl is None else request.ttl
            expires_at = now + ttl if ttl > 0 else None
            metadata = dict(request.metadata or {})
            entries.append(
                CacheEntry(key, request.scope, request.prompt, request.response, metadata, now, expires_at)
            )
        return entries

    async def purge_expired(self) -> int:
        """Nothing to do from here: the server purges expired entries itself (SEMCACHE_PURGE_INTERVAL)."""
        return 0

    async def get(self, key: str) -> CacheEntry | None:
        response = await self._request("GET", f"/cache/entries/{key}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise self._error(response)
        return _entry(response.json())

    async def delete(self, key: str) -> bool:
        response = await self._request("DELETE", f"/cache/entries/{key}")
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise self._error(response)
        return True

    async def clear(self) -> int:
        body = await self._json("DELETE", "/cache/clear")
        return int(body["deleted_count"])

    async def list_entries(
        self, offset: int = 0, limit: int = 50, scope: str | None = None, contains: str | None = None
    ) -> EntryPage:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if scope is not None:
            params["scope"] = scope
        if contains is not None:
            params["contains"] = contains
        body = await self._json("GET", "/cache/entries", params=params)
        return EntryPage(
            entries=[_entry(e) for e in body["entries"]],
            total=int(body["total"]),
            offset=int(body["offset"]),
            limit=int(body["limit"]),
        )

    async def stats(self) -> CacheStats:
        body = await self._json("GET", "/cache/stats")
        self._adopt(body)
        return CacheStats(
            entries=int(body["total_entries"]),
            hits=int(body["hits"]),
            misses=int(body["misses"]),
            latency_p50_ms=body.get("latency_p50_ms"),
            latency_p95_ms=body.get("latency_p95_ms"),
            feedback_wrong=int(body.get("feedback_wrong", 0)),
            feedback_right=int(body.get("feedback_right", 0)),
            evictions=int(body.get("evictions", 0)),
        )

    async def health(self) -> HealthReport:
        """The server's own report (503 included); an unreachable server is reported, not raised."""
        try:
            response = await self._request("GET", "/health")
            body = response.json()
            components = [
                ComponentHealth(
                    name=str(c["name"]),
                    status=str(c["status"]),
                    detail=str(c.get("detail", "")),
                    latency_ms=c.get("latency_ms"),
                    facts=dict(c.get("facts") or {}),
                )
                for c in body["components"]
            ]
        except SemcacheError as exc:
            return HealthReport([ComponentHealth("server", "down", str(exc), facts={"url": self.safe_url})])
        except (ValueError, KeyError, TypeError):
            detail = f"HTTP {response.status_code} from /health without a health report"
            return HealthReport([ComponentHealth("server", "down", detail, facts={"url": self.safe_url})])
        return HealthReport(
            [ComponentHealth("server", "ok", "reachable", facts={"url": self.safe_url}), *components]
        )

    async def index_info(self) -> IndexInfo:
        body = await self._json("GET", "/cache/index")
        identity = body.get("identity")
        return IndexInfo(
            name=body["name"],
            store=body["store"],
            documents=int(body["documents"]),
            identity=EmbedderIdentity.from_dict(identity) if identity else None,
            algorithm=body["algorithm"],
            metric=body["metric"],
            parameters=dict(body.get("parameters") or {}),
            fields=list(body.get("fields") or []),
            memory_bytes=body.get("memory_bytes"),
            indexing_failures=int(body.get("indexing_failures", 0)),
            extra=dict(body.get("extra") or {}),
            # A server from before capacities sends none of these: no limit, no evictions.
            max_entries=body.get("max_entries"),
            max_entries_per_scope=body.get("max_entries_per_scope"),
            eviction_policy=body.get("eviction_policy"),
            evictions=int(body.get("evictions") or 0),
            evictions_per_minute=body.get("evictions_per_minute"),
        )


def _tls_context(
    ca_file: str | Path | None, client_cert: tuple[str | Path, str | Path] | None
) -> ssl.SSLContext:
    """Verification always on: the system's CAs, or ``ca_file``'s; a client certificate when given."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "SEMCACHE_CA_FILE",
            ca_file,
            f"cannot be used ({_reason(exc)}): give a PEM file of the server's CA",
        ) from None
    if client_cert is not None:
        cert, key = client_cert
        try:
            context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                "client certificate", cert, f"cannot be used with key {key} ({_reason(exc)})"
            ) from None
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _hung_up(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError)


def _tls_failure(exc: BaseException, url: str) -> SemcacheError | None:
    """The one-line error for a TLS handshake that failed (``None`` for any other transport failure)."""
    cause: BaseException | None = exc
    text = ""
    while cause is not None:
        text += f" {cause}"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return BackendUnavailableError(
                f"the semcache server at {url} presented a certificate this client does not trust "
                f"({cause.verify_message or cause.reason})",
                "pass the CA that signed it with --ca-file (SEMCACHE_CA_FILE); verification is never turned off",
            )
        cause = cause.__cause__ or cause.__context__
    upper = text.upper()
    if "CERTIFICATE_REQUIRED" in upper or "ALERT_BAD_CERTIFICATE" in upper or "UNKNOWN_CA" in upper:
        return BackendUnavailableError(
            f"the semcache server at {url} refused this client's certificate or requires one",
            "give one its CA signed with --client-cert and --client-key (mutual TLS)",
        )
    if "WRONG_VERSION_NUMBER" in upper or "RECORD_LAYER_FAILURE" in upper:
        return BackendUnavailableError(
            f"the semcache server at {url} does not speak TLS",
            "use an http:// URL for it, or start it with --ssl-certfile and --ssl-keyfile",
        )
    return None


def _entry(body: dict[str, Any]) -> CacheEntry:
    return CacheEntry(
        key=body["key"],
        scope=body["scope"],
        prompt=body["prompt"],
        response=body["response"],
        metadata=dict(body.get("metadata") or {}),
        created_at=float(body.get("created_at", body.get("cached_at", 0.0))),
        expires_at=body.get("expires_at"),
        hit_count=int(body.get("hit_count", 0)),
    )


def _match(body: dict[str, Any]) -> Match:
    return Match(_entry(body), float(body["vector_distance"]))


def _candidate(body: dict[str, Any], matches: dict[str, Match]) -> Candidate:
    """An ``explain`` or ``verdicts`` item; its match is the one of the same key in ``matches`` if any."""
    key = str(body["key"])
    distance = float(body["vector_distance"])
    match = matches.get(key) or Match(CacheEntry(key, "", str(body["prompt"]), ""), distance)
    score = body.get("score")
    cut = body.get("cut")
    return Candidate(
        match=match,
        score=None if score is None else float(score),
        passed=bool(body.get("passed", body["served"])),
        served=bool(body["served"]),
        reason=str(body["reason"]),
        cut=None if cut is None else float(cut),
    )
