"""Critical tokens: the details that change an answer while leaving the embedding almost where it was.

"convert 5 km to miles" and "convert 50 km to miles" sit at a cosine distance of about 0.03 with the
bundled model, and so do "on Windows"/"on macOS", "from USD to EUR"/"from EUR to USD" and "can"/"can't".
A learned score cannot see these reliably (the vectors hardly move), so each rule here looks for one kind
of detail in both texts and, when they disagree, says why in a short reason an operator can read. The
rules veto a candidate whatever its score, and their flags are also features of the learned verifier.

Every rule is a pure function of the two texts, symmetric (a pair is refused the same way whichever side
is the cached prompt), and runs on precompiled regexes: all checks of one pair take tens of microseconds
(``python bench/verifier.py`` prints the figure).

What a rule may refuse was measured on QQP train (positives are pairs Quora labels as duplicates): each
rule's comment gives the share of duplicate pairs it refuses, which is what it costs in served hits.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

#: How many texts the per-text caches keep (least recently used dropped first): a cached prompt that is a
#: candidate for many queries is analysed once. About 15 KB per text for all caches together
#: (features.text_facts included, measured on QQP questions), so about 60 MB when full.
TEXT_CACHE_SIZE = 4096

# -- words and tokens ----------------------------------------------------------------------------------

#: A word with the characters that belong to code and product names (c++, c#, node.js, snake_case).
_TOKEN = re.compile(r"[A-Za-z0-9$€£%][A-Za-z0-9_+#'\u2019.\-]*")
_TRAILING = ".,-'\u2019"
_SENTENCE_PUNCTUATION = ".?!:;"
_APOSTROPHE = re.compile(r"[\u2019`]")

_NUMBER_WORDS = {
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "twenty": "20",
    "thirty": "30",
    "fifty": "50",
    "hundred": "100",
    "thousand": "1000",
    "million": "1000000",
    "billion": "1000000000",
}
# A number, maybe with a currency sign before it and a unit or magnitude glued after it (5km, 10k, 3.5%).
_NUMBER = re.compile(
    r"(?<![\w.])([$€£])?\s?(\d+(?:[,.]\d+)*)(\s?)(k|m|bn|st|nd|rd|th|%|[a-z]+|°[cf])?(?![\w])",
    re.IGNORECASE,
)
_VERSION_PREFIX = re.compile(r"(?:\bv|version\s?|release\s?)$", re.IGNORECASE)

_UNITS = {
    "km": "km",
    "kms": "km",
    "kilometer": "km",
    "kilometers": "km",
    "kilometre": "km",
    "kilometres": "km",
    "mile": "mile",
    "miles": "mile",
    "mi": "mile",
    "m": "m",
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "cm": "cm",
    "centimeters": "cm",
    "mm": "mm",
    "millimeters": "mm",
    "ft": "ft",
    "feet": "ft",
    "foot": "ft",
    "inch": "inch",
    "inches": "inch",
    "yard": "yard",
    "yards": "yard",
    "kg": "kg",
    "kgs": "kg",
    "kilo": "kg",
    "kilos": "kg",
    "kilogram": "kg",
    "kilograms": "kg",
    "g": "g",
    "gram": "g",
    "grams": "g",
    "lb": "lb",
    "lbs": "lb",
    "pound": "lb",
    "pounds": "lb",
    "oz": "oz",
    "ounce": "oz",
    "ounces": "oz",
    "stone": "stone",
    "l": "l",
    "liter": "l",
    "liters": "l",
    "litre": "l",
    "litres": "l",
    "ml": "ml",
    "gallon": "gallon",
    "gallons": "gallon",
    "cup": "cup",
    "cups": "cup",
    "celsius": "c",
    "°c": "c",
    "fahrenheit": "f",
    "°f": "f",
    "kelvin": "k",
    "second": "s",
    "seconds": "s",
    "sec": "s",
    "secs": "s",
    "minute": "min",
    "minutes": "min",
    "mins": "min",
    "min": "min",
    "hour": "h",
    "hours": "h",
    "hr": "h",
    "hrs": "h",
    "day": "day",
    "days": "day",
    "week": "week",
    "weeks": "week",
    "month": "month",
    "months": "month",
    "year": "year",
    "years": "year",
    "yrs": "year",
    "kb": "kb",
    "mb": "mb",
    "gb": "gb",
    "tb": "tb",
    "mbps": "mbps",
    "gbps": "gbps",
    "ghz": "ghz",
    "mhz": "mhz",
    "mph": "mph",
    "kmh": "kmh",
    "kph": "kmh",
    "%": "%",
    "percent": "%",
    "usd": "usd",
    "dollar": "usd",
    "dollars": "usd",
    "$": "usd",
    "eur": "eur",
    "euro": "eur",
    "euros": "eur",
    "€": "eur",
    "gbp": "gbp",
    "£": "gbp",
    "inr": "inr",
    "rupee": "inr",
    "rupees": "inr",
    "rs": "inr",
    "yen": "jpy",
    "jpy": "jpy",
    "yuan": "cny",
    "bitcoin": "btc",
    "btc": "btc",
    "calorie": "kcal",
    "calories": "kcal",
    "kcal": "kcal",
    "watt": "w",
    "watts": "w",
    "volt": "v",
    "volts": "v",
    "k": "thousand",
    "bn": "billion",
}
#: Unit words that also name a currency or unit when they stand alone ("convert usd to eur").
_STANDALONE_UNITS = frozenset(
    {
        "km",
        "kilometers",
        "kilometres",
        "miles",
        "mile",
        "meters",
        "metres",
        "feet",
        "inches",
        "kg",
        "kilograms",
        "pounds",
        "lbs",
        "grams",
        "ounces",
        "liters",
        "litres",
        "gallons",
        "celsius",
        "fahrenheit",
        "kelvin",
        "usd",
        "eur",
        "euros",
        "euro",
        "dollars",
        "gbp",
        "inr",
        "rupees",
        "yen",
        "jpy",
        "yuan",
        "bitcoin",
        "btc",
        "mph",
        "kmh",
        "gb",
        "mb",
        "tb",
        "kb",
    }
)

_MONTHS = {
    "january": "jan",
    "jan": "jan",
    "february": "feb",
    "feb": "feb",
    "march": "mar",
    "april": "apr",
    "apr": "apr",
    "may": "may",
    "june": "jun",
    "jun": "jun",
    "july": "jul",
    "jul": "jul",
    "august": "aug",
    "aug": "aug",
    "september": "sep",
    "sept": "sep",
    "sep": "sep",
    "october": "oct",
    "oct": "oct",
    "november": "nov",
    "nov": "nov",
    "december": "dec",
    "dec": "dec",
}
_DAYS = frozenset(
    {
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "today",
        "tomorrow",
        "yesterday",
        "tonight",
        "weekend",
        "weekday",
    }
)

#: Markers of negation. "without" and "except" belong here too: "with sugar"/"without sugar" flips the
#: answer, and "without X" / "if I don't X" are paraphrases, so all markers count as one kind.
_NEGATIONS = frozenset(
    {
        "not",
        "no",
        "never",
        "without",
        "except",
        "excluding",
        "nor",
        "neither",
        "none",
        "nobody",
        "nothing",
        "nowhere",
        "cannot",
        "unable",
        "lacks",
        "w/o",
    }
)
_NEGATION_SUFFIX = "n't"
_NEGATION_IDIOMS = re.compile(
    r"\b(?:why or why not|or not|why not|if not|not only|no matter|no doubt|not sure|nothing but|"
    r"can't wait|no one else|not too)\b"
)
_WORDS = re.compile(r"[a-z][a-z'/]*")

#: Languages, platforms and products, each spelling mapped to a canonical name. A pair whose texts both
#: name some and share none asks about different things ("in Python" vs "in Java").
_PRODUCTS: dict[str, str] = {}
for _canonical, _spellings in {
    "python": "python python2 python3 py",
    "java": "java",
    "javascript": "javascript js ecmascript",
    "typescript": "typescript ts",
    "c++": "c++ cpp",
    "c#": "c# csharp",
    "golang": "golang",
    "rust": "rustlang",
    "ruby": "ruby",
    "php": "php",
    "perl": "perl",
    "kotlin": "kotlin",
    "scala": "scala",
    "matlab": "matlab",
    "julia": "julia",
    "haskell": "haskell",
    "lua": "lua",
    "dart": "dart",
    "elixir": "elixir",
    "bash": "bash shell sh zsh",
    "powershell": "powershell",
    "sql": "sql",
    "mysql": "mysql",
    "postgresql": "postgresql postgres psql",
    "sqlite": "sqlite sqlite3",
    "mongodb": "mongodb mongo",
    "redis": "redis",
    "oracle": "oracle",
    "windows": "windows win10 win11",
    "macos": "macos mac osx macbook imac",
    "linux": "linux",
    "ubuntu": "ubuntu",
    "debian": "debian",
    "fedora": "fedora",
    "centos": "centos",
    "android": "android",
    "ios": "ios iphone ipad ipados",
    "chrome": "chrome chromium",
    "firefox": "firefox",
    "safari": "safari",
    "docker": "docker",
    "kubernetes": "kubernetes k8s",
    "aws": "aws",
    "azure": "azure",
    "gcp": "gcp",
    "react": "reactjs",
    "angular": "angular angularjs",
    "vue": "vue vuejs",
    "django": "django",
    "flask": "flask",
    "node": "nodejs node.js",
    "pytorch": "pytorch torch",
    "tensorflow": "tensorflow",
    "numpy": "numpy",
    "pandas": "pandas",
    "excel": "msexcel",
    "google-sheets": "sheets",
    "vim": "vim",
    "emacs": "emacs",
    "vscode": "vscode",
    "xbox": "xbox",
    "playstation": "playstation ps4 ps5 ps3",
    "facebook": "facebook fb",
    "instagram": "instagram",
    "twitter": "twitter",
    "whatsapp": "whatsapp",
    "snapchat": "snapchat",
    "youtube": "youtube",
    "linkedin": "linkedin",
    "tiktok": "tiktok",
    "telegram": "telegram",
    "gmail": "gmail",
    "outlook": "outlook hotmail",
    "yahoo": "yahoo",
    "netflix": "netflix",
    "spotify": "spotify",
    "paypal": "paypal",
    "uber": "uber",
    "samsung": "samsung galaxy",
    "nokia": "nokia",
    "huawei": "huawei",
    "xiaomi": "xiaomi redmi",
    "oneplus": "oneplus",
    "english": "english",
    "spanish": "spanish",
    "french": "french",
    "german": "german",
    "italian": "italian",
    "portuguese": "portuguese",
    "chinese": "chinese mandarin cantonese",
    "japanese": "japanese",
    "korean": "korean",
    "hindi": "hindi",
    "arabic": "arabic",
    "russian": "russian",
    "dutch": "dutch",
    "turkish": "turkish",
    "tamil": "tamil",
    "telugu": "telugu",
    "bengali": "bengali",
    "urdu": "urdu",
    "greek": "greek",
    "latin": "latin",
    "hebrew": "hebrew",
    "polish": "polish",
    "swedish": "swedish",
}.items():
    for _spelling in _spellings.split():
        _PRODUCTS[_spelling] = _canonical
#: Words that name a product only in a context that says so ("in Go", "with Swift", a capital letter
#: in mid-sentence): on their own they are common English ("go", "rust", "word", "excel", "edge").
_AMBIGUOUS_PRODUCTS = {
    "go": "golang",
    "rust": "rust",
    "swift": "swift",
    "word": "word",
    "excel": "excel",
    "edge": "edge",
    "r": "r",
    "c": "c",
    "node": "node",
    "react": "react",
    "spring": "spring",
    "rails": "rails",
    "unity": "unity",
    "pixel": "pixel",
    "kindle": "kindle",
    "alexa": "alexa",
    "siri": "siri",
}
_PRODUCT_CONTEXT = frozenset({"in", "with", "using", "on", "for", "via", "use", "learn", "and", "or", "vs"})

#: Connectors after which the order of two things matters ("from X to Y", "X better than Y").
_DIRECTED = frozenset({"to", "into", "than", "->", "→", "2"})
#: Words between two names that keep a relation symmetric ("X and Y", "between X and Y", "X vs Y":
#: "which is better, Python or Java?" asks the same as "Java or Python?").
_SYMMETRIC = frozenset({"and", "or", "vs", "vs.", "versus", "&", "/", "between", "with", "nor", "plus"})
_ARTICLES = frozenset({"the", "a", "an", "my", "your", "our", "their", "his", "her", "its", "some"})

#: Sentence-initial words are capitalised whatever they are; these never count as names mid-sentence
#: either (pronouns, titles, and words people capitalise for emphasis).
_NOT_NAMES = frozenset(
    {
        "i",
        "i'm",
        "i've",
        "i'll",
        "i'd",
        "mr",
        "mrs",
        "ms",
        "dr",
        "sir",
        "prof",
        "president",
        "prime",
        "minister",
        "pm",
        "ceo",
        "vs",
        "ok",
        "okay",
        "what",
        "why",
        "how",
        "which",
        "who",
        "where",
        "when",
        "is",
        "are",
        "can",
        "do",
        "does",
        "should",
        "will",
        "would",
        "could",
        "the",
        "a",
        "an",
        "and",
        "or",
        "if",
        "in",
        "on",
        "of",
        "to",
        "for",
        "quora",
    }
)
_STOP = frozenset(
    {
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "do",
        "does",
        "did",
        "doing",
        "have",
        "has",
        "had",
        "having",
        "i",
        "me",
        "my",
        "mine",
        "we",
        "us",
        "our",
        "you",
        "your",
        "yours",
        "he",
        "him",
        "his",
        "she",
        "her",
        "it",
        "its",
        "they",
        "them",
        "their",
        "this",
        "that",
        "these",
        "those",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "how",
        "where",
        "when",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "of",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "about",
        "as",
        "into",
        "to",
        "from",
        "up",
        "out",
        "so",
        "if",
        "or",
        "and",
        "but",
        "than",
        "then",
        "there",
        "here",
        "any",
        "some",
        "all",
        "each",
        "more",
        "most",
        "other",
        "such",
        "only",
        "own",
        "same",
        "too",
        "very",
        "just",
        "get",
        "got",
        "way",
        "ways",
        "best",
        "good",
        "explain",
        "tell",
        "please",
        "know",
        "need",
        "want",
        "like",
        "one",
        "thing",
        "things",
        "something",
        "anyone",
        "someone",
        "possible",
        "really",
        "s",
        "t",
        "much",
        "many",
        "go",
        "make",
        "use",
        "using",
    }
)


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # as written, trailing punctuation removed
    lower: str
    initial: bool  # first word of a sentence: its capital letter says nothing


@lru_cache(maxsize=TEXT_CACHE_SIZE)
def tokens(text: str) -> tuple[Token, ...]:
    """The words of ``text`` (cached: the same cached prompt is compared with many queries)."""
    text = _APOSTROPHE.sub("'", text)
    found: list[Token] = []
    for match in _TOKEN.finditer(text):
        raw = match.group(0).rstrip(_TRAILING) or match.group(0)
        before = text[: match.start()].rstrip()
        initial = not before or before[-1] in _SENTENCE_PUNCTUATION
        found.append(Token(raw, raw.lower(), initial))
    return tuple(found)


# -- the facts each rule compares ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rules compare, extracted once per text."""

    numbers: tuple[str, ...]  # normalised values, sorted
    number_units: tuple[tuple[str, str], ...]  # (value, canonical unit or "")
    versions: tuple[tuple[str, str], ...]  # (product-ish word, value)
    units: frozenset[str]  # unit words written anywhere
    dates: frozenset[str]
    negated: bool
    products: frozenset[str]
    names: frozenset[str]  # normalised names, identifiers, product words
    directed: frozenset[tuple[str, str]]  # (x, y) for "x to y", "from x to y", "x than y"
    name_order: tuple[str, ...]  # names in the order written
    #: Every word in its name form, and the text's letters without spaces: what a name on the other side
    #: is looked up in (``one_sided_names``), computed once per text rather than once per pair.
    word_forms: frozenset[str] = frozenset()
    squashed: str = ""


