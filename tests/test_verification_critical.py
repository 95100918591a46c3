"""The critical-token rules: each one refuses its near miss and lets the paraphrase through, both ways."""

from __future__ import annotations

import pytest

from engine import verify
from engine.verification.critical import facts, rejection_reason

NEAR_MISSES = [
    ("How do I convert 5 km to miles", "How do I convert 50 km to miles", "numbers differ: 5 vs 50"),
    ("How far is 5 km in miles?", "How far is 5 miles in km?", "units differ"),
    ("How to install Python 3.11 on Ubuntu", "How to install Python 3.12 on Ubuntu", "versions differ"),
    ("Who won the World Cup in 2010?", "Who won the World Cup in 2014?", "years differ: 2010 vs 2014"),
    ("Concerts in Boston on March 3", "Concerts in Boston on July 3", "dates differ"),
    ("What's the weather in Paris today?", "What's the weather in Paris tomorrow?", "dates differ"),
    ("Can I eat eggs while pregnant?", "Can I not eat eggs while pregnant?", "negation differs"),
    ("Why can\u2019t I sleep at night?", "Why can I sleep at night?", "negation differs"),
    ("How do I make bread with yeast?", "How do I make bread without yeast?", "negation differs"),
    (
        "My laptop turns on after the update",
        "My laptop no longer turns on after the update",
        "negation differs",
    ),
    ("List all fruits except bananas", "List all fruits including bananas", "negation differs"),
    (
        "How do I reverse a list in Python?",
        "How do I reverse a list in Java?",
        "platform differs: python vs java",
    ),
    (
        "How to install Docker on Windows",
        "How to install Docker on macOS",
        "platform differs: windows vs macos",
    ),
    (
        "Best note taking apps for iPhone",
        "Best note taking apps for Android",
        "platform differs: ios vs android",
    ),
    ("How to convert USD to EUR", "How to convert EUR to USD", "direction reversed: usd->eur vs eur->usd"),
    ("How do I get from Boston to Chicago?", "How do I get from Chicago to Boston?", "direction reversed"),
    ("Did Federer beat Nadal in the final?", "Did Nadal beat Federer in the final?", "roles swapped"),
    ("Is Canada bigger than Brazil?", "Is Brazil bigger than Canada?", "roles swapped"),
    # A name of two words is one name: "brad" must not stand between "pitt" and "divorce".
    ("Why did Brad Pitt divorce Taylor Swift?", "Why did Taylor Swift divorce Brad Pitt?", "roles swapped"),
    (
        "What does Kobe Bryant think of LeBron James?",
        "What does LeBron James think of Kobe Bryant?",
        "roles swapped",
    ),
    ("What hotel in Yercaud would be safe?", "What hotel in Yelagiri would be safe?", "entities differ"),
    ("How do I use os.path.join?", "How do I use os.path.split?", "entities differ"),
    ("What does my_function return?", "What does other_function return?", "entities differ"),
]

PARAPHRASES = [
    ("What is machine learning?", "Can you explain machine learning?"),
    ("how do i reverse a list in python", "what's the way to reverse a Python list"),
    ("How do I convert 5 km to miles?", "how do i convert 5 km to miles"),
    ("How to install Python 3.11 on Ubuntu", "Installing Python 3.11 on Ubuntu, how?"),
    ("Why can't I sleep at night?", "Why am I not able to sleep at night?"),
    ("How do I lose weight without dieting?", "How can I lose weight if I don't diet?"),
    ("Which is better, Python or Java?", "Which is better, Java or Python?"),
    ("What is the difference between TCP and UDP?", "Difference between UDP and TCP?"),
    ("What Is The Best Way To Learn Python?", "how should i study python"),
    ("Should non-Muslims visit Mecca? Why or why not?", "Can non-Muslims visit Mecca?"),
    ("What is the capital of France?", "What's the capital city of France?"),
    # A unit on one side only, the numbers agreeing; "15k" is 15000.
    ("Why ban 500 and 1000 rupee notes?", "Why ban Rs 500 and Rs 1000 notes?"),
    ("Which phone is best under 15k?", "Which phone is best under 15000?"),
    ("How do I use CamelCase names in Java?", "Using camelcase names in java"),
    # The same two-word names in the same roles, and a symmetric link between them.
    ("Why did Brad Pitt divorce Angelina Jolie?", "What made Brad Pitt divorce Angelina Jolie?"),
    ("Who is richer, Elon Musk or Jeff Bezos?", "Who is richer, Jeff Bezos or Elon Musk?"),
]


@pytest.mark.parametrize(("query", "candidate", "expected"), NEAR_MISSES)
def test_each_rule_refuses_its_near_miss_both_ways(query: str, candidate: str, expected: str) -> None:
    forward = rejection_reason(query, candidate)
    backward = rejection_reason(candidate, query)
    assert forward is not None and backward is not None
    assert expected.split(":")[0] in forward and expected.split(":")[0] in backward
    if ":" in expected:
        assert forward == expected


@pytest.mark.parametrize(("query", "candidate"), PARAPHRASES)
def test_paraphrases_pass_both_ways(query: str, candidate: str) -> None:
    assert rejection_reason(query, candidate) is None
    assert rejection_reason(candidate, query) is None


def test_a_number_on_one_side_only_is_left_to_the_score_but_refused_on_the_legacy_path() -> None:
    query, candidate = "How do I lose 10 kg?", "How do I lose weight?"
    assert rejection_reason(query, candidate) is None
    assert rejection_reason(query, candidate, strict_numbers=True) == "numbers differ: 10 vs none"


def test_engine_verify_keeps_its_reason_kinds() -> None:
    # The cache, the client and the query lab compare these exact strings.
    assert verify.rejection_reason("Convert 50 km to miles", "Convert 5 km to miles") == "numbers differ"
    assert verify.rejection_reason("Can I eat eggs?", "Can I not eat eggs?") == "negation differs"
    assert (
        verify.rejection_detail("Convert 50 km to miles", "Convert 5 km to miles")
        == "numbers differ: 50 vs 5"
    )
    assert verify.rejection_reason("What is machine learning?", "Can you explain machine learning?") is None


def test_numbers_are_read_with_their_units_and_written_forms() -> None:
    assert facts("Run 5km then 3.50 miles and $20").number_units == (
        ("20", "usd"),
        ("3.5", "mile"),
        ("5", "km"),
    )
    assert facts("two cats and 1,000 dogs").numbers == ("1000", "2")
    assert facts("phones under 15k or 1.5K dollars, a 2bn deal").numbers == ("1500", "15000", "2000000000")
