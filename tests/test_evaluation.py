"""engine/evaluation.py: the threshold sweep's arithmetic, the recommendation and the pairs file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InvalidInputError
from engine.evaluation import (
    LabeledPair,
    evaluate_pairs,
    load_pairs,
    recommend,
    sweep,
    within_threshold,
)


def unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)], dtype=np.float32)


def test_sweep_counts_precision_recall_and_hit_rate() -> None:
    # distances 1 - cos(angle): 0, ~0.0199, ~0.0789, ~0.1756
    angles = [0.0, 0.2, 0.4, 0.6]
    a = np.stack([unit(0.0)] * 4)
    b = np.stack([unit(x) for x in angles])
    labels = [1, 1, 0, 1]
    points = sweep(a, b, labels, [0.0, 0.05, 0.1, 0.2])
    assert [p.hits for p in points] == [1, 2, 3, 4]
    assert points[1].precision == 1.0 and points[1].recall == pytest.approx(2 / 3)
    assert points[2].precision == pytest.approx(2 / 3) and points[2].hit_rate == 0.75
    assert points[3].recall == 1.0


def test_a_distance_at_the_threshold_is_a_hit() -> None:
    assert within_threshold(0.15, 0.15)
    assert not within_threshold(0.1500001, 0.15)


def test_verification_removes_pairs_whatever_the_distance() -> None:
    a = np.stack([unit(0.0)] * 2)
    points = sweep(a, a.copy(), [1, 0], [0.5], eligible=[True, False])
    assert points[0].hits == 1 and points[0].precision == 1.0


def test_recommend_takes_the_loosest_threshold_meeting_the_target() -> None:
    a = np.stack([unit(0.0)] * 4)
    b = np.stack([unit(x) for x in (0.0, 0.2, 0.4, 0.6)])
    points = sweep(a, b, [1, 1, 0, 1], [0.0, 0.05, 0.1, 0.2])
    assert recommend(points, 1.0).threshold == 0.05
    assert recommend(points, 0.7).threshold == 0.2
    b_bad = np.stack([unit(0.0)] * 4)
    assert recommend(sweep(a, b_bad, [0, 0, 0, 0], [0.1]), 0.5) is None
    with pytest.raises(InvalidInputError):
        recommend(points, 1.5)


def test_load_pairs_plain_and_gzip_sampled_with_a_seed(tmp_path: Path) -> None:
    rows = [{"text_a": f"a{i}", "text_b": f"b{i}", "label": i % 2} for i in range(50)]
    plain = tmp_path / "pairs.jsonl"
    plain.write_text("".join(json.dumps(r) + "\n" for r in rows))
    zipped = tmp_path / "pairs.jsonl.gz"
    with gzip.open(zipped, "wt") as handle:
        handle.write(plain.read_text())
    assert len(load_pairs(plain, None)) == 50
    first = load_pairs(zipped, 10, seed=3)
    assert first == load_pairs(plain, 10, seed=3)
    assert len(first) == 10 and first != load_pairs(plain, 10, seed=4)


def test_load_pairs_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_pairs(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text_a": "x"}\n')
    with pytest.raises(InvalidInputError, match=r"bad\.jsonl"):
        load_pairs(bad)


async def test_evaluate_pairs_with_the_model(embedder) -> None:  # type: ignore[no-untyped-def]
    pairs = [
        LabeledPair("What is the capital of France?", "what's the capital city of france", 1),
        LabeledPair("How do I reverse a list in Python?", "What is the best pizza topping?", 0),
    ]
    points = await evaluate_pairs(embedder, pairs, [0.0, 0.3, 2.0])
    assert points[-1].hits == 2 and points[1].hits == 1 and points[1].precision == 1.0
