"""Verification of candidates by critical tokens, for the cache's static-threshold path.

Embedding distance alone confuses prompts that differ in a detail that changes the answer: "convert 5 km
to miles" and "convert 50 km to miles" sit at a distance of about 0.03. A candidate within the distance
threshold is served only when the critical-token rules also pass (engine/verification/critical.py:
numbers with units, years and versions, dates, negation, platforms and products, direction, names).

``rejection_reason`` keeps its old contract: the kind of difference ("numbers differ", "negation
differs", "platform differs"...), which the cache, the client and the query lab show and compare.
``rejection_detail`` gives the whole reason ("numbers differ: 5 vs 50"). The learned verifier
(engine/verification/model.py, ``Verifier.verdicts``) supersedes this path once the cache calls it.
"""

from __future__ import annotations

from engine.verification import critical


def rejection_detail(query: str, candidate: str) -> str | None:
    """Why ``candidate``'s answer must not be served for ``query``, in full, or ``None`` when it may be.

    A number on one side only is refused here (``strict_numbers``): without the learned score there is
    nothing else to catch "lose 10 kg" served for "lose weight".
    """
    return critical.rejection_reason(query, candidate, strict_numbers=True)


def rejection_reason(query: str, candidate: str) -> str | None:
    """The kind of difference that refuses ``candidate`` for ``query``, or ``None`` when it may be served."""
    detail = rejection_detail(query, candidate)
    return None if detail is None else detail.split(":", 1)[0]
