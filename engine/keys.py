"""How prompts are normalized and how entry keys are derived: one home for both rules.

The key depends only on (scope, normalized prompt), so storing the same prompt again updates the entry
instead of adding a duplicate, and two replicas storing it at once write the same key.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SPACE = re.compile(r"\s+")
DEFAULT_SCOPE = "default"
#: The scope rule as a regular expression (the HTTP schema publishes it as the scope's ``pattern``).
SCOPE_REGEX = r"^[A-Za-z0-9_.:\-]{1,128}$"
_SCOPE_PATTERN = re.compile(SCOPE_REGEX)
#: What ``valid_scope`` allows, in the words an error uses.
SCOPE_RULE = "1-128 letters, digits, '_', '-', '.' or ':'"


def normalize_prompt(prompt: str) -> str:
    """Unicode NFKC, case-folded, whitespace collapsed: 'What  is AI?' and 'what is ai?' are one prompt."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", prompt)).strip().casefold()


def entry_key(scope: str, prompt: str) -> str:
    """A stable 32-hex-digit key (128 bits of SHA-256) for the entry of ``prompt`` in ``scope``."""
    digest = hashlib.sha256(f"{scope}\x1f{normalize_prompt(prompt)}".encode()).hexdigest()
    return digest[:32]


def query_key(scope: str, prompt: str) -> str:
    """The key of a query (not of an entry): what feedback remembers as "this entry was wrong for this
    prompt". Derived like ``entry_key`` from (scope, normalized prompt), in its own domain so the two kinds
    of key are never confused."""
    digest = hashlib.sha256(f"query\x1f{scope}\x1f{normalize_prompt(prompt)}".encode()).hexdigest()
    return digest[:32]


def valid_scope(scope: str) -> bool:
    return bool(_SCOPE_PATTERN.match(scope))