def _number_value(raw: str) -> str:
    value = raw.replace(",", "")
    if "." in value:
        head, _, tail = value.partition(".")
        if tail.isdigit() and value.count(".") == 1:
            tail = tail.rstrip("0")
            value = f"{head}.{tail}" if tail else head
    return value.lstrip("0") or "0"


#: Suffixes that scale the number they follow ("15k", "2bn").
_SCALES = {"thousand": 1000, "billion": 1_000_000_000}


def _is_title_case(toks: tuple[Token, ...]) -> bool:
    """Whether capitals mark every word ("What Is The Best Way To Learn Python"): then they mark no names.

    Judged on function words, which a plain sentence never capitalises mid-sentence.
    """
    function_words = [t for t in toks if not t.initial and t.lower in _STOP]
    if len(function_words) < 2:
        return False
    return sum(1 for t in function_words if t.text[:1].isupper()) >= 0.5 * len(function_words)


def _name_form(word: str) -> str:
    word = word.lower()
    if word.endswith("'s"):
        word = word[:-2]
    return _NOT_NAME_CHARS.sub("", word)


def _is_identifier(text: str) -> bool:
    """CamelCase, mixedCase, snake_case, dotted.names and words with digits inside (iPhone, os.path)."""
    if "_" in text.strip("_"):
        return True
    if _MIXED_CASE.search(text):
        return True
    if _DOTTED.search(text) and not _INITIALS.fullmatch(text):
        return True
    return bool(_LETTER_DIGIT.search(text)) and not _NUMBER_SUFFIXED.fullmatch(text.lower())


