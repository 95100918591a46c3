"""Embeddings from an Ollama server, through the official ``ollama`` client (async).

Many texts go in one ``POST /api/embed``; ``EMBEDDING_OUTPUT_DIMENSION`` is sent as the API's ``dimensions``.
The dimension is learned from the server by one probe embedding in ``load`` (never from a table of model
names), so any embedding model an operator pulls works, and a model whose vectors change length is caught.

Every call has a deadline. Connection failures and 5xx answers are retried with backoff, because a
restarting server or a model being loaded answers them for a moment; 4xx answers are the caller's
mistake (a model not pulled, a dimension refused) and retrying would only delay the one-line error.

httpx (under the ollama client) imports its command line, and with it rich, when rich is installed; so
both are imported where the embedder first talks to a server, never when this module is imported.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from engine.embeddings.base import normalize_rows
from engine.errors import ConfigError, EmbedderError
from engine.models import ComponentHealth, EmbedderIdentity
from engine.redact import redact_text, redact_url

if TYPE_CHECKING:
    import httpx

PROVIDER = "ollama"
PROBE_TEXT = "semcache dimension probe"
EMBEDDING_MODELS_HINT = "embeddinggemma, nomic-embed-text or all-minilm"

T = TypeVar("T")


def _split_credentials(base_url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without ``user:password@`` and the basic auth it carried (the ollama client drops it)."""
    parts = urlsplit(base_url)
    if parts.username is None and parts.password is None:
        return base_url.rstrip("/"), None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)).rstrip("/")
    return bare, (parts.username or "", parts.password or "")


