"""Generate the near-miss pair set: chat-style paraphrases to serve, and look-alikes that must not be.

QQP has few of the pairs a chat cache meets: "What is machine learning?" / "Can you explain machine
learning?" (serve), "convert 5 km to miles" / "convert 50 km to miles" (never serve). This script writes
``data/near_misses.jsonl`` from templates and slot values, deterministically for a seed. Each category has
two disjoint pools of templates AND of slot values, one for ``train`` and one for ``report``, so the report
split measures whether the verifier learned the kind of difference rather than the words of the templates.

    python -m engine.verification.near_misses [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "near_misses.jsonl"

Templates = Sequence[tuple[str, str]]
Split = dict[str, object]

# Each category: {split: (template pairs, slot values)}. A template pair's two sides are text_a and text_b.
# {x}/{y} slots take values; a value is a string, or a tuple when a template needs related values.

CONCEPTS_TRAIN = [
    "machine learning",
    "photosynthesis",
    "inflation",
    "a black hole",
    "blockchain",
    "the stock market",
    "quantum computing",
    "climate change",
    "a neural network",
    "compound interest",
    "the immune system",
    "democracy",
    "an API",
    "recursion",
    "cloud computing",
    "a mortgage",
    "DNA",
    "the greenhouse effect",
    "supply and demand",
    "a virus",
]
CONCEPTS_REPORT = [
    "deep learning",
    "gravity",
    "a recession",
    "cryptocurrency",
    "the theory of relativity",
    "an operating system",
    "evolution",
    "a hedge fund",
    "a compiler",
    "the water cycle",
    "game theory",
    "a credit score",
    "natural language processing",
    "plate tectonics",
    "a vaccine",
    "object oriented programming",
]
TASKS_TRAIN = [
    "reverse a list",
    "read a csv file",
    "sort a dictionary by value",
    "remove duplicates from a list",
    "parse json",
    "get the current date",
    "split a string",
    "check if a file exists",
    "merge two lists",
    "make an http request",
]
TASKS_REPORT = [
    "concatenate strings",
    "convert a string to an integer",
    "iterate over a dictionary",
    "find the length of an array",
    "write to a text file",
    "generate a random number",
    "round a float to two decimals",
    "flatten a nested list",
]
LANGS_TRAIN = [("python", "Python"), ("java", "Java"), ("javascript", "JavaScript"), ("rust", "Rust")]
LANGS_REPORT = [("go", "Go"), ("c#", "C#"), ("ruby", "Ruby"), ("kotlin", "Kotlin"), ("php", "PHP")]

PARAPHRASE: dict[str, Templates] = {
    "train": [
        ("What is {c}?", "Can you explain {c}?"),
        ("what is {c}", "explain {c} to me"),
        ("What does {c} mean?", "What is the meaning of {c}?"),
        ("Explain {c} in simple terms", "What is {c}, in simple words?"),
        ("Tell me about {c}", "What can you tell me about {c}?"),
        ("how do I {t} in {l}", "what's the way to {t} in {L}"),
        ("How can I {t} in {L}?", "What is the best way to {t} in {L}?"),
        ("{L}: how to {t}?", "how to {t} using {l}"),
        ("What is the definition of {c}?", "Define {c}."),
        ("How does {c} work?", "Can you describe how {c} works?"),
    ],
    "report": [
        ("Could you give me an overview of {c}?", "Give me a quick overview of {c}"),
        ("I'd like to understand {c}.", "Help me understand {c}"),
        ("What exactly is {c}?", "So what is {c} exactly?"),
        ("Describe {c} briefly.", "Briefly, what is {c}?"),
        ("In {L}, how would I {t}?", "How would one {t} in {L}?"),
        ("need to {t} in {l}, how?", "How do you {t} in {L}?"),
        ("Show me how to {t} with {L}", "{L} code to {t}"),
        ("ELI5: {c}", "Explain {c} like I'm five"),
    ],
}

NEAR_REPEAT: dict[str, Templates] = {
    "train": [
        ("What is {c}?", "what is {c}"),
        ("What is {c}?", "What's {c}?"),
        ("How do I {t} in {L}?", "how do i {t} in {l}??"),
        ("Hey, what is {c}?", "What is {c}?"),
        ("Please explain {c}.", "Explain {c} please"),
        ("how to {t} in {l}", "How to {t} in {L}"),
    ],
    "report": [
        ("Quick question: what is {c}?", "what is {c}?"),
        ("What is {c} ?", "What is {c}? Thanks!"),
        ("how can i {t} in {l}", "How can I {t} in {L}? thx"),
        ("Can you tell me what {c} is?", "can you tell me what {c} is"),
    ],
}

NEGATION: dict[str, Templates] = {
    "train": [
        ("Can I eat {food} while pregnant?", "Can I not eat {food} while pregnant?"),
        ("Why is {food} good for you?", "Why is {food} not good for you?"),
        ("How do I make {dish} with {ing}?", "How do I make {dish} without {ing}?"),
        ("Should I take {med} with food?", "Should I never take {med} with food?"),
        ("Which foods contain {nutr}?", "Which foods don't contain {nutr}?"),
        ("Why is it safe to give {med} to a dog?", "Why is it not safe to give {med} to a dog?"),
        ("List all {cat} except {food}", "List all {cat} including {food}"),
    ],
    "report": [
        ("My laptop turns on after the update", "My laptop no longer turns on after the update"),
        ("Recipes for {dish} that use {ing}", "Recipes for {dish} that use no {ing}"),
        ("Does {med} cause drowsiness?", "Doesn't {med} cause drowsiness?"),
        ("Why do people like {food}?", "Why don't people like {food}?"),
        ("Things to do in {city} with kids", "Things to do in {city} without kids"),
        ("Is {food} allowed on a keto diet?", "Why isn't {food} allowed on a keto diet?"),
    ],
}
NEG_SLOTS = {
    "train": {
        "food": ["eggs", "sushi", "cheese", "coffee", "peanuts", "chocolate"],
        "dish": ["pancakes", "bread", "pizza dough", "cookies"],
        "ing": ["eggs", "yeast", "butter", "sugar"],
        "med": ["ibuprofen", "aspirin", "vitamin D"],
        "nutr": ["gluten", "lactose", "caffeine"],
        "cat": ["fruits", "vegetables", "nuts"],
        "city": ["Paris", "London"],
    },
    "report": {
        "food": ["honey", "tuna", "spinach", "rice", "bananas"],
        "dish": ["a cake", "lasagna", "muffins"],
        "ing": ["milk", "flour", "salt"],
        "med": ["paracetamol", "melatonin", "antihistamines"],
        "nutr": ["sodium"],
        "cat": ["grains"],
        "city": ["Rome", "Tokyo", "Berlin"],
    },
}

SWAP: dict[str, Templates] = {
    "train": [
        ("How do I get from {p} to {q}?", "How do I get from {q} to {p}?"),
        ("Is {p} bigger than {q}?", "Is {q} bigger than {p}?"),
        ("Did {m} beat {n} in the final?", "Did {n} beat {m} in the final?"),
        ("What is the capital of {p}?", "What is the capital of {q}?"),
        ("Who founded {co1}?", "Who founded {co2}?"),
        ("Flights from {p} to {q}", "Flights from {q} to {p}"),
        ("How old is {m}?", "How old is {n}?"),
    ],
    "report": [
        ("Train tickets {p} to {q}", "Train tickets {q} to {p}"),
        ("Why did {m} divorce {n}?", "Why did {n} divorce {m}?"),
        ("Is {p} safer than {q}?", "Is {q} safer than {p}?"),
        ("What currency does {p} use?", "What currency does {q} use?"),
        ("Who is the CEO of {co1}?", "Who is the CEO of {co2}?"),
        ("Where was {m} born?", "Where was {n} born?"),
    ],
}
SWAP_SLOTS = {
    "train": {
        "places": ["France", "Germany", "Spain", "Italy", "Chicago", "Boston", "Canada", "Brazil"],
        "people": ["Federer", "Nadal", "Messi", "Ronaldo", "Alice", "Bob"],
        "companies": ["Tesla", "Amazon", "Netflix", "Nvidia", "Airbnb"],
    },
    "report": {
        "places": ["Japan", "Mexico", "Kenya", "Norway", "Seattle", "Denver", "Peru", "Egypt"],
        "people": ["Serena Williams", "Djokovic", "Brad Pitt", "Beyonce", "Lebron"],
        "companies": ["Spotify", "Intel", "Uber", "Samsung", "Oracle"],
    },
}

NUMBERS: dict[str, Templates] = {
    "train": [
        ("How do I convert {n} km to miles?", "How do I convert {m} km to miles?"),
        ("convert {n} kg to pounds", "convert {n} pounds to kg"),
        ("What is {n}% of {big}?", "What is {m}% of {big}?"),
        ("How to install Python 3.{v} on Ubuntu", "How to install Python 3.{w} on Ubuntu"),
        ("Who won the World Cup in {y}?", "Who won the World Cup in {z}?"),
        ("What day of the week is {mon} {d}?", "What day of the week is {mon2} {d}?"),
        ("How many calories are in {n} eggs?", "How many calories are in {m} eggs?"),
        ("Is {n} a prime number?", "Is {m} a prime number?"),
    ],
    "report": [
        ("Running {n} miles a day, how many calories?", "Running {m} miles a day, how many calories?"),
        ("What's {n} fahrenheit in celsius?", "What's {n} celsius in fahrenheit?"),
        ("Node {v} release date", "Node {w} release date"),
        ("Best laptops under ${big}", "Best laptops under ${big2}"),
        ("Events happening in {city} on {mon} {d}", "Events happening in {city} on {mon} {d2}"),
        ("What was the population of India in {y}?", "What was the population of India in {z}?"),
        (
            "How long to boil an egg for {n} minutes vs soft",
            "How long to boil an egg for {m} minutes vs soft",
        ),
    ],
}
NUM_SLOTS = {
    "train": {
        "n": ["5", "12", "3", "7", "20"],
        "big": ["200", "80", "1500"],
        "v": ["10", "11", "8"],
        "y": ["2010", "1998", "2014", "2002"],
        "mon": ["March", "July", "October"],
        "d": ["3", "14", "21"],
        "city": ["Boston"],
    },
    "report": {
        "n": ["4", "9", "15", "30", "6"],
        "big": ["500", "900", "1200"],
        "v": ["16", "18", "20"],
        "y": ["1990", "2006", "2018", "1975"],
        "mon": ["June", "December", "April"],
        "d": ["2", "9", "27"],
        "city": ["Austin", "Madrid", "Sydney"],
    },
}

PLATFORM: dict[str, Templates] = {
    "train": [
        ("How do I {t} in {L}?", "How do I {t} in {L2}?"),
        ("How to install Docker on {os}", "How to install Docker on {os2}"),
        ("Best note taking apps for {dev}", "Best note taking apps for {dev2}"),
        ("Translate 'good morning' into {hl}", "Translate 'good morning' into {hl2}"),
        ("How do I take a screenshot on {os}?", "How do I take a screenshot on {os2}?"),
    ],
    "report": [
        ("{L} tutorial: {t}", "{L2} tutorial: {t}"),
        ("Keyboard shortcut to lock the screen on {os}", "Keyboard shortcut to lock the screen on {os2}"),
        ("How to clear the cache in {br}", "How to clear the cache in {br2}"),
        ("How do you say thank you in {hl}?", "How do you say thank you in {hl2}?"),
        ("Can I play Fortnite on {dev}?", "Can I play Fortnite on {dev2}?"),
    ],
}
PLAT_SLOTS = {
    "train": {
        "os": ["Windows", "macOS", "Ubuntu"],
        "dev": ["iPhone", "Android", "iPad"],
        "hl": ["French", "German", "Spanish"],
        "br": ["Chrome", "Firefox"],
    },
    "report": {
        "os": ["Linux", "Debian", "Mac", "Fedora"],
        "dev": ["Xbox", "PlayStation", "Nintendo Switch", "Samsung Galaxy"],
        "hl": ["Japanese", "Italian", "Korean", "Portuguese"],
        "br": ["Safari", "Edge", "Opera"],
    },
}


# -- more chat-style training pairs (train split only) -----------------------------------------------------
# Added after the first model served only half of the report split's chat paraphrases. The templates and
# slot values are new and disjoint from the report split's; they are drawn with their own random generator
# after everything else, so the report split is the same pairs as before. The "same topic" negatives keep
# the model from learning "same concept, so serve": a chat cache also meets different questions about one
# thing ("What is X?" / "Who invented X?").
CONCEPTS_TRAIN_MORE = [
    "an algorithm",
    "a database",
    "entropy",
    "the big bang",
    "osmosis",
    "an index fund",
    "a firewall",
    "encryption",
    "gene editing",
    "the placebo effect",
    "opportunity cost",
    "a budget deficit",
    "a transistor",
    "a search engine",
    "reinforcement learning",
    "the electoral college",
    "a sourdough starter",
    "dark matter",
    "a bond yield",
    "a hash function",
]
TASKS_TRAIN_MORE = [
    "count words in a string",
    "sort a list of tuples",
    "copy a file",
    "convert a list to a set",
    "check if a key is in a dictionary",
    "measure execution time",
    "remove whitespace from a string",
    "read user input",
]
LANGS_TRAIN_MORE = [("typescript", "TypeScript"), ("c++", "C++"), ("scala", "Scala"), *LANGS_TRAIN]
CHAT_PARAPHRASE_MORE: Templates = [
    ("What is {c}?", "Could you explain what {c} is?"),
    ("Can you explain {c}?", "What's {c}?"),
    ("Explain {c}", "what is {c}"),
    ("Give me an explanation of {c}", "What is {c}?"),
    ("I want to learn about {c}", "Teach me about {c}"),
    ("Summarize {c} for me", "Give me a summary of {c}"),
    ("{c}: what is it?", "What is {c}?"),
    ("What do people mean by {c}?", "What is meant by {c}?"),
    ("Can you help me understand {c}?", "Please explain {c}"),
    ("What is {c} in plain English?", "Explain {c} simply"),
    ("Could you tell me how to {t} in {L}?", "How do I {t} in {L}?"),
    ("{L} {t}", "How to {t} in {L}"),
    ("What's the {L} way to {t}?", "How should I {t} in {L}?"),
    ("Write {L} code that will {t}", "{L} snippet to {t}"),
    ("I'm trying to {t} in {L}. How?", "How can one {t} in {L}?"),
    ("Is there a way to {t} in {L}?", "How can I {t} in {L}?"),
]
NEAR_REPEAT_MORE: Templates = [
    ("what's {c}", "What is {c}?"),
    ("Hi! What is {c}?", "what is {c}"),
    ("Please, how do I {t} in {L}?", "how do I {t} in {L}"),
    ("WHAT IS {c}?", "What is {c}?"),
    ("Explain {c}, please.", "explain {c}"),
    ("hey can you explain {c}", "Can you explain {c}?"),
]
SAME_TOPIC_MORE: Templates = [
    ("What is {c}?", "Who invented {c}?"),
    ("What is {c}?", "What is the history of {c}?"),
    ("Explain {c}", "What are the risks of {c}?"),
    ("How does {c} work?", "Why is {c} important?"),
    ("Can you explain {c}?", "Can you explain {c2}?"),
    ("What is {c}?", "What is {c2}?"),
    ("How do I {t} in {L}?", "How do I {t2} in {L}?"),
    ("What's the fastest way to {t} in {L}?", "Why is it slow to {t} in {L}?"),
]


def chat_train_rows(seed: int = 0) -> list[dict[str, object]]:
    """The extra chat-style train pairs (see above), deterministic for a seed."""
    rng = random.Random(seed + 1)
    concepts = CONCEPTS_TRAIN + CONCEPTS_TRAIN_MORE
    tasks = TASKS_TRAIN + TASKS_TRAIN_MORE
    rows: list[dict[str, object]] = []
    for category, label, pool, per in (
        ("paraphrase", 1, CHAT_PARAPHRASE_MORE, 10),
        ("near_repeat", 1, NEAR_REPEAT_MORE, 6),
        ("same_topic", 0, SAME_TOPIC_MORE, 10),
    ):
        for ta, tb in pool:
            for _ in range(per):
                c, c2 = rng.sample(concepts, 2)
                t, t2 = rng.sample(tasks, 2)
                lang = rng.choice(LANGS_TRAIN_MORE)
                slots = {"c": c, "c2": c2, "t": t, "t2": t2, "l": lang[0], "L": lang[1]}
                row: dict[str, object] = {
                    "text_a": _fill(ta, slots),
                    "text_b": _fill(tb, slots),
                    "label": label,
                    "category": category,
                    "split": "train",
                }
                if question := _question(label, (ta, tb), slots):
                    row["question"] = question
                rows.append(row)
    return rows


def _fill(template: str, slots: dict[str, str]) -> str:
    return template.format(**slots)


def _question(label: int, templates: tuple[str, str], slots: dict[str, str]) -> str:
    """What a label-1 pair asks, the same for every template asking it: "explain {c}" or "how to {t} in
    {L}". Two stored wordings of one question answer each other (evaluate.py); label-0 pairs ask none."""
    if not label:
        return ""
    both = " ".join(templates)
    if "{c}" in both:
        return f"explain {slots['c']}"
    return f"how to {slots['t']} in {slots['L']}"