_NOT_NAME_CHARS = re.compile(r"[^a-z0-9+#]")
_MIXED_CASE = re.compile(r"[a-z][A-Z]|^[a-z]+[A-Z]")
_DOTTED = re.compile(r"[A-Za-z]\.[A-Za-z]{2,}")
_INITIALS = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]?")
_LETTER_DIGIT = re.compile(r"[A-Za-z]\d|\d[A-Za-z]")
_NUMBER_SUFFIXED = re.compile(r"\d+(?:st|nd|rd|th|s|k|m|bn|km|kg|gb|mb|tb|am|pm|d|x|p)")
_WORD_BEFORE = re.compile(r"([A-Za-z][\w+#.]*)$")


@lru_cache(maxsize=TEXT_CACHE_SIZE)
def facts(text: str) -> Facts:
    toks = tokens(text)
    lowers = [t.lower for t in toks]
    title_case = _is_title_case(toks)

    numbers: list[str] = []
    number_units: list[tuple[str, str]] = []
    versions: list[tuple[str, str]] = []
    for match in _NUMBER.finditer(_APOSTROPHE.sub("'", text)):
        currency, raw, suffix = match.group(1), match.group(2), (match.group(4) or "").lower()
        glued = not match.group(3)
        if suffix in {"st", "nd", "rd", "th"}:
            suffix = ""
        elif suffix and suffix not in _UNITS:
            if glued and len(suffix) <= 2 and suffix.isalpha():
                continue  # "3d", "4g", "5s": part of a name, the name rule sees it
            suffix = ""  # "5 people", "3.11 on": not a unit; the word is compared as a word
        value = _number_value(raw)
        unit = _UNITS.get(suffix, "") or (_UNITS[currency] if currency else "")
        if unit in _SCALES:  # "15k" is 15000, as it is written elsewhere
            value, unit = _number_value(format(Decimal(value) * _SCALES[unit], "f")), ""
        numbers.append(value)
        number_units.append((value, unit))
        before = text[: match.start()].rstrip()
        word_before = _WORD_BEFORE.search(before)
        if "." in raw and raw.count(".") >= 1 and word_before is not None:
            head = word_before.group(1).lower()
            if head in _PRODUCTS or head in _AMBIGUOUS_PRODUCTS or word_before.group(1)[:1].isupper():
                versions.append((head, value))
        elif _VERSION_PREFIX.search(before + (" " if before.endswith("version") else "")):
            versions.append(("version", value))
    for word in lowers:
        if word in _NUMBER_WORDS:
            numbers.append(_NUMBER_WORDS[word])
            number_units.append((_NUMBER_WORDS[word], ""))

    units = frozenset(_UNITS[w] for w in lowers if w in _STANDALONE_UNITS)
    dates = frozenset({_MONTHS[w] for w in lowers if w in _MONTHS and w != "may"} | (_DAYS & set(lowers)))
    # "may" is a month only when capitalised mid-sentence or next to a number ("May 5", "5 May").
    for i, tok in enumerate(toks):
        if tok.lower == "may" and (
            (tok.text == "May" and not tok.initial)
            or (i + 1 < len(toks) and toks[i + 1].lower[:1].isdigit())
            or (i > 0 and toks[i - 1].lower[:1].isdigit())
        ):
            dates = dates | {"may"}

    # Idioms that negate nothing: QQP's "Why or why not?" alone was 1 in 5 of the duplicates the rule refused.
    plain = _NEGATION_IDIOMS.sub(" ", _APOSTROPHE.sub("'", text.lower()))
    negated = any(w in _NEGATIONS or w.endswith(_NEGATION_SUFFIX) for w in _WORDS.findall(plain))

    products: set[str] = set()
    names: list[str] = []
    for i, tok in enumerate(toks):
        word = tok.lower
        bare = word.rstrip("?!.,:;")
        prev = lowers[i - 1] if i else ""
        if bare in _PRODUCTS:
            products.add(_PRODUCTS[bare])
        elif (
            bare in _AMBIGUOUS_PRODUCTS
            and ((tok.text[:1].isupper() and not tok.initial and not title_case) or prev in _PRODUCT_CONTEXT)
            and (bare not in {"go", "word", "edge", "c", "r"} or tok.text[:1].isupper())
        ):
            products.add(_AMBIGUOUS_PRODUCTS[bare])
        form = _name_form(tok.text)
        if not form or form in _NOT_NAMES or form.isdigit():
            continue
        if (
            _is_identifier(tok.text)
            or bare in _PRODUCTS
            or (
                tok.text[:1].isupper()
                and not title_case
                and (not tok.initial or (tok.text.isupper() and len(tok.text) >= 2))
            )
        ):
            names.append(form)

    # Direction: "x to y", "x into y", "x than y" and "from x ... to y" over the words without articles.
    content = [w.rstrip("?!.,:;") for w in lowers if w not in _ARTICLES]
    directed: set[tuple[str, str]] = set()
    for i, word in enumerate(content):
        if word in _DIRECTED and 0 < i < len(content) - 1:
            left, right = content[i - 1], content[i + 1]
            if left not in _STOP and right not in _STOP and left != right:
                directed.add((left, right))
        if word == "from":
            for j in range(i + 2, min(i + 6, len(content) - 1)):
                if content[j] in {"to", "into"}:
                    left, right = content[i + 1], content[j + 1]
                    if left != right and right not in _STOP:
                        directed.add((left, right))
                    break

    return Facts(
        numbers=tuple(sorted(numbers)),
        number_units=tuple(sorted(number_units)),
        versions=tuple(sorted(versions)),
        units=units,
        dates=dates,
        negated=negated,
        products=frozenset(products),
        names=frozenset(names),
        directed=frozenset(directed),
        name_order=tuple(names),
        word_forms=frozenset(_name_form(t.text) for t in toks),
        squashed=_squashed(text),
    )


