"""Near repeats: two prompts that are one prompt once the way of typing it is taken away.

"what's the capital of france" and "What is the capital of France?" ask the same thing in the same words;
only case, a contraction and a question mark differ. A model trained on QQP can still score such a pair
low (the shipped MLP gave it 0.40), so this rule passes it outright, like the exact repeats the cache
serves before any search. It is deliberately narrow:

1. the normal forms are equal: Unicode NFKC, casefolded, curly quotes straightened, contractions
   expanded ("what's" -> "what is", "can't" -> "can not"), punctuation dropped, and chat filler removed
   (greetings, thanks, "please", "can you tell me", "quick question"); or
2. the normal forms hold the same words, the content words (not function words) come in the same order,
   and the vectors agree (cosine >= ``REORDER_COSINE``): "Can you tell me what X is?" / "What is X?".

Either way, no critical-token rule may object (``critical.pair_flags`` is empty): a changed number,
date, negation, platform, direction or name is never a near repeat. Order matters for content words so
that "did alice beat bob" / "did bob beat alice" (lower case, so no names for the rules to see) stays
with the learned score.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

#: The cosine a reordered near repeat needs (route 2 above).
REORDER_COSINE = 0.9

_CONTRACTIONS = {
    "what's": "what is",
    "who's": "who is",
    "where's": "where is",
    "when's": "when is",
    "how's": "how is",
    "why's": "why is",
    "that's": "that is",
    "there's": "there is",
    "here's": "here is",
    "it's": "it is",
    "he's": "he is",
    "she's": "she is",
    "let's": "let us",
    "i'm": "i am",
    "you're": "you are",
    "we're": "we are",
    "they're": "they are",
    "i've": "i have",
    "you've": "you have",
    "we've": "we have",
    "they've": "they have",
    "i'll": "i will",
    "you'll": "you will",
    "it'll": "it will",
    "i'd": "i would",
    "you'd": "you would",
    "can't": "can not",
    "cannot": "can not",
    "won't": "will not",
    "shan't": "shall not",
    "ain't": "is not",
}
_NOT_SUFFIX = "n't"
#: Chat filler: words and phrases that carry no part of the question. Longest phrases first.
_FILLER_PHRASES = (
    "can you please tell me",
    "could you please tell me",
    "can you tell me",
    "could you tell me",
    "would you tell me",
    "i would like to know",
    "i want to know",
    "i wonder",
    "quick question",
    "thank you",
    "thanks in advance",
    "good morning",
    "good evening",
)
_FILLER_WORDS = frozenset(
    {"please", "pls", "plz", "hey", "hi", "hello", "thanks", "thx", "ty", "um", "uh", "btw", "ok", "okay"}
)
#: Words (any script), and symbols as tokens of their own: "the ~ symbol" and "the ✢ symbol" differ.
_WORD = re.compile(r"[^\W_]+(?:['.+#][^\W_]+)*[+#]*|[^\w\s.,!?;:'\"()\[\]\-]")
_FILLER = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in _FILLER_PHRASES) + r")\b")
#: Function words: a reorder of these alone keeps the question (route 2). Content words must keep their
#: order.
_FUNCTION = frozenset(
    {
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "do",
        "does",
        "did",
        "i",
        "me",
        "my",
        "you",
        "your",
        "we",
        "it",
        "this",
        "that",
        "what",
        "which",
        "who",
        "how",
        "where",
        "when",
        "why",
        "can",
        "could",
        "would",
        "should",
        "will",
        "of",
        "in",
        "on",
        "at",
        "for",
        "to",
        "about",
        "so",
    }
)


def normal_form(text: str) -> tuple[str, ...]:
    """The words of ``text`` with its typing taken away (see the module docstring), in order."""
    lower = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'").replace("`", "'")
    words: list[str] = []
    for word in _WORD.findall(lower):
        if word in _CONTRACTIONS:
            words.extend(_CONTRACTIONS[word].split())
        elif word.endswith(_NOT_SUFFIX):
            words.extend((word[: -len(_NOT_SUFFIX)], "not"))
        else:
            words.append(word)
    joined = _FILLER.sub(" ", " ".join(words))
    return tuple(w for w in joined.split() if w not in _FILLER_WORDS)


def content_order(form: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(w for w in form if w not in _FUNCTION)


def is_near_repeat(
    form_a: tuple[str, ...], form_b: tuple[str, ...], cosine: float, critical_flags: dict[str, str]
) -> bool:
    """Whether two texts with these normal forms, vectors at ``cosine`` and these critical-token flags
    are one prompt (the module docstring gives the two routes)."""
    if critical_flags or not form_a or not form_b:
        return False
    if form_a == form_b:
        return True
    return (
        cosine >= REORDER_COSINE
        and Counter(form_a) == Counter(form_b)
        and content_order(form_a) == content_order(form_b)
    )
