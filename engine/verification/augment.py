"""More training pairs from the labels QQP already has: duplicates are transitive.

If A and B ask the same question and so do B and C, then A and C do; if A and B ask the same question
and A and D do not, then B and D do not. QQP train holds many wordings of popular questions: its 14,960
duplicate pairs join into groups whose closure holds 44,642 duplicate pairs, and its 25,040 non-duplicates
reach 35,763 once either side is replaced by a text of its group. This is the transitive augmentation
used with QQP in the literature; it adds pairs the annotators never saw, so it inherits their mistakes
along a chain, and a few large groups (one popular question asked hundreds of ways) would dominate: each
group and each non-duplicate contribute a bounded number of derived pairs, drawn with a seeded generator.

Derived pairs are built from the given (fit) pairs only, and never repeat a pair of ``exclude`` (the
splits that pick epochs and calibrate), in either order.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from engine.verification.corpus import Pair

#: Derived duplicates per group: at most this many per text of the group (a group of n texts holds
#: n(n-1)/2 pairs; 2n keeps a 300-text group from outweighing 300 small ones).
POSITIVES_PER_TEXT = 2
#: Derived non-duplicates per labeled non-duplicate (its sides swapped for other texts of their groups).
NEGATIVES_PER_PAIR = 2
CATEGORY = "qqp-derived"


class _Groups:
    """Union-find over texts joined by duplicate pairs."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def find(self, text: str) -> str:
        parent = self._parent.setdefault(text, text)
        while parent != text:
            grand = self._parent[parent]
            self._parent[text] = grand
            text, parent = parent, grand
        return text

    def join(self, a: str, b: str) -> None:
        self._parent[self.find(a)] = self.find(b)

    def members(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for text in self._parent:
            groups.setdefault(self.find(text), []).append(text)
        return groups


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def transitive_pairs(pairs: Sequence[Pair], exclude: Iterable[Pair], seed: int) -> list[Pair]:
    """Duplicates and non-duplicates implied by ``pairs``' labels and not already among them or in
    ``exclude``; deterministic for ``seed``."""
    rng = random.Random(seed)
    groups = _Groups()
    for pair in pairs:
        if pair.label == 1:
            groups.join(pair.text_a, pair.text_b)
    members = {root: sorted(texts) for root, texts in groups.members().items() if len(texts) >= 2}
    taken = {_key(p.text_a, p.text_b) for p in pairs}
    taken.update(_key(p.text_a, p.text_b) for p in exclude)
    derived: list[Pair] = []

    def offer(a: str, b: str, label: int) -> bool:
        key = _key(a, b)
        if a == b or key in taken:
            return False
        taken.add(key)
        derived.append(Pair(a, b, label, CATEGORY))
        return True

    for root in sorted(members):
        texts = members[root]
        if len(texts) < 3:
            continue  # a group of two is one labeled pair: nothing to derive
        candidates = [(a, b) for i, a in enumerate(texts) for b in texts[i + 1 :]]
        rng.shuffle(candidates)
        budget = POSITIVES_PER_TEXT * len(texts)
        for a, b in candidates:
            if budget == 0:
                break
            budget -= offer(a, b, 1)

    for pair in pairs:
        if pair.label != 0:
            continue
        root_a, root_b = groups.find(pair.text_a), groups.find(pair.text_b)
        if root_a == root_b:
            continue  # the labels contradict each other along a chain: derive nothing from it
        swaps = [(other, pair.text_b) for other in members.get(root_a, ()) if other != pair.text_a]
        swaps += [(pair.text_a, other) for other in members.get(root_b, ()) if other != pair.text_b]
        rng.shuffle(swaps)
        budget = NEGATIVES_PER_PAIR
        for a, b in swaps:
            if budget == 0:
                break
            budget -= offer(a, b, 0)
    return derived
