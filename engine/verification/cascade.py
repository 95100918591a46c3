"""The verifier's second stage: a cross-encoder re-scores the candidates the MLP finds plausible.

The MLP (model.py) judges a pair from the two texts' separate vectors and a few lexical features: fast
(well under a millisecond for a check) but blind to how the words of one text line up with the other's.
The cross-encoder (cross_encoder.py) reads both texts together; it is the stronger judge and costs about
1-3 ms a pair on one core. So the stages run as a cascade:

1. the critical-token rules and the near-repeat rule decide first, as without a cascade;
2. a candidate whose MLP score is under ``gate`` is refused on that score (on the calib split, the gate
   costs under 1% of the duplicates the cascade would serve at its default precision, see
   ``cascade_calibrate.py``);
3. the ``limit`` best remaining candidates of a query (by MLP score) are cross-checked; their final
   score is a logistic blend of the two stages' logits (fitted on the val split); the others are refused
   as not cross-checked (a check's candidates beyond the best few are rarely the one served).

``cascade.json`` (written by ``python -m engine.verification.cascade_calibrate``) holds the gate, the
limit, the blend, the calibration of the final score on the calib split and the sha256 of the
cross-encoder's weights it was fitted with.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.verification.cross_encoder import DEFAULT_CROSS_WEIGHTS, CrossEncoder, verified_manifest
from engine.verification.model import CalibrationPoint, VerifierError

CASCADE_FORMAT = 1
_HINT = "reinstall semcache or run `python -m engine.verification.cascade_calibrate`"


def logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1.0 - 1e-6)
    return np.log(clipped / (1.0 - clipped))


@dataclass
class Cascade:
    cross: CrossEncoder
    #: MLP score under which the cross-encoder is not asked (the candidate is refused on the MLP's score).
    gate: float
    #: Candidates of one query cross-checked at most (the best by MLP score).
    limit: int
    #: final logit = blend[0] * MLP logit + blend[1] * cross-encoder logit + blend[2]
    blend: tuple[float, float, float]
    calibration: list[CalibrationPoint]
    default_target_precision: float
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, cache_dir: Path | None = None) -> Cascade:
        """The cascade described by ``path`` (``cascade.json``), with its cross-encoder beside it."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format") != CASCADE_FORMAT:
                raise ValueError(f"format {raw.get('format')}, this code reads {CASCADE_FORMAT}")
            weights = path.parent / str(raw["cross_encoder"])
            blend = tuple(float(x) for x in raw["blend"])
            calibration = [CalibrationPoint(float(c), float(p), float(s)) for c, p, s in raw["calibration"]]
            gate, limit = float(raw["gate"]), int(raw["limit"])
            target = float(raw["default_target_precision"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VerifierError(f"the verifier's cascade {path} is unreadable: {exc}", _HINT) from None
        if len(blend) != 3 or limit < 1 or not calibration:
            raise VerifierError(f"the verifier's cascade {path} is incomplete", _HINT)
        manifest = verified_manifest(weights)
        if manifest.get("sha256") != raw.get("cross_encoder_sha256"):
            raise VerifierError(
                f"the cross-encoder {weights} is not the one the cascade {path} was calibrated with",
                _HINT,
            )
        cross = CrossEncoder.load(weights, cache_dir)
        return cls(cross, gate, limit, (blend[0], blend[1], blend[2]), calibration, target, raw)

    def blended(self, mlp_scores: np.ndarray, cross_logits: np.ndarray) -> np.ndarray:
        """The final score of cross-checked pairs from their MLP scores and cross-encoder logits."""
        z = self.blend[0] * logit(mlp_scores) + self.blend[1] * np.asarray(cross_logits, np.float64)
        return 1.0 / (1.0 + np.exp(-np.clip(z + self.blend[2], -40.0, 40.0)))

    def rescore(
        self,
        queries: Sequence[str],
        texts: Sequence[str],
        mlp_scores: np.ndarray,
        vetoes: Sequence[str | None],
        near_repeats: np.ndarray,
    ) -> tuple[np.ndarray, list[str | None], np.ndarray]:
        """``Verifier.assess_pairs``' answer with the second stage applied (see the module's docstring)."""
        scores = np.asarray(mlp_scores, dtype=np.float64).copy()
        reasons = list(vetoes)
        chosen = self.chosen(queries, mlp_scores, vetoes, near_repeats)
        for i in set(range(len(texts))) - set(chosen):
            if reasons[i] is None and not near_repeats[i] and scores[i] >= self.gate:
                reasons[i] = f"not cross-checked ({self.limit} likelier candidates were)"
        if chosen:
            cross = self.cross.logits([(queries[i], texts[i]) for i in chosen])
            scores[chosen] = self.blended(np.asarray(mlp_scores)[chosen], cross)
        return scores, reasons, near_repeats

    def chosen(
        self,
        queries: Sequence[str],
        mlp_scores: np.ndarray,
        vetoes: Sequence[str | None],
        near_repeats: np.ndarray,
    ) -> list[int]:
        """The pairs to cross-check: not vetoed, not near repeats, MLP score >= gate, the ``limit`` best
        of each query."""
        by_query: dict[str, list[int]] = {}
        for i, query in enumerate(queries):
            if vetoes[i] is None and not near_repeats[i] and mlp_scores[i] >= self.gate:
                by_query.setdefault(query, []).append(i)
        chosen: list[int] = []
        for indices in by_query.values():
            indices.sort(key=lambda i: -float(mlp_scores[i]))
            chosen.extend(indices[: self.limit])
        return sorted(chosen)


__all__ = ["DEFAULT_CROSS_WEIGHTS", "Cascade"]