def _tagged(name: str) -> str:
    """Ollama names a model without a tag ``:latest``; compare names in that form."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _first_line(text: str) -> str:
    line = (text or "").strip().splitlines()
    return redact_text(line[0].strip()) if line else ""


class _Transient(Exception):
    """A failure worth another attempt; carries the error to raise once attempts run out."""

    def __init__(self, error: EmbedderError | ConfigError) -> None:
        super().__init__(str(error))
        self.error = error


class OllamaEmbedder:
    provider = PROVIDER

    def __init__(
        self,
        base_url: str = "http://localhost:11434",
        model: str = "embeddinggemma",
        output_dimension: int | None = None,
        timeout: float = 30.0,
        *,
        retries: int = 2,
        backoff: float = 0.25,
        health_ttl: float = 5.0,
        keep_alive: str | float | None = None,
    ) -> None:
        self.model = model
        self.base_url, self._auth = _split_credentials(base_url)
        #: The URL as it may appear in messages and health facts: any password replaced by ``***``.
        self.safe_url = redact_url(base_url.rstrip("/"))
        self._output_dimension = output_dimension
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.health_ttl = float(health_ttl)
        self._keep_alive = keep_alive
        self._identity: EmbedderIdentity | None = None
        self._load_error: Exception | None = None
        self._load_lock: asyncio.Lock | None = None
        # httpx pools are bound to the event loop that first used them; one set of clients per loop.
        self._clients: tuple[asyncio.AbstractEventLoop, Any, httpx.AsyncClient] | None = None
        self._health: tuple[float, ComponentHealth] | None = None
        self.last_probe_ms: float | None = None
        self.last_embed_ms: float | None = None
        self.server_version: str | None = None

    # -- the protocol ------------------------------------------------------------------------------------

    @property
    def identity(self) -> EmbedderIdentity | None:
        return self._identity

    @property
    def loaded(self) -> bool:
        return self._identity is not None

    async def load(self) -> EmbedderIdentity:
        if self._identity is not None:
            return self._identity
        if self._load_lock is None:
            self._load_lock = asyncio.Lock()
        async with self._load_lock:
            if self._identity is not None:
                return self._identity
            try:
                self._identity = await self._probe()
            except (ConfigError, EmbedderError) as exc:
                self._load_error = exc
                raise
            self._load_error = None
            self._health = None
            return self._identity

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            raise ValueError("embed() needs at least one text")
        identity = await self.load()
        started = time.perf_counter()
        rows = await self._embed_call(list(texts))
        self.last_embed_ms = (time.perf_counter() - started) * 1000.0
        if len(rows) != len(texts):
            raise EmbedderError(
                f"Ollama returned {len(rows)} embeddings for {len(texts)} texts ({self._where()})"
            )
        lengths = {len(row) for row in rows}
        if lengths != {identity.dimension}:
            found = ", ".join(str(n) for n in sorted(lengths))
            raise EmbedderError(
                f"Ollama model {self.model} now returns {found} dimensions, the index holds {identity.dimension}",
                "the model changed on the server; restart semcache, or run `semcache-tui migrate plan`",
            )
        return normalize_rows(np.asarray(rows, dtype=np.float32))

    async def health(self) -> ComponentHealth:
        """Server version and whether the model is pulled; cached for ``health_ttl`` seconds."""
        now = time.monotonic()
        if self._health is not None and now - self._health[0] < self.health_ttl:
            return self._health[1]
        report = await self._check_health()
        self._health = (time.monotonic(), report)
        return report

    async def close(self) -> None:
        clients, self._clients = self._clients, None
        if clients is None:
            return
        loop, ollama_client, http = clients
        if loop is not asyncio.get_running_loop() or loop.is_closed():
            return  # its connections died with their loop; closing them from here would fail
        await ollama_client.close()
        await http.aclose()

    # -- probing and embedding ---------------------------------------------------------------------------

    async def _probe(self) -> EmbedderIdentity:
        started = time.perf_counter()
        rows = await self._embed_call([PROBE_TEXT])
        self.last_probe_ms = (time.perf_counter() - started) * 1000.0
        if not rows or not rows[0]:
            raise self._cannot_embed()
        dimension = len(rows[0])
        wanted = self._output_dimension
        if wanted is not None and dimension != wanted:
            if dimension < wanted:
                allowed = f"must be a whole number from 1 to {dimension}, the dimension of Ollama model {self.model}"
            else:
                allowed = (
                    f"Ollama at {self.safe_url} returned {dimension} dimensions for model {self.model} instead; "
                    "upgrade Ollama (0.11 or later honours `dimensions`) or unset it"
                )
            raise ConfigError("EMBEDDING_OUTPUT_DIMENSION", wanted, allowed)
        return EmbedderIdentity(provider=PROVIDER, model=self.model, dimension=dimension)

    async def _embed_call(self, texts: list[str]) -> list[Sequence[float]]:
        client, _ = self._client()

        async def call() -> list[Sequence[float]]:
            response = await client.embed(
                model=self.model, input=texts, dimensions=self._output_dimension, keep_alive=self._keep_alive
            )
            return list(response.embeddings)

        return await self._with_retries("an embed request", call)

    async def _with_retries(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await self._once(what, call)
            except _Transient as transient:
                if attempt >= self.retries:
                    raise transient.error from None
                delay = self.backoff * (2**attempt) * (1.0 + random.random() / 4)
                attempt += 1
                await asyncio.sleep(delay)

    async def _once(self, what: str, call: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """One attempt, with its deadline; every failure comes out as an ``EmbedderError``/``ConfigError``
        (or ``_Transient`` wrapping one, when another attempt may succeed)."""
        import httpx
        from ollama import ResponseError

        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await call()
        except (TimeoutError, httpx.TimeoutException) as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise _Transient(self._unreachable()) from None
            raise EmbedderError(
                f"Ollama at {self.safe_url} did not answer {what} within {limit:g}s (model {self.model})",
                "check the server's load, or raise SEMCACHE_EMBED_TIMEOUT: a model's first load can be slow",
            ) from None
        except (ConnectionError, httpx.TransportError):
            # The ollama client turns a refused connection into ConnectionError; a reset or a server that
            # dies mid-answer comes through as httpx's own transport errors.
            raise _Transient(self._unreachable()) from None
        except ResponseError as exc:
            error = self._response_error(exc, what)
            if exc.status_code >= 500 and exc.status_code != 501 and not _cannot_embed_text(exc.error):
                raise _Transient(error) from None
            raise error from None

    def _response_error(self, exc: Any, what: str) -> EmbedderError | ConfigError:
        status = int(exc.status_code)
        text = _first_line(str(exc.error))
        lowered = text.lower()
        if _cannot_embed_text(text):
            return self._cannot_embed()
        if status == 404 and "model" in lowered and "not found" in lowered:
            return EmbedderError(
                f"Ollama model {self.model} is not pulled on {self.safe_url}",
                f"run `ollama pull {self.model}`",
            )
        if status == 404:
            return EmbedderError(
                f"Ollama API not found at {self.safe_url} ({text or 'HTTP 404'})",
                "set OLLAMA_BASE_URL to the server's root, e.g. http://localhost:11434 (no /api suffix)",
            )
        if status in (401, 403):
            return EmbedderError(
                f"Ollama at {self.safe_url} refused {what}: HTTP {status}",
                "check the credentials in OLLAMA_BASE_URL (or OLLAMA_API_KEY) for the proxy in front of Ollama",
            )
        if 400 <= status < 500 and self._output_dimension is not None and "dimension" in lowered:
            return ConfigError(
                "EMBEDDING_OUTPUT_DIMENSION",
                self._output_dimension,
                f"refused by Ollama model {self.model} ({text}); choose one it supports or unset it",
            )
        if status >= 500:
            return EmbedderError(
                f"Ollama at {self.safe_url} failed {what} for model {self.model}: {text or 'no detail'} "
                f"(HTTP {status})",
                "see the output of `ollama serve` or `journalctl -u ollama` for the cause",
            )
        return EmbedderError(
            f"Ollama refused {what} for model {self.model}: {text or 'no detail'} (HTTP {status})"
        )

    def _unreachable(self) -> EmbedderError:
        return EmbedderError(
            f"Ollama is not reachable at {self.safe_url}", f"is `ollama serve` running at {self.safe_url}?"
        )

    def _cannot_embed(self) -> EmbedderError:
        return EmbedderError(
            f"Ollama model {self.model} cannot compute embeddings",
            f"set EMBEDDING_MODEL to an embedding model such as {EMBEDDING_MODELS_HINT}, and `ollama pull` it",
        )

    def _where(self) -> str:
        return f"model {self.model} at {self.safe_url}"

    # -- health ------------------------------------------------------------------------------------------

    async def _check_health(self) -> ComponentHealth:
        facts: dict[str, Any] = {"provider": PROVIDER, "model": self.model, "base_url": self.safe_url}
        if self.last_probe_ms is not None:
            facts["probe_ms"] = round(self.last_probe_ms, 1)
        if self.last_embed_ms is not None:
            facts["last_embed_ms"] = round(self.last_embed_ms, 1)
        if self._identity is not None:
            facts["dimension"] = self._identity.dimension
        import httpx

        client, http = self._client()
        # A health check answers quickly or says the server is slow; it never waits the full embed timeout.
        limit = min(self.timeout, 5.0)

        async def version() -> str:
            response = await http.get("/api/version")
            response.raise_for_status()
            return str(response.json().get("version", "unknown"))

        async def tags() -> list[str]:
            listing = await client.list()
            return [str(m.model) for m in listing.models if m.model]

        started = time.perf_counter()
        try:
            found_version, names = await asyncio.gather(
                self._once("a version request", version, limit), self._once("a model listing", tags, limit)
            )
        except _Transient as transient:
            return ComponentHealth("embedder", "down", str(transient.error), facts=facts)
        except httpx.HTTPStatusError as exc:
            detail = f"Ollama at {self.safe_url} answered /api/version with HTTP {exc.response.status_code}"
            return ComponentHealth("embedder", "down", detail, facts=facts)
        except (EmbedderError, ConfigError) as exc:
            return ComponentHealth("embedder", "down", str(exc), facts=facts)
        latency = (time.perf_counter() - started) * 1000.0
        self.server_version = found_version
        present = _tagged(self.model) in {_tagged(name) for name in names}
        facts.update(version=found_version, model_present=present, models=len(names))
        if not present:
            missing = EmbedderError(
                f"Ollama model {self.model} is not pulled on {self.safe_url}",
                f"run `ollama pull {self.model}`",
            )
            return ComponentHealth("embedder", "down", str(missing), latency_ms=latency, facts=facts)
        if self._load_error is not None:
            return ComponentHealth("embedder", "down", str(self._load_error), latency_ms=latency, facts=facts)
        if self._identity is None:
            return ComponentHealth(
                "embedder",
                "loading",
                f"Ollama {found_version} up, model not probed yet",
                latency_ms=latency,
                facts=facts,
            )
        return ComponentHealth("embedder", "ok", f"Ollama {found_version}", latency_ms=latency, facts=facts)

    # -- clients -----------------------------------------------------------------------------------------

    def _client(self) -> tuple[Any, httpx.AsyncClient]:
        loop = asyncio.get_running_loop()
        if self._clients is None or self._clients[0] is not loop:
            import httpx
            from ollama import AsyncClient

            # The client has no call for /api/version, so a plain httpx client shares its address and auth.
            ollama_client = AsyncClient(host=self.base_url, timeout=self.timeout, auth=self._auth)
            http = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout, auth=self._auth)
            self._clients = (loop, ollama_client, http)
        return self._clients[1], self._clients[2]


def _cannot_embed_text(text: str) -> bool:
    lowered = text.lower()
    return "does not support embed" in lowered or "not an embedding model" in lowered