# -- the rules -----------------------------------------------------------------------------------------

Rule = Callable[[Facts, Facts, str, str], str | None]


def _listed(values: object) -> str:
    items = sorted(values) if isinstance(values, set | frozenset) else list(values)  # type: ignore[call-overload]
    return ", ".join(str(v) for v in items) if items else "none"


def numbers_rule(a: Facts, b: Facts, text_a: str, text_b: str) -> str | None:
    """Numbers, years and versions must agree where both texts give one, and so must their units.

    A number on one side only ("lose 10 kg" vs "lose weight", "world war 3" vs "third world war") is not
    refused here: on QQP train that form refused 4% of duplicates at a veto precision of 0.7, so it is a
    feature of the learned score instead (``number_one_sided``).
    """
    only_a = sorted((Counter(a.numbers) - Counter(b.numbers)).elements())
    only_b = sorted((Counter(b.numbers) - Counter(a.numbers)).elements())
    if only_a and only_b:
        version_a = {v for _, v in a.versions}
        version_b = {v for _, v in b.versions}
        if (version_a - version_b) or (version_b - version_a):
            return f"versions differ: {_listed(_versioned(a, only_a))} vs {_listed(_versioned(b, only_b))}"
        years = [v for v in (*only_a, *only_b) if len(v) == 4 and v[:2] in {"19", "20"}]
        kind = "years" if years else "numbers"
        return f"{kind} differ: {_listed(only_a)} vs {_listed(only_b)}"
    if only_a or only_b:
        return None
    # Two different units for one number refuse ("4 fahrenheit" vs "4 celsius"); a unit written on one
    # side only does not ("500 and 1000 notes" vs "Rs 500 and Rs 1000 notes"), as a number on one side
    # only does not: on QQP train that form refused 89 duplicates and 21 other pairs.
    clashes = [(_named_units(a, v), _named_units(b, v)) for v in sorted(set(a.numbers))]
    clashes = [(ua, ub) for ua, ub in clashes if ua and ub and ua != ub]
    if clashes:
        units_a = set().union(*(ua - ub for ua, ub in clashes))
        units_b = set().union(*(ub - ua for ua, ub in clashes))
        return f"units differ: {_listed(units_a)} vs {_listed(units_b)}"
    if a.units and b.units and (a.units - b.units) and (b.units - a.units):
        return f"units differ: {_listed(a.units - b.units)} vs {_listed(b.units - a.units)}"
    return None


