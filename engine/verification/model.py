"""The learned verifier: a small MLP over pair features, run in numpy, with critical-token vetoes on top.

The cache asks one question per candidate: may its stored answer be served for this query? ``verdicts``
answers it for the few candidates the vector search returned, each with a score (the MLP's probability
that the two texts ask the same thing), a pass/fail at the operator's cut and a reason a person can read.

The weights live in ``data/verifier.npz`` beside a manifest (``data/verifier.json``) that names the file's
sha256; ``Verifier.load`` refuses a missing or damaged file with a ``VerifierError``, because the only
alternatives are serving every candidate (wrong answers) or none (a cache that never hits), and neither
should happen without an operator knowing. torch is only needed to train (``train.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import SemcacheError
from engine.verification.features import DIMENSION, UNIFORM_IDF, WIDTH, Idf, assess

if TYPE_CHECKING:
    from engine.verification.cascade import Cascade

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_WEIGHTS = DATA_DIR / "verifier.npz"
#: 2: adds the IDF table (``idf_words``/``idf_weights``/``idf_unknown``) and the IDF features.
FORMAT = 2
#: Up to this many rows, ``scores`` multiplies row by row (see there).
SMALL_BATCH = 16
_RETRAIN_HINT = "reinstall semcache or run `python -m engine.verification.train`"
#: Beside the MLP's weights: the cascade's settings and calibration (cascade.py).
CASCADE_FILE = "cascade.json"


class VerifierError(SemcacheError):
    """The verifier's weights are missing, damaged or from another format: no candidate can be judged."""

    status = 503
    code = "verifier_error"
    exit_code = 6


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one candidate may be served for a query, and why."""

    #: The verifier's probability that both texts ask the same thing; 1.0 for a near repeat (the same
    #: prompt typed differently, repeat.py), which passes whatever the cut.
    score: float
    passed: bool
    #: "verified (score 0.93 >= 0.71)", "near repeat", "numbers differ: 5 vs 50", "score 0.42 < 0.71"...
    reason: str


@dataclass(frozen=True, slots=True)
class CalibrationPoint:
    """On the calibration split: serving every candidate scoring >= ``cut`` gave this precision and served
    this share of the true duplicates (see MODEL_CARD.md for what the split holds)."""

    cut: float
    precision: float
    served: float


@dataclass
class Verifier:
    layers: list[tuple[np.ndarray, np.ndarray]]
    mean: np.ndarray
    scale: np.ndarray
    calibration: list[CalibrationPoint]
    default_target_precision: float
    meta: dict[str, Any] = field(default_factory=dict)
    idf: Idf = UNIFORM_IDF
    #: The second stage (cascade.py): a cross-encoder re-scores the candidates the MLP finds plausible.
    cascade: Cascade | None = None

    # -- loading ---------------------------------------------------------------------------------------

    @classmethod
    def load(
        cls, path: Path | None = None, cache_dir: Path | None = None, *, with_cascade: bool = True
    ) -> Verifier:
        """The verifier in ``path`` (the shipped ``data/verifier.npz`` by default), integrity-checked.

        Raises ``VerifierError`` when the file or its manifest (same name, ``.json``) is missing, when the
        file's sha256 is not the manifest's, or when its format is not this code's. When ``cascade.json``
        lies beside the weights, the cross-encoder stage it names is loaded too (cascade.py; its ONNX
        export is kept in ``cache_dir``, the embedder's model cache by default), with the same checks.
        """
        path = Path(path) if path is not None else DEFAULT_WEIGHTS
        manifest_path = path.with_suffix(".json")
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise VerifierError(f"the verifier's weights {path} are missing", _RETRAIN_HINT) from None
        except OSError as exc:
            raise VerifierError(
                f"the verifier's weights {path} cannot be read: {exc}", _RETRAIN_HINT
            ) from None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VerifierError(
                f"the verifier's manifest {manifest_path} is missing", _RETRAIN_HINT
            ) from None
        except (OSError, ValueError) as exc:
            raise VerifierError(
                f"the verifier's manifest {manifest_path} is unreadable: {exc}", _RETRAIN_HINT
            ) from None
        digest = hashlib.sha256(blob).hexdigest()
        if manifest.get("sha256") != digest:
            raise VerifierError(
                f"the verifier's weights {path} are damaged (sha256 {digest[:12]}..., "
                f"the manifest expects {str(manifest.get('sha256'))[:12]}...)",
                _RETRAIN_HINT,
            )
        if manifest.get("format") != FORMAT or manifest.get("width") != WIDTH:
            raise VerifierError(
                f"the verifier's weights {path} are format {manifest.get('format')} for "
                f"{manifest.get('width')} features; this code reads format {FORMAT} with {WIDTH}",
                _RETRAIN_HINT,
            )
        try:
            import io

            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                count = int(data["layer_count"])
                layers = [
                    (
                        np.asarray(data[f"w{i}"], dtype=np.float32),
                        np.asarray(data[f"b{i}"], dtype=np.float32),
                    )
                    for i in range(count)
                ]
                mean = np.asarray(data["mean"], dtype=np.float32)
                scale = np.asarray(data["scale"], dtype=np.float32)
                cuts = np.asarray(data["calib_cut"], dtype=np.float64)
                precisions = np.asarray(data["calib_precision"], dtype=np.float64)
                served = np.asarray(data["calib_served"], dtype=np.float64)
                idf = Idf(
                    dict(
                        zip(
                            (str(w) for w in data["idf_words"]),
                            (float(x) for x in np.asarray(data["idf_weights"], dtype=np.float64)),
                            strict=True,
                        )
                    ),
                    float(data["idf_unknown"]),
                )
        except (KeyError, ValueError, OSError) as exc:
            raise VerifierError(
                f"the verifier's weights {path} are unreadable: {exc}", _RETRAIN_HINT
            ) from None
        calibration = [
            CalibrationPoint(float(c), float(p), float(s))
            for c, p, s in zip(cuts, precisions, served, strict=True)
        ]
        verifier = cls(
            layers=layers,
            mean=mean,
            scale=scale,
            calibration=calibration,
            default_target_precision=float(manifest["default_target_precision"]),
            meta=manifest,
            idf=idf,
        )
        cascade_file = path.parent / CASCADE_FILE
        if with_cascade and cascade_file.exists():
            from engine.verification.cascade import Cascade

            verifier.cascade = Cascade.load(cascade_file, cache_dir)
            # Scores are now the cascade's, so the cut comes from its calibration.
            verifier.calibration = verifier.cascade.calibration
            verifier.default_target_precision = verifier.cascade.default_target_precision
        return verifier

    # -- scoring ---------------------------------------------------------------------------------------

    def scores(self, features: np.ndarray) -> np.ndarray:
        """The probability of "same question" for each row of ``features`` (n, WIDTH)."""
        x = (np.asarray(features, dtype=np.float32) - self.mean) / self.scale
        # A handful of rows (one check) goes row by row: matrix-vector products stay on this thread, while
        # a (5 x 788) @ (788 x 256) product makes OpenBLAS wake its threads, which on busy shared cores
        # cost milliseconds at the tail (measured: p99 24 ms against 0.12 ms row by row).
        small = len(x) <= SMALL_BATCH
        for i, (weight, bias) in enumerate(self.layers):
            if small:
                x = np.stack([weight.T @ row for row in x]) + bias if len(x) else x @ weight + bias
            else:
                x = x @ weight + bias
            if i < len(self.layers) - 1:
                np.maximum(x, 0.0, out=x)
        logits = x[:, 0].astype(np.float64)
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -40.0, 40.0)))

    def assess_pairs(
        self, queries: Sequence[str], query_vectors: np.ndarray, texts: Sequence[str], vectors: np.ndarray
    ) -> tuple[np.ndarray, list[str | None], np.ndarray]:
        """For pairs (queries[i], texts[i]): the scores, the reasons to refuse whatever the score (a
        critical-token rule, or a candidate the cascade did not cross-check; None when nothing objects)
        and whether each pair is a near repeat. One pass of the rules; what ``verdicts`` and the
        evaluation (evaluate.py) both decide from. With a cascade, the scores are its combined scores."""
        found = assess(queries, query_vectors, texts, vectors, self.idf)
        scores = self.scores(found.features)
        if self.cascade is None:
            return scores, found.vetoes, found.near_repeats
        return self.cascade.rescore(queries, texts, scores, found.vetoes, found.near_repeats)

    def cut_for_precision(self, precision: float) -> float:
        """The lowest score cut whose calibrated precision is at least ``precision`` (serving the most).

        The table is monotone by construction (see ``train.calibration_table``), so a higher target never
        gives a lower cut. A target above every calibrated precision gives a cut above every score: the
        verifier then serves nothing rather than pretend to a precision it never showed.
        """
        if not 0.0 < precision <= 1.0:
            from engine.errors import InvalidInputError

            raise InvalidInputError(
                f"target precision {precision} is out of range",
                "use a number above 0 and at most 1, e.g. 0.9",
            )
        for point in self.calibration:  # sorted by cut, ascending
            if point.precision >= precision:
                return point.cut
        return 1.0 + 1e-9

    @property
    def default_cut(self) -> float:
        return self.cut_for_precision(self.default_target_precision)

    def verdicts(
        self,
        query: str,
        query_vector: np.ndarray,
        candidates: Sequence[tuple[str, np.ndarray]],
        cut: float,
    ) -> list[Verdict]:
        """One verdict per candidate ``(cached prompt, its bundled-model vector)``, in the given order.

        A critical-token rule vetoes first whatever the score; a near repeat (the same prompt once case,
        punctuation, contractions and chat filler are taken away, with no critical-token difference; see
        repeat.py) passes with score 1.0; otherwise the candidate passes when its score is at least
        ``cut`` (``cut_for_precision`` turns a target precision into one).

        Each text is analysed once (an LRU cache keyed by the text keeps popular cached prompts), the
        features of all candidates form one matrix and the MLP runs once for all of them.
        """
        if not candidates:
            return []
        texts = [text for text, _ in candidates]
        vectors = np.stack(
            [np.asarray(vector, dtype=np.float32).reshape(DIMENSION) for _, vector in candidates]
        )
        query_vectors = np.broadcast_to(
            np.asarray(query_vector, dtype=np.float32).reshape(1, DIMENSION), vectors.shape
        )
        scores, vetoes, near = self.assess_pairs([query] * len(texts), query_vectors, texts, vectors)
        verdicts: list[Verdict] = []
        for score, veto, is_repeat in zip(scores, vetoes, near, strict=True):
            if veto is not None:
                verdicts.append(Verdict(float(score), False, veto))
            elif is_repeat:
                verdicts.append(Verdict(1.0, True, "near repeat"))
            elif score >= cut:
                verdicts.append(Verdict(float(score), True, f"verified (score {score:.2f} >= {cut:.2f})"))
            else:
                verdicts.append(Verdict(float(score), False, f"score {score:.2f} < {cut:.2f}"))
        return verdicts


def save(
    path: Path,
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    mean: np.ndarray,
    scale: np.ndarray,
    calibration: Sequence[CalibrationPoint],
    manifest: dict[str, Any],
    dtype: type = np.float16,
    idf: Idf = UNIFORM_IDF,
) -> dict[str, Any]:
    """Write the weights (``dtype``, fp16 by default) and the manifest with the file's sha256."""
    arrays: dict[str, np.ndarray] = {"layer_count": np.array(len(layers))}
    for i, (weight, bias) in enumerate(layers):
        arrays[f"w{i}"] = np.asarray(weight).astype(dtype)
        arrays[f"b{i}"] = np.asarray(bias).astype(np.float32)
    arrays["mean"] = np.asarray(mean, dtype=np.float32)
    arrays["scale"] = np.asarray(scale, dtype=np.float32)
    arrays["calib_cut"] = np.array([p.cut for p in calibration], dtype=np.float32)
    arrays["calib_precision"] = np.array([p.precision for p in calibration], dtype=np.float32)
    arrays["calib_served"] = np.array([p.served for p in calibration], dtype=np.float32)
    words = sorted(idf.weights)
    arrays["idf_words"] = np.array(words, dtype=np.str_)
    arrays["idf_weights"] = np.array([idf.weights[w] for w in words], dtype=np.float16)
    arrays["idf_unknown"] = np.array(idf.unknown, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    blob = buffer.getvalue()
    path.write_bytes(blob)
    manifest = {
        **manifest,
        "format": FORMAT,
        "width": WIDTH,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
    }
    path.with_suffix(".json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return manifest
