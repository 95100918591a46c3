"""The transitive pairs the cross-encoder's training may add to QQP's labeled ones (augment.py)."""

from __future__ import annotations

from engine.verification.augment import POSITIVES_PER_TEXT, transitive_pairs
from engine.verification.corpus import Pair


def keys(pairs: list[Pair]) -> set[tuple[frozenset[str], int]]:
    return {(frozenset((p.text_a, p.text_b)), p.label) for p in pairs}


def test_duplicates_chain_and_non_duplicates_spread_to_the_group() -> None:
    pairs = [Pair("A", "B", 1), Pair("B", "C", 1), Pair("C", "D", 0)]
    derived = keys(transitive_pairs(pairs, [], seed=0))
    assert (frozenset("AC"), 1) in derived  # A = B = C
    assert derived & {(frozenset("AD"), 0), (frozenset("BD"), 0)}  # C != D, so its group != D
    assert all(label == 0 for pair, label in derived if "D" in pair)
    assert not derived & keys(pairs)  # nothing labeled already


def test_excluded_pairs_are_never_derived_in_either_order() -> None:
    pairs = [Pair("A", "B", 1), Pair("B", "C", 1)]
    assert transitive_pairs(pairs, [Pair("C", "A", 1)], seed=0) == []


def test_contradicting_labels_derive_no_non_duplicates() -> None:
    # A = B = C by labels, yet A != C is labeled too: the chain and the label disagree.
    pairs = [Pair("A", "B", 1), Pair("B", "C", 1), Pair("A", "C", 0), Pair("C", "E", 1)]
    assert all(p.label == 1 for p in transitive_pairs(pairs, [], seed=0))


def test_a_large_group_contributes_a_bounded_number_of_pairs_deterministically() -> None:
    texts = [f"wording {n}" for n in range(60)]
    pairs = [Pair(texts[0], text, 1) for text in texts[1:]]
    derived = transitive_pairs(pairs, [], seed=4)
    assert len(derived) == POSITIVES_PER_TEXT * len(texts)  # of the 1,711 the closure holds
    assert derived == transitive_pairs(pairs, [], seed=4)
    assert derived != transitive_pairs(pairs, [], seed=5)