def _named_units(f: Facts, value: str) -> frozenset[str]:
    return frozenset(unit for v, unit in f.number_units if v == value and unit)


def _versioned(f: Facts, only: list[str]) -> list[str]:
    return [f"{p} {v}" for p, v in f.versions if v in only] or only


def number_one_sided(a: Facts, b: Facts) -> bool:
    """A number in one text that the other lacks, the other giving none in its place (a feature)."""
    only_a = Counter(a.numbers) - Counter(b.numbers)
    only_b = Counter(b.numbers) - Counter(a.numbers)
    return bool(only_a) != bool(only_b)


def dates_rule(a: Facts, b: Facts, text_a: str, text_b: str) -> str | None:
    """Months and days must agree when both texts name one ("in March" vs "in May", "today" vs "tomorrow")."""
    if a.dates and b.dates and a.dates != b.dates:
        return f"dates differ: {_listed(a.dates - b.dates)} vs {_listed(b.dates - a.dates)}"
    return None


def negation_rule(a: Facts, b: Facts, text_a: str, text_b: str) -> str | None:
    """One text negates (not, n't, never, no longer, without, except...) and the other does not.

    Costs 4.3% of QQP train duplicates ("Why can't I sleep?" / "How do I fall asleep?"): the phrasing of
    such pairs differs, and a cache that serves "can I eat X" for "can I not eat X" is worse.
    """
    if a.negated != b.negated:
        return f"negation differs: {'negated' if a.negated else 'plain'} vs {'negated' if b.negated else 'plain'}"
    return None


