"""The shipped verifier, with the real bundled model: verdicts, integrity, calibration, features, evaluation."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.errors import SemcacheError
from engine.verification.corpus import read_pairs
from engine.verification.evaluate import evaluate_pairs
from engine.verification.features import WIDTH, pair_features
from engine.verification.model import DEFAULT_WEIGHTS, Verifier, VerifierError
from tests.conftest import shared_embedder


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier.load()


def embed(texts: list[str]) -> np.ndarray:
    return shared_embedder().embed_sync(list(texts))


def test_a_chat_paraphrase_is_served_at_the_default_cut(verifier: Verifier) -> None:
    query = "Can you explain machine learning?"
    stored = "What is machine learning?"
    vectors = embed([query, stored])
    (verdict,) = verifier.verdicts(query, vectors[0], [(stored, vectors[1])], verifier.default_cut)
    assert verdict.passed, verdict
    assert verdict.reason.startswith("verified (score")
    # Not by a hair: the first model scored it 0.8479 against a cut of 0.8475.
    assert verdict.score >= verifier.default_cut + 0.05, verdict


def test_a_near_repeat_passes_whatever_the_cut(verifier: Verifier) -> None:
    query = "what's the capital of france"
    stored = "What is the capital of France?"
    vectors = embed([query, stored])
    for a, b, va, vb in ((query, stored, vectors[0], vectors[1]), (stored, query, vectors[1], vectors[0])):
        (verdict,) = verifier.verdicts(a, va, [(b, vb)], 0.999)
        assert verdict.passed and verdict.reason == "near repeat" and verdict.score == 1.0


@pytest.mark.parametrize(
    ("query", "stored", "reason"),
    [
        ("what's 5 km in miles", "What is 50 km in miles?", "numbers differ"),
        ("can i eat eggs while pregnant", "Can't I eat eggs while pregnant?", "negation differs"),
        ("how do i reverse a list in python", "How do I reverse a list in Java?", "platform differs"),
    ],
)
def test_a_near_repeat_with_a_changed_detail_is_still_refused(
    verifier: Verifier, query: str, stored: str, reason: str
) -> None:
    vectors = embed([query, stored])
    for a, b, va, vb in ((query, stored, vectors[0], vectors[1]), (stored, query, vectors[1], vectors[0])):
        (verdict,) = verifier.verdicts(a, va, [(b, vb)], 0.0)
        assert not verdict.passed and verdict.reason.startswith(reason), verdict


def test_a_changed_number_is_refused_with_the_numbers_reason(verifier: Verifier) -> None:
    query = "How do I convert 50 km to miles"
    stored = "How do I convert 5 km to miles"
    vectors = embed([query, stored])
    (verdict,) = verifier.verdicts(query, vectors[0], [(stored, vectors[1])], verifier.default_cut)
    assert not verdict.passed
    assert verdict.reason == "numbers differ: 50 vs 5"


def test_verdicts_keep_the_candidates_order_and_say_why(verifier: Verifier) -> None:
    query = "how do i reverse a list in python"
    stored = [
        "what's the way to reverse a Python list",
        "how do i reverse a list in java",
        "best pizza toppings",
    ]
    vectors = embed([query, *stored])
    verdicts = verifier.verdicts(query, vectors[0], list(zip(stored, vectors[1:], strict=True)), 0.5)
    assert [v.passed for v in verdicts] == [True, False, False]
    assert verdicts[1].reason == "platform differs: python vs java"
    assert verdicts[2].reason.startswith("score ") and "< 0.50" in verdicts[2].reason
    assert verifier.verdicts(query, vectors[0], [], 0.5) == []


def copy_model(tmp_path: Path) -> Path:
    target = tmp_path / "verifier.npz"
    shutil.copy(DEFAULT_WEIGHTS, target)
    shutil.copy(DEFAULT_WEIGHTS.with_suffix(".json"), target.with_suffix(".json"))
    return target


def test_a_damaged_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    path = copy_model(tmp_path)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(VerifierError, match="damaged") as caught:
        Verifier.load(path)
    assert isinstance(caught.value, SemcacheError)
    assert caught.value.hint is not None and "engine.verification.train" in caught.value.hint


def test_a_missing_weights_file_or_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VerifierError, match="missing"):
        Verifier.load(tmp_path / "nothing.npz")
    path = copy_model(tmp_path)
    path.with_suffix(".json").unlink()
    with pytest.raises(VerifierError, match="manifest"):
        Verifier.load(path)


def test_weights_of_another_format_are_refused(tmp_path: Path) -> None:
    path = copy_model(tmp_path)
    manifest_path = path.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    manifest["width"] = WIDTH + 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(VerifierError, match="format"):
        Verifier.load(path)


def test_calibration_is_monotone_and_cut_for_precision_follows_it(verifier: Verifier) -> None:
    table = verifier.calibration
    assert len(table) > 10
    assert all(a.cut < b.cut for a, b in itertools.pairwise(table))
    assert all(a.precision <= b.precision + 1e-9 for a, b in itertools.pairwise(table))
    cuts = [verifier.cut_for_precision(p) for p in (0.5, 0.7, 0.8, 0.85, 0.88, 0.9, 0.95)]
    assert cuts == sorted(cuts)
    assert verifier.default_cut == verifier.cut_for_precision(verifier.default_target_precision)
    assert 0.0 < verifier.default_cut < 1.0
    # A precision the calibration never showed serves nothing rather than pretend.
    assert verifier.cut_for_precision(1.0) > 1.0 or table[-1].precision >= 1.0
    with pytest.raises(SemcacheError):
        verifier.cut_for_precision(1.5)


def test_feature_extraction_is_deterministic_and_symmetric() -> None:
    a = ["How do I convert 5 km to miles?", "What is machine learning?"]
    b = ["how many miles is 5 km", "Can you explain machine learning?"]
    va, vb = embed(a), embed(b)
    first = pair_features(a, va, b, vb)
    assert first.shape == (2, WIDTH) and first.dtype == np.float32
    assert np.array_equal(first, pair_features(a, va, b, vb))
    assert np.allclose(first, pair_features(b, vb, a, va))


def test_evaluate_pairs_on_a_small_file(tmp_path: Path, verifier: Verifier) -> None:
    rows = [
        ("What is machine learning?", "Can you explain machine learning?", 1, "paraphrase"),
        ("How do I convert 5 km to miles?", "How do I convert 50 km to miles?", 0, "number_unit"),
        ("How to sort a list in Python", "How to sort a list in Java", 0, "platform"),
        ("What is the capital of France?", "what's the capital of france", 1, "near_repeat"),
        ("Best pizza in Rome", "Who wrote Hamlet?", 0, "unrelated"),
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"text_a": a, "text_b": b, "label": y, "category": c}) + "\n" for a, b, y, c in rows
        )
    )
    report = evaluate_pairs(
        read_pairs(path), verifier, embed, target_precision=verifier.default_target_precision
    )
    assert report.pairs == 5 and report.positives == 2
    # Nothing wrong is served; the near repeat passes by the near-repeat rule whatever its score.
    assert report.verifier.precision == 1.0 and report.verifier.served_count == report.verifier.correct
    by_category = {c.category: c for c in report.verifier.categories}
    assert by_category["number_unit"].wrong_served_rate == 0.0
    assert by_category["platform"].wrong_served_rate == 0.0
    assert by_category["paraphrase"].served_rate == 1.0  # "Can you explain machine learning?"
    assert by_category["near_repeat"].served_rate == 1.0  # "what's the capital of france"
    # The old static rule serves the same-language paraphrase only if it is within 0.15.
    assert report.baseline.precision == 1.0
    assert [p.cut for p in report.curve] == sorted(p.cut for p in report.curve)


def test_question_groups_join_chains_of_duplicates_and_shared_questions() -> None:
    from engine.verification.corpus import Pair
    from engine.verification.evaluate import question_groups

    groups = question_groups(
        [
            Pair("How do I learn Go?", "Best way to learn Go?", 1),
            Pair("Best way to learn Go?", "How should I start learning Go", 1),  # a chain of duplicates
            Pair("How do I learn Go?", "How do I learn Rust?", 0),  # a label 0 joins nothing
            Pair("What exactly is DNA?", "So what is DNA exactly?", 1, question="explain DNA"),
            Pair("Describe DNA briefly.", "Briefly, what is DNA?", 1, question="explain DNA"),
        ]
    )
    go = groups["how do i learn go?"]
    assert groups["how should i start learning go"] == go != groups["how do i learn rust?"]
    assert groups["what exactly is dna?"] == groups["briefly, what is dna?"] != go


def test_another_stored_wording_of_the_question_is_a_correct_answer() -> None:
    """A query served another entry asking its question is served right; without the link, wrong."""
    from engine.verification.corpus import Pair
    from engine.verification.evaluate import simulate

    def simulated(question: str) -> tuple[float, int]:
        pairs = [
            Pair("What is a compiler?", "Can you explain what a compiler is?", 1, question=question),
            Pair("Define compiler.", "What is a compiler, exactly?", 1, question=question),
        ]
        vectors_a = embed([p.text_a for p in pairs])
        vectors_b = embed([p.text_b for p in pairs])
        simulation = simulate(pairs, vectors_a, vectors_b, None)
        served = simulation.served_entry(0.0)
        assert served[1] == 0  # "What is a compiler, exactly?" is nearest to the first pair's text_a
        figures = simulation.figures(served)
        assert figures.wrong == figures.served_count - figures.correct  # both queries are label 1
        return figures.precision, figures.correct

    assert simulated("explain a compiler") == (1.0, 2)
    assert simulated("") == (0.5, 1)
