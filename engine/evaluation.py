"""Threshold quality on labeled pairs: how precision, recall and hit rate move with the threshold.

A pair is ``(text_a, text_b, label)`` with label 1 when both texts ask the same thing. Treating
``text_a`` as a cached prompt and ``text_b`` as a new one, a pair is served (a hit) exactly when the cache
would serve it: the distance is within the threshold (``within_threshold``) and, when verification is on,
the candidate passes it (engine/verify.py). The panel's sweep and any report use this module, so the
numbers an operator tunes against and the answers the cache gives come from the same rule.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.embeddings.base import Embedder
from engine.errors import InvalidInputError
from engine.models import clamp_distance
from engine.verify import rejection_reason

if TYPE_CHECKING:
    from engine.verification.corpus import Pair
    from engine.verification.evaluate import EvaluationReport
    from engine.verification.model import Verifier

DEFAULT_SAMPLE = 2000
DEFAULT_TARGET_PRECISION = 0.95
#: The near-miss set shipped with the package; its ``report`` split was never trained or tuned on.
NEAR_MISS_PAIRS = Path(__file__).resolve().parent / "verification" / "data" / "near_misses.jsonl"
NEAR_MISS_REPORT_SPLIT = "report"


@dataclass(frozen=True, slots=True)
class LabeledPair:
    text_a: str
    text_b: str
    label: int


@dataclass(frozen=True, slots=True)
class SweepPoint:
    threshold: float
    precision: float
    recall: float
    hit_rate: float
    #: How many pairs were served at this threshold (precision is 1.0 by convention when none were).
    hits: int = 0


def within_threshold(distance: float, threshold: float) -> bool:
    """The distance half of the hit rule: a candidate at exactly the threshold is a hit."""
    return clamp_distance(distance) <= threshold


def default_thresholds(step: float = 0.01, upper: float = 0.6) -> list[float]:
    """Thresholds from 0 to ``upper``: the range where a cache threshold is worth choosing."""
    count = round(upper / step)
    return [round(i * step, 4) for i in range(count + 1)]


def load_pairs(path: str | Path, limit: int | None = DEFAULT_SAMPLE, seed: int = 0) -> list[LabeledPair]:
    """Read JSON lines ``{text_a, text_b, label}`` (gzip or plain) and sample ``limit`` pairs with ``seed``.

    Raises ``InvalidInputError`` naming the file and the line for anything unreadable.
    """
    path = Path(path)
    if limit is not None and limit < 1:
        raise InvalidInputError(f"sample size {limit} is too small", "sample at least 1 pair")
    try:
        with path.open("rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        opener = gzip.open if gzipped else open
        with opener(path, "rt", encoding="utf-8") as handle:
            lines = [line for line in handle if line.strip()]
    except FileNotFoundError:
        raise InvalidInputError(
            f"pairs file {path} does not exist", "give the path of a JSON lines file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"pairs file {path} cannot be read: {exc}") from None
    if limit is not None and limit < len(lines):
        lines = random.Random(seed).sample(lines, limit)
    pairs: list[LabeledPair] = []
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
            pairs.append(LabeledPair(str(row["text_a"]), str(row["text_b"]), 1 if int(row["label"]) else 0))
        except (ValueError, KeyError, TypeError):
            raise InvalidInputError(
                f"pairs file {path}: a line is not {{text_a, text_b, label}} (sampled line {number})",
                "each line must be a JSON object with text_a, text_b and label 0 or 1",
            ) from None
    if not pairs:
        raise InvalidInputError(f"pairs file {path} holds no pairs")
    return pairs


def pair_distances(vectors_a: np.ndarray, vectors_b: np.ndarray) -> np.ndarray:
    """Cosine distance of each row of ``vectors_a`` to the same row of ``vectors_b`` (unit vectors)."""
    a = np.asarray(vectors_a, dtype=np.float32)
    b = np.asarray(vectors_b, dtype=np.float32)
    if a.shape != b.shape:
        raise InvalidInputError(f"vector shapes differ: {a.shape} and {b.shape}")
    return np.clip(1.0 - np.einsum("ij,ij->i", a, b), 0.0, 2.0)


def sweep(
    vectors_a: np.ndarray,
    vectors_b: np.ndarray,
    labels: Sequence[int],
    thresholds: Sequence[float] | None = None,
    *,
    eligible: Sequence[bool] | None = None,
) -> list[SweepPoint]:
    """Precision, recall and hit rate at each threshold.

    ``eligible[i]`` is False for a pair that verification would reject whatever the distance; without it
    every pair is judged by distance alone.
    """
    distances = pair_distances(vectors_a, vectors_b)
    truth = np.asarray(labels, dtype=bool)
    if len(truth) != len(distances):
        raise InvalidInputError(f"{len(truth)} labels for {len(distances)} pairs")
    allowed = np.ones(len(truth), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    positives = int(truth.sum())
    total = len(truth)
    points: list[SweepPoint] = []
    for threshold in thresholds if thresholds is not None else default_thresholds():
        served = np.array([within_threshold(float(d), threshold) for d in distances], dtype=bool) & allowed
        hits = int(served.sum())
        true_hits = int((served & truth).sum())
        points.append(
            SweepPoint(
                threshold=float(threshold),
                precision=true_hits / hits if hits else 1.0,
                recall=true_hits / positives if positives else 0.0,
                hit_rate=hits / total if total else 0.0,
                hits=hits,
            )
        )
    return points


def recommend(points: Sequence[SweepPoint], target_precision: float) -> SweepPoint | None:
    """The loosest threshold (most hits) whose precision still meets ``target_precision``, if any."""
    if not 0.0 <= target_precision <= 1.0:
        raise InvalidInputError(
            f"target precision {target_precision} is out of range", "use 0 to 1, e.g. 0.95"
        )
    meeting = [p for p in points if p.hits > 0 and p.precision >= target_precision]
    if not meeting:
        return None
    return max(meeting, key=lambda p: (p.hit_rate, -p.threshold))


async def evaluate_pairs(
    embedder: Embedder,
    pairs: Sequence[LabeledPair],
    thresholds: Sequence[float] | None = None,
    *,
    verify: bool = True,
) -> list[SweepPoint]:
    """Embed both sides of every pair with ``embedder`` (one batch per side) and sweep the thresholds."""
    if not pairs:
        raise InvalidInputError("no pairs to evaluate")
    vectors_a = await embedder.embed([p.text_a for p in pairs])
    vectors_b = await embedder.embed([p.text_b for p in pairs])
    eligible = [rejection_reason(p.text_b, p.text_a) is None for p in pairs] if verify else None
    return sweep(vectors_a, vectors_b, [p.label for p in pairs], thresholds, eligible=eligible)


# -- the verifier's evaluation (``semcache-tui eval``) ----------------------------------------------------


def _split_of(line: str) -> object:
    try:
        row = json.loads(line)
    except ValueError:
        return None  # reported with its line number below, if it is kept
    return row.get("split") if isinstance(row, dict) else None


def read_eval_pairs(
    path: str | Path, limit: int | None = None, seed: int = 0, *, split: str | None = None
) -> list[Pair]:
    """Labeled pairs ``{text_a, text_b, label[, category]}`` (JSON lines, gzip or plain) for
    ``engine.verification.evaluate``; ``limit`` samples that many with ``seed``; ``split`` keeps only the
    lines whose ``split`` field is that (the near-miss set's ``report`` part). ``InvalidInputError``
    (naming the file and the line) for anything unreadable."""
    from engine.verification.corpus import Pair

    path = Path(path)
    if limit is not None and limit < 1:
        raise InvalidInputError(f"--limit {limit} is too small", "evaluate at least 1 pair")
    try:
        with path.open("rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        opener = gzip.open if gzipped else open
        with opener(path, "rt", encoding="utf-8") as handle:
            lines = [(number, line) for number, line in enumerate(handle, start=1) if line.strip()]
        if split is not None:
            lines = [(number, line) for number, line in lines if _split_of(line) == split]
    except FileNotFoundError:
        raise InvalidInputError(
            f"pairs file {path} does not exist", "give the path of a JSON lines file"
        ) from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise InvalidInputError(f"pairs file {path} cannot be read: {exc}") from None
    if limit is not None and limit < len(lines):
        lines = sorted(random.Random(seed).sample(lines, limit))
    pairs: list[Pair] = []
    for number, line in lines:
        try:
            row = json.loads(line)
            pairs.append(
                Pair(
                    str(row["text_a"]),
                    str(row["text_b"]),
                    1 if int(row["label"]) else 0,
                    str(row.get("category") or "uncategorized"),
                )
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidInputError(
                f"pairs file {path}, line {number}: not a JSON object with text_a, text_b and label",
                "each line must be a JSON object with text_a, text_b, label 0 or 1 and optionally category",
            ) from None
    if not pairs:
        raise InvalidInputError(f"pairs file {path} holds no pairs")
    return pairs


async def evaluate_verifier(
    embedder: Embedder,
    pairs: Sequence[Pair],
    verifier: Verifier,
    target_precision: float | None = None,
    *,
    cap: float | None = None,
) -> EvaluationReport:
    """The verifier's precision/served curve and the distance curve on ``pairs``
    (``engine.verification.evaluate.evaluate_pairs``), with the texts embedded once by ``embedder`` when it
    is the bundled model at full dimension (the verifier's own representation), else by the bundled model.
    The scoring runs in a thread: it is CPU work."""
    import asyncio

    from engine.cache import BUNDLED_IDENTITY, bundled_embedder
    from engine.verification.evaluate import DEFAULT_CAP
    from engine.verification.evaluate import evaluate_pairs as evaluate_verified

    if not pairs:
        raise InvalidInputError("no pairs to evaluate")
    model = embedder if embedder.identity == BUNDLED_IDENTITY else bundled_embedder()
    await model.load()
    texts = list(dict.fromkeys(text for p in pairs for text in (p.text_a, p.text_b)))
    vectors = dict(zip(texts, await model.embed(texts), strict=True))

    def embed_fn(batch: Sequence[str]) -> np.ndarray:
        return np.stack([vectors[text] for text in batch])

    return await asyncio.to_thread(
        evaluate_verified,
        pairs,
        verifier,
        embed_fn,
        target_precision,
        cap=DEFAULT_CAP if cap is None else cap,
    )