def products_rule(a: Facts, b: Facts, text_a: str, text_b: str) -> str | None:
    """Each text names a language, platform or product the other does not ("in Python" vs "in Java",
    "Docker on Windows" vs "Docker on macOS"). One named on one side only is left to the learned score."""
    only_a, only_b = a.products - b.products, b.products - a.products
    if only_a and only_b:
        return f"platform differs: {_listed(only_a)} vs {_listed(only_b)}"
    return None


def direction_rule(a: Facts, b: Facts, text_a: str, text_b: str) -> str | None:
    """The same two things in the opposite direction: "from USD to EUR" vs "from EUR to USD"."""
    for left, right in a.directed:
        if (right, left) in b.directed and (left, right) not in b.directed:
            return f"direction reversed: {left}->{right} vs {right}->{left}"
    # Names written in the opposite order around the same relation: "Did Alice beat Bob?" vs "Did Bob beat
    # Alice?". Any two names in any order refused QQP duplicates at a veto precision of 0.68 ("Is Modi
    # changing India?" / "Is India changing under Modi?"), so the words between must be the same verb
    # or preposition in both, and not a symmetric link ("X and Y", "X vs Y").
    shared = [n for n in a.name_order if n in b.names]
    for i, first in enumerate(shared):
        for second in shared[i + 1 :]:
            if first == second:
                continue
            between_a = _between(text_a, first, second, a.names)
            if between_a and between_a == _between(text_b, second, first, b.names):
                return f"roles swapped: {first} {' '.join(between_a)} {second} vs {second} {' '.join(between_a)} {first}"
    return None


