"""A small set of sample questions and answers, for the demo, the screenshots and first-time operators."""

from __future__ import annotations

SAMPLE_PAIRS: list[tuple[str, str]] = [
    (
        "What is machine learning?",
        "Machine learning is a field of AI where systems learn patterns from data.",
    ),
    (
        "How do I reverse a list in Python?",
        "Use my_list.reverse() in place, or my_list[::-1] for a reversed copy.",
    ),
    ("What is the capital of France?", "Paris is the capital of France."),
    (
        "How does a semantic cache work?",
        "It embeds prompts and serves a stored answer for a close enough prompt.",
    ),
    ("What is the boiling point of water at sea level?", "100 degrees Celsius (212 degrees Fahrenheit)."),
    ("How do I create a virtual environment in Python?", "Run `python -m venv .venv`, then activate it."),
    ("What is Redis?", "Redis is an in-memory data store used as a database, cache and message broker."),
    (
        "Explain what an HTTP 503 status means.",
        "503 Service Unavailable: the server cannot handle the request now.",
    ),
    ("How many days are in a leap year?", "A leap year has 366 days."),
    (
        "What does HNSW stand for?",
        "Hierarchical Navigable Small World, a graph index for nearest-neighbour search.",
    ),
    (
        "How do I undo the last git commit?",
        "Run `git reset --soft HEAD~1` to undo it and keep the changes staged.",
    ),
    ("What is the speed of light?", "About 299,792 kilometres per second in a vacuum."),
]

#: Paraphrases of some sample prompts, and one unrelated prompt, to show hits and a miss.
SAMPLE_QUERIES: list[str] = [
    "Can you explain machine learning?",
    "what's the capital city of france",
    "How do I make a Python virtualenv?",
    "At what temperature does water boil at sea level?",
    "What does HTTP status 503 mean?",
    "How do I reverse a list in Python?",
    "What is the best pizza topping?",
]
