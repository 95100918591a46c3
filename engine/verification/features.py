"""Pair features for the learned verifier: what the two vectors and the two texts say about a pair.

Pure numpy and standard library, no model: the vectors are the bundled model's (unit, 384-d), given by the
caller. The features are symmetric in the two texts, so a pair scores the same whichever side is cached.

Groups, in column order:
- the vectors: cosine, then |u - v| and u * v (the classic sentence-pair features of InferSent/SBERT:
  the vector difference says *where* two texts differ, which cosine alone throws away);
- words: Jaccard of words, of content words and of character 3-grams, length ratio, whether the first
  word and the question word agree;
- critical tokens (critical.py): one flag per rule, plus the one-sided forms the rules leave to the score
  (a number, a name or a product on one side only).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from engine.verification import critical

DIMENSION = 384
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_QUESTION_WORDS = ("what", "how", "why", "which", "who", "where", "when", "whom", "whose")

LEXICAL_NAMES: tuple[str, ...] = (
    "word_jaccard",
    "content_jaccard",
    "char3_jaccard",
    "length_ratio",
    "first_word_same",
    "question_word_same",
    "both_questions",
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


@lru_cache(maxsize=4096)
def _text_parts(text: str) -> tuple[frozenset[str], frozenset[str], frozenset[str], int, str, str]:
    lower = text.lower().replace("\u2019", "'")
    words = _WORD.findall(lower)
    content = frozenset(w for w in words if w not in critical._STOP)
    squashed = " ".join(words)
    grams = frozenset(squashed[i : i + 3] for i in range(max(len(squashed) - 2, 1)))
    first = words[0] if words else ""
    question = next((w for w in words[:4] if w in _QUESTION_WORDS), "")
    return frozenset(words), content, grams, len(words), first, question


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def scalar_features(text_a: str, text_b: str) -> list[float]:
    """The lexical and critical-token features of a pair (everything but the vectors)."""
    words_a, content_a, grams_a, len_a, first_a, q_a = _text_parts(text_a)
    words_b, content_b, grams_b, len_b, first_b, q_b = _text_parts(text_b)
    lexical = [
        _jaccard(words_a, words_b),
        _jaccard(content_a, content_b),
        _jaccard(grams_a, grams_b),
        min(len_a, len_b) / max(len_a, len_b, 1),
        float(first_a == first_b),
        float(q_a == q_b),
        float(text_a.rstrip().endswith("?") and text_b.rstrip().endswith("?")),
    ]
    fa, fb = critical.facts(text_a), critical.facts(text_b)
    fired = critical.flags(text_a, text_b)
    names_a = critical.one_sided_names(fa.names, fb, text_b)
    names_b = critical.one_sided_names(fb.names, fa, text_a)
    flags = [float(name in fired) for name in critical.RULE_NAMES]
    flags += [
        float(critical.number_one_sided(fa, fb)),
        float(bool(names_a) or bool(names_b)),
        float(bool(fa.products ^ fb.products)),
        float(fa.negated or fb.negated),
    ]
    return lexical + flags


def pair_features(
    texts_a: Sequence[str], vectors_a: np.ndarray, texts_b: Sequence[str], vectors_b: np.ndarray
) -> np.ndarray:
    """An (n, WIDTH) float32 matrix of features for the pairs (texts_a[i], texts_b[i])."""
    u = np.asarray(vectors_a, dtype=np.float32).reshape(len(texts_a), DIMENSION)
    v = np.asarray(vectors_b, dtype=np.float32).reshape(len(texts_b), DIMENSION)
    cosine = np.einsum("ij,ij->i", u, v)[:, None]
    scalars = np.array(
        [scalar_features(a, b) for a, b in zip(texts_a, texts_b, strict=True)], dtype=np.float32
    ).reshape(len(texts_a), len(SCALAR_NAMES) - 1)
    return np.concatenate([cosine, scalars, np.abs(u - v), u * v], axis=1).astype(np.float32)