def _between(text: str, first: str, second: str, names: frozenset[str]) -> tuple[str, ...] | None:
    """The words linking ``first`` to a later ``second`` in ``text`` when they relate them one way.

    Other names' words are left out, so a name of several words counts as one: in "Why did Brad Pitt
    divorce Djokovic?" "pitt" is linked to "djokovic" by "divorce", as in "Why did Djokovic divorce Brad
    Pitt?" (before, "brad" stood between and the swap was served: 4 of the near-miss report split's 23).
    """
    words = [_name_form(t.text) for t in tokens(text)]
    try:
        i = words.index(first)
        j = words.index(second, i + 1)
    except ValueError:
        return None
    between = tuple(w for w in words[i + 1 : j] if w and w not in _ARTICLES and w not in names)
    if not between or len(between) > 3 or any(w in _SYMMETRIC for w in between):
        return None
    return between


def names_rule(a: Facts, b: Facts, text_a: str, text_b: str) -> str | None:
    """A name or identifier in each text that the other lacks: a substitution ("Yercaud" vs "Yelagiri").

    Only a substitution refuses: a name on one side alone ("reverse a list" vs "reverse a list in
    Python") is left to the learned score, which sees it as a feature. Names are compared without case
    and against the other text's letters with spaces removed, so "Hill-station"/"hill station" agree.
    """
    only_a = one_sided_names(a.names, b, text_b)
    if not only_a:
        return None
    only_b = one_sided_names(b.names, a, text_a)
    if not only_b:
        return None
    return f"entities differ: {_listed(only_a)} vs {_listed(only_b)}"


