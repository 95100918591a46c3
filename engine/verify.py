"""Verification of candidates: more than one static threshold.

Embedding distance alone confuses prompts that differ in a detail that changes the answer: "convert 5 km
to miles" and "convert 50 km to miles" sit at a distance of about 0.03. A candidate within the distance
threshold is served only when these checks also pass; each rejection says why, so the query lab can show it.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NEGATIONS = frozenset(
    {"not", "no", "never", "without", "don't", "doesn't", "isn't", "aren't", "can't", "won't"}
)
_WORD = re.compile(r"[a-z']+")


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def _negated(text: str) -> bool:
    return any(word in _NEGATIONS for word in _WORD.findall(text.lower()))


def rejection_reason(query: str, candidate: str) -> str | None:
    """Why ``candidate``'s answer must not be served for ``query``, or ``None`` when it may be."""
    if _numbers(query) != _numbers(candidate):
        return "numbers differ"
    if _negated(query) != _negated(candidate):
        return "negation differs"
    return None
