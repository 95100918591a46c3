"""Pair features for the learned verifier: what the two vectors and the two texts say about a pair.

Pure numpy and standard library, no model: the vectors are the bundled model's (unit, 384-d), given by the
caller. The features are symmetric in the two texts, so a pair scores the same whichever side is cached.

Groups, in column order:
- the vectors: cosine, then |u - v| and u * v (the classic sentence-pair features of InferSent/SBERT:
  the vector difference says *where* two texts differ, which cosine alone throws away);
- words: Jaccard of words, of content words and of character 3-grams, length ratio, whether the first
  word and the question word agree, Jaccard of word bigrams (order); the same word overlap weighted by rarity (IDF from QQP train), and
  the rarity of the rarest word only one side has ("Yercaud" vs "Yelagiri" weighs more than "a" vs "the");
- critical tokens (critical.py): one flag per rule, plus the one-sided forms the rules leave to the score
  (a number, a name or a product on one side only).

Everything a text contributes (its words, 3-grams, critical-token facts, near-repeat normal form) is
computed once per text and kept in an LRU cache keyed by the text (``text_facts``): a cached prompt that
is a candidate for many queries is analysed once, and the rules run once per pair for both the features
and the veto (``assess``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

import numpy as np

from engine.verification import critical, repeat

DIMENSION = 384
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_QUESTION_WORDS = frozenset(("what", "how", "why", "which", "who", "where", "when", "whom", "whose"))

LEXICAL_NAMES: tuple[str, ...] = (
    "word_jaccard",
    "content_jaccard",
    "char3_jaccard",
    "length_ratio",
    "first_word_same",
    "question_word_same",
    "both_questions",
    "bigram_jaccard",
    "idf_word_jaccard",
    "idf_rarest_unshared",
)
CRITICAL_NAMES: tuple[str, ...] = (
    *(f"rule_{name}" for name in critical.RULE_NAMES),
    "number_one_sided",
    "names_one_sided",
    "products_one_sided",
    "negation_any",
)
SCALAR_NAMES: tuple[str, ...] = ("cosine", *LEXICAL_NAMES, *CRITICAL_NAMES)
#: cosine + lexical + critical, then |u - v| (384) and u * v (384).
WIDTH = len(SCALAR_NAMES) + 2 * DIMENSION


@dataclass(frozen=True)
class Idf:
    """Inverse document frequency of words: ``log(documents / (1 + frequency))``; unknown words take
    ``unknown`` (rarer than anything seen). Without a table every word weighs the same."""

    weights: Mapping[str, float]
    unknown: float

    def __call__(self, word: str) -> float:
        return self.weights.get(word, self.unknown)


UNIFORM_IDF = Idf({}, 1.0)


@dataclass(frozen=True, slots=True)
class TextFacts:
    """What one text contributes to every pair it is in."""

    words: frozenset[str]
    content: frozenset[str]
    grams: frozenset[str]
    bigrams: frozenset[tuple[str, str]]
    length: int
    first: str
    question: str
    is_question: bool
    critical: critical.Facts
    #: The near-repeat normal form (repeat.py).
    form: tuple[str, ...]


@lru_cache(maxsize=critical.TEXT_CACHE_SIZE)
def text_facts(text: str) -> TextFacts:
    lower = text.lower().replace("\u2019", "'")
    words = _WORD.findall(lower)
    squashed = " ".join(words)
    return TextFacts(
        words=frozenset(words),
        content=frozenset(w for w in words if w not in critical._STOP),
        grams=frozenset(squashed[i : i + 3] for i in range(max(len(squashed) - 2, 1))),
        bigrams=frozenset(pairwise(words)),
        length=len(words),
        first=words[0] if words else "",
        question=next((w for w in words[:4] if w in _QUESTION_WORDS), ""),
        is_question=text.rstrip().endswith("?"),
        critical=critical.facts(text),
        form=repeat.normal_form(text),
    )


def clear_caches() -> None:
    """Forget every text seen (the bench uses it to time cold texts)."""
    text_facts.cache_clear()
    critical.facts.cache_clear()
    critical.tokens.cache_clear()
    critical._squashed.cache_clear()


def _jaccard(a: frozenset[Any], b: frozenset[Any]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _pair_scalars(
    ta: TextFacts, tb: TextFacts, text_a: str, text_b: str, idf: Idf
) -> tuple[list[float], dict[str, str]]:
    """The lexical and critical-token features of a pair (everything but the vectors), and the rules'
    flags (rule name -> reason, in the order ``critical.rejection_reason`` reports them)."""
    shared = ta.words & tb.words
    unshared = ta.words ^ tb.words
    shared_weight = sum(idf(w) for w in shared)
    union_weight = shared_weight + sum(idf(w) for w in unshared)
    rarest = max((idf(w) for w in unshared), default=0.0)
    lexical = [
        _jaccard(ta.words, tb.words),
        _jaccard(ta.content, tb.content),
        _jaccard(ta.grams, tb.grams),
        min(ta.length, tb.length) / max(ta.length, tb.length, 1),
        float(ta.first == tb.first),
        float(ta.question == tb.question),
        float(ta.is_question and tb.is_question),
        _jaccard(ta.bigrams, tb.bigrams),
        shared_weight / union_weight if union_weight > 0 else 1.0,
        rarest / idf.unknown,
    ]
    fa, fb = ta.critical, tb.critical
    fired = critical.pair_flags(fa, fb, text_a, text_b)
    names_a = critical.one_sided_names(fa.names, fb, text_b)
    names_b = critical.one_sided_names(fb.names, fa, text_a)
    flags = [float(name in fired) for name in critical.RULE_NAMES]
    flags += [
        float(critical.number_one_sided(fa, fb)),
        float(bool(names_a) or bool(names_b)),
        float(bool(fa.products ^ fb.products)),
        float(fa.negated or fb.negated),
    ]
    return lexical + flags, fired


def scalar_features(text_a: str, text_b: str, idf: Idf = UNIFORM_IDF) -> list[float]:
    """The lexical and critical-token features of a pair (everything but the vectors)."""
    return _pair_scalars(text_facts(text_a), text_facts(text_b), text_a, text_b, idf)[0]


@dataclass(frozen=True, slots=True)
class Assessment:
    """Features of n pairs, with what the rules and the near-repeat test said about each."""

    features: np.ndarray  # (n, WIDTH) float32
    #: The first critical-token reason per pair (``critical.rejection_reason``'s), or None.
    vetoes: list[str | None]
    near_repeats: np.ndarray  # (n,) bool


def assess(
    texts_a: Sequence[str],
    vectors_a: np.ndarray,
    texts_b: Sequence[str],
    vectors_b: np.ndarray,
    idf: Idf = UNIFORM_IDF,
) -> Assessment:
    """Features, vetoes and near repeats of the pairs (texts_a[i], texts_b[i]), in one pass of the rules.

    The vector features of all pairs are built as one matrix; each text is analysed once (``text_facts``).
    """
    n = len(texts_a)
    u = np.asarray(vectors_a, dtype=np.float32).reshape(n, DIMENSION)
    v = np.asarray(vectors_b, dtype=np.float32).reshape(len(texts_b), DIMENSION)
    out = np.empty((n, WIDTH), dtype=np.float32)
    scalars = len(SCALAR_NAMES)
    cosine = np.einsum("ij,ij->i", u, v)
    out[:, 0] = cosine
    np.subtract(u, v, out=out[:, scalars : scalars + DIMENSION])
    np.abs(out[:, scalars : scalars + DIMENSION], out=out[:, scalars : scalars + DIMENSION])
    np.multiply(u, v, out=out[:, scalars + DIMENSION :])
    vetoes: list[str | None] = []
    near = np.zeros(n, dtype=bool)
    rows: list[list[float]] = []
    for i, (a, b) in enumerate(zip(texts_a, texts_b, strict=True)):
        ta, tb = text_facts(a), text_facts(b)
        row, fired = _pair_scalars(ta, tb, a, b, idf)
        rows.append(row)
        vetoes.append(next(iter(fired.values())) if fired else None)
        near[i] = repeat.is_near_repeat(ta.form, tb.form, float(cosine[i]), fired)
    if n:
        out[:, 1:scalars] = np.asarray(rows, dtype=np.float32)
    return Assessment(out, vetoes, near)


def pair_features(
    texts_a: Sequence[str],
    vectors_a: np.ndarray,
    texts_b: Sequence[str],
    vectors_b: np.ndarray,
    idf: Idf = UNIFORM_IDF,
) -> np.ndarray:
    """An (n, WIDTH) float32 matrix of features for the pairs (texts_a[i], texts_b[i])."""
    return assess(texts_a, vectors_a, texts_b, vectors_b, idf).features


def idf_table(texts: Sequence[str], min_count: int = 2) -> Idf:
    """IDF of the words of ``texts`` (each distinct text one document); words seen fewer than
    ``min_count`` times are left out and weigh as unknown (the rarest)."""
    documents = {t.lower().replace("\u2019", "'") for t in texts}
    counts: dict[str, int] = {}
    for doc in documents:
        for word in set(_WORD.findall(doc)):
            counts[word] = counts.get(word, 0) + 1
    total = max(len(documents), 1)
    weights = {w: math.log(total / (1 + c)) for w, c in counts.items() if c >= min_count}
    return Idf(weights, math.log(total / (1 + min_count - 1)) if weights else 1.0)