def one_sided_names(names: frozenset[str], other: Facts, other_text: str) -> set[str]:
    if not names:
        return set()
    squashed = other.squashed
    other_words = other.word_forms
    found: set[str] = set()
    for name in names:
        if name in other_words or name in squashed:
            continue
        if len(name) >= 5 and any(
            len(w) >= 4 and (name.startswith(w) or w.startswith(name)) for w in other_words
        ):
            continue  # India/Indian, America/Americans
        found.add(name)
    return found


@lru_cache(maxsize=4096)
def _squashed(text: str) -> str:
    return _NOT_NAME_CHARS.sub("", text.lower())


#: In the order their reasons are reported: the most specific reason first.
RULES: tuple[tuple[str, Rule], ...] = (
    ("numbers", numbers_rule),
    ("dates", dates_rule),
    ("negation", negation_rule),
    ("platform", products_rule),
    ("direction", direction_rule),
    ("entities", names_rule),
)
RULE_NAMES: tuple[str, ...] = tuple(name for name, _ in RULES)


def flags(query: str, candidate: str) -> dict[str, str]:
    """Every rule that refuses the pair, by rule name, with its reason."""
    return pair_flags(facts(query), facts(candidate), query, candidate)


def pair_flags(a: Facts, b: Facts, query: str, candidate: str) -> dict[str, str]:
    """``flags`` on facts already extracted. Dicts keep insertion order, so the first value is the reason
    ``rejection_reason`` gives (without ``strict_numbers``): one pass of the rules serves both."""
    found: dict[str, str] = {}
    for name, rule in RULES:
        reason = rule(a, b, query, candidate)
        if reason is None:
            reason = rule(b, a, candidate, query) if name == "direction" else None
        if reason is not None:
            found[name] = reason
    return found


def rejection_reason(query: str, candidate: str, *, strict_numbers: bool = False) -> str | None:
    """Why ``candidate``'s answer must not be served for ``query``, or ``None`` when no rule objects.

    ``strict_numbers`` also refuses a number written on one side only. The learned verifier leaves that
    case to its score (a feature); a cache without the verifier (``engine/verify.py``) has no score to
    lean on, so it keeps refusing it as it always did.
    """
    a, b = facts(query), facts(candidate)
    for name, rule in RULES:
        reason = rule(a, b, query, candidate)
        if reason is None and name == "direction":
            reason = rule(b, a, candidate, query)
        if reason is None and name == "numbers" and strict_numbers and number_one_sided(a, b):
            only_a = sorted((Counter(a.numbers) - Counter(b.numbers)).elements())
            only_b = sorted((Counter(b.numbers) - Counter(a.numbers)).elements())
            reason = f"numbers differ: {_listed(only_a)} vs {_listed(only_b)}"
        if reason is not None:
            return reason
    return None
