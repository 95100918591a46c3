"""Simulate the cache on a labeled pair file and measure what it serves.

Every distinct ``text_a`` of the file is a cached prompt, in an exact cosine index (numpy). Each ``text_b``
is a new query: the index returns its ``k`` nearest entries within the distance cap (the store's search),
the verifier judges them, and the best passing one (highest score) is served. A served answer is correct
when the served entry asks the query's question: the pair's own ``text_a`` when the label is 1, or another
entry known to ask the same question. Two texts ask the same question when a label-1 pair links them,
directly or through other label-1 pairs (QQP's duplicates are such chains), or when both carry the same
optional ``question`` field (the near-miss set's chat paraphrases: "What exactly is a compiler?" and
"Give me a quick overview of a compiler" are two stored wordings of one question, and serving either
answers both). A label-0 pair's own ``text_a`` is never a correct answer for its ``text_b``. So

    precision = correct / served,    served = correct label-1 queries / label-1 pairs.

Anything else served is a wrong answer: an entry asking another question, or the ``text_a`` of a label-0
pair. (Until this rule, only the pair's own ``text_a`` counted as correct, which scored a query served
another wording of its own question as wrong.) The same run
also gives, per category, the share of label-0 pairs whose ``text_a`` was served for their ``text_b``
(wrong-served) and the share of label-1 pairs served correctly.

An entry whose normalised text equals the query's is left out of the query's candidates: the cache serves
exact repeats before any search (engine/cache.py), so they say nothing about verification. A pair whose
two texts are the same is counted as served and correct.

The baseline is the rule the cache had before the verifier: nearest candidate within distance 0.15 that
passes the two old checks (numbers and negation, kept below as ``legacy_rejection_reason``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.keys import normalize_prompt
from engine.verification import critical
from engine.verification.corpus import Pair
from engine.verification.model import Verifier

#: The store's search cap in the simulation, and the role ``CACHE_DISTANCE_THRESHOLD`` should take once
#: the verifier decides: 0.40 keeps 97% of QQP train duplicates' own partner within reach (cap recall) and
#: chat paraphrases like "What is X?" / "Can you explain X?" (distance 0.2-0.35); the measurement is in
#: MODEL_CARD.md.
DEFAULT_CAP = 0.40
DEFAULT_K = 5
BASELINE_THRESHOLD = 0.15
#: The score a near repeat (repeat.py) takes in the simulation: above every cut, like an exact repeat.
NEAR_REPEAT_SCORE = 2.0

EmbedFn = Callable[[Sequence[str]], np.ndarray]

_LEGACY_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_LEGACY_NEGATIONS = frozenset(
    {"not", "no", "never", "without", "don't", "doesn't", "isn't", "aren't", "can't", "won't"}
)
_LEGACY_WORD = re.compile(r"[a-z']+")


def legacy_rejection_reason(query: str, candidate: str) -> str | None:
    """The two checks the cache used before the verifier (numbers, negation), for the baseline only."""
    if {n.replace(",", "") for n in _LEGACY_NUMBER.findall(query)} != {
        n.replace(",", "") for n in _LEGACY_NUMBER.findall(candidate)
    }:
        return "numbers differ"
    negated = [
        any(w in _LEGACY_NEGATIONS for w in _LEGACY_WORD.findall(t.lower())) for t in (query, candidate)
    ]
    if negated[0] != negated[1]:
        return "negation differs"
    return None


@dataclass(frozen=True, slots=True)
class CurvePoint:
    cut: float
    precision: float
    served: float
    served_count: int
    correct: int


@dataclass(frozen=True, slots=True)
class CategoryFigures:
    category: str
    positives: int
    negatives: int
    #: Label-1 pairs served an entry asking their question / label-1 pairs.
    served_rate: float
    #: Label-0 pairs whose text_a was served for their text_b / label-0 pairs.
    wrong_served_rate: float


@dataclass(frozen=True, slots=True)
class Figures:
    """What one serving rule did on the whole file."""

    precision: float
    served: float
    served_count: int
    #: Label-1 queries served right (``served``'s numerator).
    correct: int
    categories: list[CategoryFigures]
    #: Queries served a wrong answer, whatever their label (``precision`` is 1 - wrong / served_count).
    wrong: int = 0


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    pairs: int
    positives: int
    cap: float
    k: int
    #: Share of label-1 pairs with an entry asking their question among the k nearest within the cap: the
    #: ceiling of served.
    cap_recall: float
    target_precision: float
    cut: float
    verifier: Figures
    baseline: Figures
    curve: list[CurvePoint] = field(default_factory=list)
    baseline_curve: list[CurvePoint] = field(default_factory=list)
    #: The pair-wise view (each text_b judged against its own text_a only, no search): the measure of the
    #: figures quoted in issue 13 (baseline precision 0.76 serving 0.58 of duplicates).
    pairwise_verifier: CurvePoint | None = None
    pairwise_baseline: CurvePoint | None = None
    pairwise_curve: list[CurvePoint] = field(default_factory=list)
    #: The simulated cache behind the figures, for a closer look at single answers (bench/verifier.py).
    simulation: Simulation | None = field(default=None, repr=False, compare=False)


@dataclass
class Simulation:
    """The candidates of every query and their verifier scores; cheap to cut at any score."""

    pairs: list[Pair]
    own: np.ndarray  # (n,) index of each pair's text_a in the entries
    entries: list[str]
    candidates: list[np.ndarray]  # per pair: entry indices, nearest first
    distances: list[np.ndarray]
    scores: list[np.ndarray]
    vetoed: list[np.ndarray]
    legacy_vetoed: list[np.ndarray]
    same_text: np.ndarray  # (n,) the pair's two texts are one prompt
    #: The question each entry and each query asks (``question_groups``): equal numbers, same question.
    entry_group: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    query_group: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def right(self, i: int, entry: int) -> bool:
        """Whether serving ``entry`` answers query ``i`` (see the module's docstring)."""
        if entry == self.own[i] and not self.pairs[i].label:
            return False
        return bool(self.entry_group[entry] == self.query_group[i])

    def rights(self, served_entry: np.ndarray) -> np.ndarray:
        """``right`` for each query's served entry (False where nothing was served)."""
        return np.array(
            [entry >= 0 and self.right(i, int(entry)) for i, entry in enumerate(served_entry)], dtype=bool
        )

    def served_entry(self, cut: float) -> np.ndarray:
        """The entry served for each query at ``cut`` (-1 for none): the best passing candidate."""
        out = np.full(len(self.pairs), -1, dtype=np.int64)
        for i, (cands, scores, vetoed) in enumerate(
            zip(self.candidates, self.scores, self.vetoed, strict=True)
        ):
            if self.same_text[i]:
                out[i] = self.own[i]
                continue
            ok = (~vetoed) & (scores >= cut)
            if ok.any():
                out[i] = cands[np.flatnonzero(ok)[np.argmax(scores[ok])]]
        return out

    def baseline_entry(self, threshold: float = BASELINE_THRESHOLD) -> np.ndarray:
        """The old rule: the nearest candidate within ``threshold`` that passes the legacy checks."""
        out = np.full(len(self.pairs), -1, dtype=np.int64)
        for i, (cands, dist, vetoed) in enumerate(
            zip(self.candidates, self.distances, self.legacy_vetoed, strict=True)
        ):
            if self.same_text[i]:
                out[i] = self.own[i]
                continue
            ok = (~vetoed) & (dist <= threshold)
            if ok.any():
                out[i] = cands[np.flatnonzero(ok)[0]]
        return out

    def figures(self, served_entry: np.ndarray) -> Figures:
        labels = np.array([p.label for p in self.pairs], dtype=bool)
        served = served_entry >= 0
        hit_own = served & (served_entry == self.own)
        answered = served & self.rights(served_entry)
        correct = answered & labels
        served_count = int(served.sum())
        positives = int(labels.sum())
        categories: list[CategoryFigures] = []
        names = np.array([p.category for p in self.pairs])
        for category in sorted(set(names.tolist())):
            mask = names == category
            pos = int((mask & labels).sum())
            neg = int((mask & ~labels).sum())
            categories.append(
                CategoryFigures(
                    category=category,
                    positives=pos,
                    negatives=neg,
                    served_rate=float((correct & mask).sum() / pos) if pos else 0.0,
                    wrong_served_rate=float((hit_own & mask & ~labels).sum() / neg) if neg else 0.0,
                )
            )
        return Figures(
            precision=float(answered.sum() / served_count) if served_count else 1.0,
            served=float(correct.sum() / positives) if positives else 0.0,
            served_count=served_count,
            correct=int(correct.sum()),
            categories=categories,
            wrong=served_count - int(answered.sum()),
        )

    def curve(self, cuts: Sequence[float]) -> list[CurvePoint]:
        """Precision and served at each cut, computed from each query's best candidate in one pass."""
        labels = np.array([p.label for p in self.pairs], dtype=bool)
        best = np.full(len(self.pairs), -1.0)
        right = np.zeros(len(self.pairs), dtype=bool)
        for i, (cands, scores, vetoed) in enumerate(
            zip(self.candidates, self.scores, self.vetoed, strict=True)
        ):
            if self.same_text[i]:
                best[i], right[i] = 2.0, True
            elif (~vetoed).any():
                j = np.flatnonzero(~vetoed)[np.argmax(scores[~vetoed])]
                best[i], right[i] = float(scores[j]), self.right(i, int(cands[j]))
        positives = max(int(labels.sum()), 1)
        points: list[CurvePoint] = []
        for cut in cuts:
            served = best >= cut
            answered, correct = int((served & right).sum()), int((served & right & labels).sum())
            count = int(served.sum())
            points.append(
                CurvePoint(
                    float(cut), answered / count if count else 1.0, correct / positives, count, correct
                )
            )
        return points

    def distance_curve(self, thresholds: Sequence[float]) -> list[CurvePoint]:
        """The baseline's precision and served at each static distance threshold (legacy checks on)."""
        labels = np.array([p.label for p in self.pairs], dtype=bool)
        positives = max(int(labels.sum()), 1)
        points: list[CurvePoint] = []
        for threshold in thresholds:
            entry = self.baseline_entry(threshold)
            served = entry >= 0
            right = served & self.rights(entry)
            answered, correct = int(right.sum()), int((right & labels).sum())
            count = int(served.sum())
            points.append(
                CurvePoint(
                    float(threshold), answered / count if count else 1.0, correct / positives, count, correct
                )
            )
        return points


def question_groups(pairs: Sequence[Pair]) -> dict[str, int]:
    """A number per normalised text, equal for texts that ask the same question: joined by a label-1 pair
    (directly or through a chain of them) or by the same ``question`` field on label-1 pairs."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for pair in pairs:
        a, b = normalize_prompt(pair.text_a), normalize_prompt(pair.text_b)
        root(a), root(b)
        if pair.label:
            parent[root(a)] = root(b)
            if pair.question:
                parent[root(f"\0question:{pair.question}")] = root(b)
    numbers: dict[str, int] = {}
    return {
        node: numbers.setdefault(root(node), len(numbers))
        for node in list(parent)
        if not node.startswith("\0")
    }


def simulate(
    pairs: Sequence[Pair],
    vectors_a: np.ndarray,
    vectors_b: np.ndarray,
    verifier: Verifier | None,
    cap: float = DEFAULT_CAP,
    k: int = DEFAULT_K,
) -> Simulation:
    """Search every ``text_b`` among the distinct ``text_a`` and score its candidates.

    ``vectors_a[i]``/``vectors_b[i]`` are the bundled model's unit vectors of pair i's texts. Without a
    verifier, scores are 1 - distance (for baselines and for training data collection).
    """
    pairs = list(pairs)
    keys = [normalize_prompt(p.text_a) for p in pairs]
    entry_of: dict[str, int] = {}
    entries: list[str] = []
    entry_rows: list[int] = []
    for i, key in enumerate(keys):
        if key not in entry_of:
            entry_of[key] = len(entries)
            entries.append(pairs[i].text_a)
            entry_rows.append(i)
    index = np.asarray(vectors_a, dtype=np.float32)[entry_rows]
    queries = np.asarray(vectors_b, dtype=np.float32)
    own = np.array([entry_of[key] for key in keys], dtype=np.int64)
    query_keys = [normalize_prompt(p.text_b) for p in pairs]
    same_text = np.array([qk == key for qk, key in zip(query_keys, keys, strict=True)], dtype=bool)

    candidates: list[np.ndarray] = []
    distances: list[np.ndarray] = []
    block = 2048
    for start in range(0, len(pairs), block):
        sims = queries[start : start + block] @ index.T
        for row, offset in enumerate(range(start, min(start + block, len(pairs)))):
            exact = entry_of.get(query_keys[offset])
            if exact is not None:
                sims[row, exact] = -2.0  # an exact repeat is served before the search
            top = (
                np.argpartition(-sims[row], min(k, len(entries) - 1))[:k]
                if len(entries) > k
                else np.arange(len(entries))
            )
            top = top[np.argsort(-sims[row, top])]
            dist = 1.0 - sims[row, top]
            keep = dist <= cap
            candidates.append(top[keep].astype(np.int64))
            distances.append(dist[keep].astype(np.float32))

    flat_query = np.repeat(np.arange(len(pairs)), [len(c) for c in candidates])
    flat_entry = np.concatenate(candidates) if candidates else np.zeros(0, dtype=np.int64)
    if verifier is not None and len(flat_entry):
        scores, vetoes, near = verifier.assess_pairs(
            [pairs[i].text_b for i in flat_query],
            queries[flat_query],
            [entries[j] for j in flat_entry],
            index[flat_entry],
        )
        # A near repeat passes at every cut, as in ``Verifier.verdicts``.
        flat_scores = np.where(near, NEAR_REPEAT_SCORE, scores)
        flat_veto = np.array([v is not None for v in vetoes], dtype=bool)
    else:
        flat_scores = 1.0 - (np.concatenate(distances) if distances else np.zeros(0))
        flat_veto = np.array(
            [
                critical.rejection_reason(pairs[i].text_b, entries[j]) is not None
                for i, j in zip(flat_query, flat_entry, strict=True)
            ],
            dtype=bool,
        )
    flat_legacy = np.array(
        [
            legacy_rejection_reason(pairs[i].text_b, entries[j]) is not None
            for i, j in zip(flat_query, flat_entry, strict=True)
        ],
        dtype=bool,
    )
    bounds = np.cumsum([0] + [len(c) for c in candidates])
    groups = question_groups(pairs)
    return Simulation(
        pairs=pairs,
        own=own,
        entries=entries,
        candidates=candidates,
        distances=distances,
        scores=[flat_scores[bounds[i] : bounds[i + 1]] for i in range(len(pairs))],
        vetoed=[flat_veto[bounds[i] : bounds[i + 1]] for i in range(len(pairs))],
        legacy_vetoed=[flat_legacy[bounds[i] : bounds[i + 1]] for i in range(len(pairs))],
        same_text=same_text,
        entry_group=np.array([groups[normalize_prompt(text)] for text in entries], dtype=np.int64),
        query_group=np.array([groups[key] for key in query_keys], dtype=np.int64),
    )


def pairwise(
    pairs: Sequence[Pair],
    vectors_a: np.ndarray,
    vectors_b: np.ndarray,
    verifier: Verifier,
    cuts: Sequence[float],
) -> tuple[list[CurvePoint], CurvePoint]:
    """Each pair judged alone (serve text_a for text_b?): the verifier's curve over ``cuts``, and the
    baseline (distance <= 0.15 and the legacy checks)."""
    labels = np.array([p.label for p in pairs], dtype=bool)
    positives = max(int(labels.sum()), 1)
    texts_a, texts_b = [p.text_a for p in pairs], [p.text_b for p in pairs]
    scores, vetoes, near = verifier.assess_pairs(texts_b, vectors_b, texts_a, vectors_a)
    vetoed = np.array([v is not None for v in vetoes], dtype=bool)
    same = np.array(
        [normalize_prompt(a) == normalize_prompt(b) for a, b in zip(texts_a, texts_b, strict=True)]
    )
    same = same | (near & ~vetoed)

    def point(cut: float, served: np.ndarray) -> CurvePoint:
        count, correct = int(served.sum()), int((served & labels).sum())
        return CurvePoint(float(cut), correct / count if count else 1.0, correct / positives, count, correct)

    curve = [point(cut, same | (~vetoed & (scores >= cut))) for cut in cuts]
    distance = 1.0 - np.einsum("ij,ij->i", np.asarray(vectors_a), np.asarray(vectors_b))
    legacy = np.array(
        [legacy_rejection_reason(b, a) is not None for a, b in zip(texts_a, texts_b, strict=True)]
    )
    return curve, point(BASELINE_THRESHOLD, same | (~legacy & (distance <= BASELINE_THRESHOLD)))


def cap_recall(simulation: Simulation) -> float:
    """Share of label-1 pairs with an entry asking their question among their candidates (or whose two
    texts are the same prompt)."""
    hits = [
        bool(simulation.same_text[i] or any(simulation.right(i, int(j)) for j in cands))
        for i, cands in enumerate(simulation.candidates)
        if simulation.pairs[i].label == 1
    ]
    return float(np.mean(hits)) if hits else 0.0


def default_cuts() -> list[float]:
    return [round(c, 3) for c in np.linspace(0.0, 1.0, 201)]


def evaluate_pairs(
    pairs: Sequence[Pair],
    verifier: Verifier,
    embed_fn: EmbedFn,
    target_precision: float | None = None,
    *,
    cap: float = DEFAULT_CAP,
    k: int = DEFAULT_K,
) -> EvaluationReport:
    """Simulate the cache on ``pairs`` with ``verifier`` at ``target_precision`` (its default when None).

    ``embed_fn`` turns texts into the bundled model's unit vectors (``corpus.bundled_embed_fn()``, or a
    cached ``corpus.VectorCache(...).vectors``).
    """
    pairs = list(pairs)
    target = verifier.default_target_precision if target_precision is None else target_precision
    cut = verifier.cut_for_precision(target)
    vectors_a = np.asarray(embed_fn([p.text_a for p in pairs]), dtype=np.float32)
    vectors_b = np.asarray(embed_fn([p.text_b for p in pairs]), dtype=np.float32)
    simulation = simulate(pairs, vectors_a, vectors_b, verifier, cap=cap, k=k)
    pair_curve, pair_baseline = pairwise(pairs, vectors_a, vectors_b, verifier, [*default_cuts(), cut])
    return EvaluationReport(
        pairs=len(pairs),
        positives=sum(p.label for p in pairs),
        cap=cap,
        k=k,
        cap_recall=cap_recall(simulation),
        target_precision=target,
        cut=cut,
        verifier=simulation.figures(simulation.served_entry(cut)),
        baseline=simulation.figures(simulation.baseline_entry()),
        curve=simulation.curve(default_cuts()),
        baseline_curve=simulation.distance_curve([round(t, 2) for t in np.arange(0.05, cap + 1e-9, 0.01)]),
        pairwise_verifier=pair_curve[-1],
        pairwise_baseline=pair_baseline,
        pairwise_curve=pair_curve[:-1],
        simulation=simulation,
    )
