"""The near-repeat rule and the per-text analysis behind the features: no model needed."""

from __future__ import annotations

import numpy as np
import pytest

from engine.verification import critical
from engine.verification.features import (
    SCALAR_NAMES,
    WIDTH,
    assess,
    clear_caches,
    pair_features,
    scalar_features,
)
from engine.verification.repeat import is_near_repeat, normal_form

REPEATS = [
    ("what's the capital of france", "What is the capital of France?"),
    ("Quick question: what is gravity?", "what is gravity?"),
    ("What is a vaccine ?", "What is a vaccine? Thanks!"),
    ("how can i flatten a nested list in go", "How can I flatten a nested list in Go? thx"),
    ("Hey, can you tell me what evolution is?", "What is evolution?"),
    ("Why can\u2019t I sleep?", "why cannot i sleep"),
    ("\uff37\uff28\uff21\uff34 is DNA", "what is dna"),
]
NOT_REPEATS = [
    # one critical detail changed: the rules object, so never a near repeat
    ("what's 5 km in miles", "What is 50 km in miles?"),
    ("can i eat eggs while pregnant", "Can't I eat eggs while pregnant?"),
    ("how do i reverse a list in python", "How do I reverse a list in Java?"),
    ("What's the weather in Paris today?", "what is the weather in paris tomorrow"),
    ("how to convert usd to eur", "How to convert EUR to USD?"),
    # content words reordered: left to the learned score, even at a high cosine
    ("did alice beat bob", "did bob beat alice"),
    # a different question word or a word more
    ("why do i lose weight", "how do i lose weight"),
    ("what is machine learning", "what is machine learning used for"),
]


def near(a: str, b: str, cosine: float = 0.97) -> bool:
    return is_near_repeat(normal_form(a), normal_form(b), cosine, critical.flags(a, b))


@pytest.mark.parametrize(("a", "b"), REPEATS)
def test_a_near_repeat_is_recognised_both_ways(a: str, b: str) -> None:
    assert near(a, b) and near(b, a)


@pytest.mark.parametrize(("a", "b"), NOT_REPEATS)
def test_a_changed_detail_or_order_is_not_a_near_repeat(a: str, b: str) -> None:
    assert not near(a, b) and not near(b, a)


def test_a_function_word_reorder_needs_a_high_cosine() -> None:
    a, b = "Can you tell me what recursion is?", "What is recursion?"
    assert near(a, b, 0.95)
    assert not near(a, b, 0.5)


def test_assess_matches_pair_by_pair_features_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    texts_a = ["How do I convert 5 km to miles?", "What is machine learning?", "what's the capital of france"]
    texts_b = [
        "how many miles is 5 km",
        "Can you explain machine learning?",
        "What is the capital of France?",
    ]
    va = rng.normal(size=(3, 384)).astype(np.float32)
    vb = rng.normal(size=(3, 384)).astype(np.float32)
    clear_caches()
    cold = assess(texts_a, va, texts_b, vb)
    warm = assess(texts_a, va, texts_b, vb)
    assert cold.features.shape == (3, WIDTH) and cold.features.dtype == np.float32
    assert np.array_equal(cold.features, warm.features)
    assert cold.vetoes == warm.vetoes and np.array_equal(cold.near_repeats, warm.near_repeats)
    for i in range(3):
        one = pair_features(texts_a[i : i + 1], va[i : i + 1], texts_b[i : i + 1], vb[i : i + 1])
        assert np.array_equal(one[0], cold.features[i])
        scalars = np.asarray(scalar_features(texts_a[i], texts_b[i]), dtype=np.float32)
        assert np.array_equal(scalars, cold.features[i, 1 : len(SCALAR_NAMES)])
        assert cold.vetoes[i] == critical.rejection_reason(texts_a[i], texts_b[i])
    assert cold.vetoes[0] is None and not cold.near_repeats[0]
    # random vectors: the last pair is the same prompt after normalisation, so it needs no cosine
    assert cold.near_repeats.tolist() == [False, False, True]
