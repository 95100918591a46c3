"""Run a sentence-transformers model with ONNX Runtime: the same vectors for a fraction of the CPU.

Why: on a CPU, torch spends much of a short prompt's forward pass in Python code that holds the GIL, so two
batches cannot run side by side and the server's event loop waits behind them. ONNX Runtime runs the whole
graph in one native call that releases the GIL; micro-batches then run in parallel on every core. On the
2-core machine this was built on, all-MiniLM-L6-v2 embeds about 400 questions/s this way against about 280
with torch (``python -m bench.embedder``), with cosine 1.00000 between the two.

How: the first load of a model exports its transformer once (torch's TorchScript-based ONNX exporter),
checks ONNX Runtime's vectors against torch's on probe texts, and keeps ``model.onnx``, ``tokenizer.json``
and ``manifest.json`` in a cache folder named after a fingerprint of the model's files. Later loads of a
model on disk (the bundled one included) read that folder and never import torch, which also makes start-up
seconds faster.

Only plain pipelines are exported (Transformer, then mean, CLS or max pooling, then an optional Normalize)
and only for models without a query prompt; every other model stays on torch.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic import atomic_path
from engine.embeddings.base import MICRO_BATCH

log = logging.getLogger("semcache.embeddings")

#: Bump when the export or the manifest changes, so old cache folders are not reused.
FORMAT = 1
#: Every probe's ONNX vector must be at least this close (cosine) to torch's, or the export is discarded.
MIN_AGREEMENT = 0.9999
_POOLING_MODES = ("mean", "cls", "max")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_PROBES = (
    "What is the capital of France?",
    "how do i reset my password",
    "Ünïcödé, emoji 🙂 and punctuation!?",
    "x",
    # Longer than any model's max_seq_length, to check that truncation matches.
    " ".join(f"word{i}" for i in range(700)),
)


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a cache folder holds, enough to embed without loading the model through torch."""

    format: int
    model: str
    fingerprint: str
    dimension: int
    pooling: str
    max_seq_length: int
    pad_id: int
    pad_token: str
    inputs: tuple[str, ...]