def _pairs_of(values: Sequence[str], rng: random.Random, count: int) -> list[tuple[str, str]]:
    pairs = [(x, y) for x in values for y in values if x != y]
    rng.shuffle(pairs)
    return pairs[:count]


def generate(seed: int = 0) -> list[dict[str, object]]:
    """Every near-miss pair, as dicts ready for JSON lines, in a deterministic order."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []

    def add(split: str, category: str, label: int, a: str, b: str, question: str = "") -> None:
        row: dict[str, object] = {"text_a": a, "text_b": b, "label": label, "category": category}
        row["split"] = split
        if question:
            row["question"] = question
        rows.append(row)

    for split in ("train", "report"):
        concepts = CONCEPTS_TRAIN if split == "train" else CONCEPTS_REPORT
        tasks = TASKS_TRAIN if split == "train" else TASKS_REPORT
        langs = LANGS_TRAIN if split == "train" else LANGS_REPORT
        per_template = 12 if split == "train" else 11

        for category, pool in (("paraphrase", PARAPHRASE), ("near_repeat", NEAR_REPEAT)):
            for ta, tb in pool[split]:
                for _ in range(per_template if category == "paraphrase" else per_template // 2 + 1):
                    lang = rng.choice(langs)
                    slots = {"c": rng.choice(concepts), "t": rng.choice(tasks), "l": lang[0], "L": lang[1]}
                    question = _question(1, (ta, tb), slots)
                    add(split, category, 1, _fill(ta, slots), _fill(tb, slots), question)

        neg = NEG_SLOTS[split]
        for ta, tb in NEGATION[split]:
            for _ in range(8):
                slots = {k: rng.choice(v) for k, v in neg.items()}
                add(split, "negation", 0, _fill(ta, slots), _fill(tb, slots))

        sw = SWAP_SLOTS[split]
        for ta, tb in SWAP[split]:
            for p, q in _pairs_of(sw["places"], rng, 4):
                m, n = rng.sample(sw["people"], 2)
                co1, co2 = rng.sample(sw["companies"], 2)
                slots = {"p": p, "q": q, "m": m, "n": n, "co1": co1, "co2": co2}
                add(split, "entity_swap", 0, _fill(ta, slots), _fill(tb, slots))

        num = NUM_SLOTS[split]
        for ta, tb in NUMBERS[split]:
            for _ in range(6):
                n, m = rng.sample(num["n"], 2)
                v, w = rng.sample(num["v"], 2)
                y, z = rng.sample(num["y"], 2)
                mon, mon2 = rng.sample(num["mon"], 2)
                d, d2 = rng.sample(num["d"], 2)
                big, big2 = rng.sample(num["big"], 2)
                slots = {
                    "n": n,
                    "m": m,
                    "v": v,
                    "w": w,
                    "y": y,
                    "z": z,
                    "mon": mon,
                    "mon2": mon2,
                    "d": d,
                    "d2": d2,
                    "big": big,
                    "big2": big2,
                    "city": rng.choice(num["city"]),
                }
                add(split, "number_unit", 0, _fill(ta, slots), _fill(tb, slots))

        plat = PLAT_SLOTS[split]
        for ta, tb in PLATFORM[split]:
            for _ in range(7):
                (_, lang1), (_, lang2) = rng.sample(langs, 2)
                slots = {"t": rng.choice(tasks), "L": lang1, "L2": lang2}
                for key in ("os", "dev", "hl", "br"):
                    slots[key], slots[key + "2"] = rng.sample(plat[key], 2)
                add(split, "platform", 0, _fill(ta, slots), _fill(tb, slots))

    rows += chat_train_rows(seed)
    # Drop repeats (slot draws can collide); keep the first of each (text_a, text_b).
    seen: set[tuple[str, str]] = set()
    unique: list[dict[str, object]] = []
    for row in rows:
        pair_key = (str(row["text_a"]), str(row["text_b"]))
        if pair_key not in seen:
            seen.add(pair_key)
            unique.append(row)
    return unique


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rows = generate(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (str(row["split"]), str(row["category"]))
        counts[key] = counts.get(key, 0) + 1
    print(f"wrote {len(rows)} pairs to {args.out}")
    for (split, category), count in sorted(counts.items()):
        print(f"  {split:7s} {category:12s} {count}")


if __name__ == "__main__":
    main()