def default_cache_dir() -> Path:
    """``SEMCACHE_MODEL_CACHE_DIR``, else ``models`` in the user's cache folder.

    Read here rather than only in Settings so every embedder (a migration's target too) shares one cache.
    """
    configured = os.environ.get("SEMCACHE_MODEL_CACHE_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("semcache", appauthor=False)) / "models"


def fingerprint(model_dir: Path) -> str:
    """A name for the model's files that changes when they change: path, size and mtime of each file.

    Reading 90 MB of weights to hash them would cost more than the export it saves.
    """
    digest = hashlib.sha256(f"{FORMAT}:{model_dir.resolve()}".encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(model_dir)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def cached_folder(cache_dir: Path, model_dir: Path) -> Path:
    return cache_dir / f"onnx-{fingerprint(model_dir)}"


def unsupported_reason(st: Any, prompt_name: str | None) -> str | None:
    """Why this loaded ``SentenceTransformer`` cannot run on ONNX Runtime here, or ``None`` if it can."""
    if prompt_name:
        return "the model uses a query prompt"
    names = [type(module).__name__ for module in st]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return f"its pipeline is {' -> '.join(names)}"
    pooling = getattr(st[1], "pooling_mode", None)
    if pooling not in _POOLING_MODES:
        return f"its pooling is {pooling!r}"
    if getattr(st[0], "auto_model", None) is None or getattr(st, "tokenizer", None) is None:
        return "it has no transformer and tokenizer to export"
    if not getattr(st.tokenizer, "is_fast", False):
        return "its tokenizer has no fast (Rust) version"
    return None


class OnnxEncoder:
    """Tokenize, run the exported transformer and pool, on a pool of threads (one per core)."""

    def __init__(self, folder: Path, manifest: Manifest) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.folder = folder
        self.manifest = manifest
        self.lanes = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
        options = onnxruntime.SessionOptions()
        # One thread per call and one call per core: parallel micro-batches beat one call spread over the
        # cores, whose threads spend a short prompt's pass waiting for each other.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(manifest.max_seq_length)
        tokenizer.enable_padding(pad_id=manifest.pad_id, pad_token=manifest.pad_token)
        self._tokenizer = tokenizer
        self._pool = concurrent.futures.ThreadPoolExecutor(self.lanes, thread_name_prefix="semcache-onnx")

    @classmethod
    def open(cls, folder: Path) -> OnnxEncoder | None:
        """The encoder cached in ``folder``, or ``None`` when there is none (or it is from another format)."""
        try:
            raw = json.loads((folder / "manifest.json").read_text())
            raw["inputs"] = tuple(raw["inputs"])
            manifest = Manifest(**raw)
        except (OSError, ValueError, TypeError, KeyError):
            return None
        if manifest.format != FORMAT or not (folder / "model.onnx").is_file():
            return None
        try:
            return cls(folder, manifest)
        except Exception as exc:  # a damaged file: export again rather than fail the load
            log.warning("ignoring the cached ONNX model in %s: %s", folder, exc)
            return None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Pooled, not normalised, full-dimension vectors in the order of ``texts``."""
        order = np.argsort([len(text) for text in texts], kind="stable")
        chunks = [order[i : i + MICRO_BATCH] for i in range(0, len(order), MICRO_BATCH)]
        out = np.empty((len(texts), self.manifest.dimension), dtype=np.float32)
        if len(chunks) == 1:
            out[chunks[0]] = self._run([texts[i] for i in chunks[0]])
            return out
        results = self._pool.map(lambda chunk: self._run([texts[i] for i in chunk]), chunks)
        for chunk, vectors in zip(chunks, results, strict=True):
            out[chunk] = vectors
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.manifest.inputs:
            feeds["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        (hidden,) = self._session.run(None, feeds)
        if self.manifest.pooling == "cls":
            return np.asarray(hidden[:, 0], dtype=np.float32)
        weights = mask[..., None].astype(np.float32)
        if self.manifest.pooling == "max":
            return np.where(weights > 0, hidden, np.float32(-1e9)).max(axis=1).astype(np.float32)
        return ((hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)).astype(np.float32)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def export(st: Any, model: str, model_dir: Path, cache_dir: Path) -> OnnxEncoder:
    """Export ``st`` (a supported ``SentenceTransformer``) into the cache, check it against torch, open it.

    Raises ``RuntimeError`` (with the reason) when the export fails or disagrees with torch; the caller then
    stays on torch. Nothing is left in the cache unless it passed the check.
    """
    import torch

    folder = cached_folder(cache_dir, model_dir)
    if folder.exists() and OnnxEncoder.open(folder) is None:
        shutil.rmtree(folder, ignore_errors=True)  # damaged or from an older format: replace it
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        transformer, tokenizer = st[0], st.tokenizer
        sample = tokenizer(["semcache", "a longer sample text"], padding=True, return_tensors="pt")
        inputs = tuple(name for name in _INPUTS if name in sample)
        auto_model = transformer.auto_model

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = auto_model

            def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
                return self.inner(**dict(zip(inputs, tensors, strict=True))).last_hidden_state

        axes = {name: {0: "batch", 1: "tokens"} for name in (*inputs, "last_hidden_state")}
        # The exporter warns about tracing details (and its own deprecation) on stderr, which is the
        # panel's terminal or the server's log; the agreement check below is what tells us it worked.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Wrapped().eval(),
                tuple(sample[name] for name in inputs),
                str(staging / "model.onnx"),
                input_names=list(inputs),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        dimension_of = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        manifest = Manifest(
            format=FORMAT,
            model=model,
            fingerprint=folder.name.removeprefix("onnx-"),
            dimension=int(dimension_of()),
            pooling=str(st[1].pooling_mode),
            max_seq_length=int(transformer.max_seq_length or tokenizer.model_max_length),
            pad_id=int(tokenizer.pad_token_id or 0),
            pad_token=str(tokenizer.pad_token or "[PAD]"),
            inputs=inputs,
        )
        with atomic_path(staging / "manifest.json") as partial:
            partial.write_text(json.dumps(asdict(manifest), indent=2))
        encoder = OnnxEncoder(staging, manifest)
        agreement = _agreement(st, encoder)
        encoder.close()
        if agreement < MIN_AGREEMENT:
            raise RuntimeError(f"ONNX Runtime's vectors differ from torch's (cosine {agreement:.5f})")
        try:
            staging.rename(folder)
        except OSError:  # another process cached the same model first; its copy passed the same check
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    opened = OnnxEncoder.open(folder)
    if opened is None:
        raise RuntimeError(f"the exported model in {folder} could not be opened")
    return opened


def _agreement(st: Any, encoder: OnnxEncoder) -> float:
    """The lowest cosine between torch's and ONNX Runtime's vector over the probe texts."""
    reference = np.asarray(st.encode(list(_PROBES), convert_to_numpy=True, show_progress_bar=False))
    candidate = encoder.encode(list(_PROBES))
    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    candidate = candidate / np.linalg.norm(candidate, axis=1, keepdims=True)
    return float((reference * candidate).sum(axis=1).min())
