"""Query strings for RediSearch (DIALECT 2) and turning its replies into ``CacheEntry`` / ``Match``."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from engine.models import CacheEntry, EntryFeedback, Match, clamp_distance
from engine.stores.redis import schema as s

# TAG values need every punctuation character escaped, "_" included: a scope of "_" alone is a syntax error.
_TAG_SPECIAL = re.compile(r"([^A-Za-z0-9])")
_WORD = re.compile(r"^[A-Za-z0-9]+$")
#: Float32 noise puts an exact repeat a hair off 0; snap it so "at or under 0" keeps its meaning.
_SNAP = 1e-6


def tag(value: str) -> str:
    return _TAG_SPECIAL.sub(r"\\\1", value)


def not_expired(now: float) -> str:
    # expires_at is 0 for "never", so excluding (0, now] keeps the living and the immortal.
    return f"-@{s.EXPIRES}:[(0 {now:.3f}]"


def expired(now: float) -> str:
    return f"@{s.EXPIRES}:[(0 {now:.3f}]"


def filters(now: float, scope: str | None = None) -> str:
    parts = [f"@{s.SCOPE}:{{{tag(scope)}}}"] if scope is not None else []
    parts.append(not_expired(now))
    return " ".join(parts)


def contains_terms(contains: str) -> list[str]:
    """Words of ``contains`` that are certainly whole tokens of any prompt containing it.

    Only words with whitespace on both sides inside ``contains`` qualify (the first and last may be
    fragments of longer words), and only plain ASCII words (RediSearch and Python disagree on where other
    characters split and how they fold). They narrow the search in Redis; Python checks the substring.
    """
    pieces = contains.split(" ")
    interior = pieces[1:-1] if len(pieces) > 2 else []
    return sorted({word.lower() for word in interior if _WORD.match(word)})


# Searches filter on the scope only. Expiry is left to Redis (EXPIREAT removes the key, and the index
# with it) plus a check of each result in Python: the in-query "not expired" negation cost 0.4 ms of a
# 0.3 ms range query and 0.8 ms of a KNN at 100,000 entries (bench/redis_store.py), for the rare entry
# Redis has not yet reaped.


def scope_only(scope: str) -> str:
    return f"@{s.SCOPE}:{{{tag(scope)}}}"


def knn(vector_field: str, k: int, scope: str) -> str:
    return f"({scope_only(scope)})=>[KNN {k} @{vector_field} $vec EF_RUNTIME $ef AS {s.DISTANCE}]"


def in_range(vector_field: str, scope: str, hnsw: bool = True) -> str:
    # $EPSILON widens the HNSW range walk. At RediSearch's default (0.01) a walk that starts in another
    # topic cluster stops short of the answer: at 100,000 clustered entries recall@1 was 0.65 at 0.01,
    # 0.95 at 0.05, 0.998 at 0.1 and 1.0 at 0.2, for 0.34 / 0.28 / 0.33 / 0.46 ms (bench/redis_store.py).
    # A FLAT index (the seed's) is exact and refuses the option.
    epsilon = "; $EPSILON: $eps" if hnsw else ""
    return (
        f"@{vector_field}:[VECTOR_RANGE $radius $vec]=>{{$YIELD_DISTANCE_AS: {s.DISTANCE}{epsilon}}} "
        f"{scope_only(scope)}"
    )


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def number(value: Any, default: float = 0.0) -> float:
    try:
        return float(text(value))
    except (TypeError, ValueError):
        return default


def entry_from_hash(key: str, values: dict[Any, Any]) -> CacheEntry:
    fields = {text(k): v for k, v in values.items()}
    try:
        metadata = json.loads(text(fields.get(s.METADATA, b"{}")) or "{}")
    except json.JSONDecodeError:
        metadata = {}  # written by another tool: show the entry rather than fail the listing
    expires = number(fields.get(s.EXPIRES))
    return CacheEntry(
        key=key,
        scope=text(fields.get(s.SCOPE, b"default")),
        prompt=text(fields.get(s.PROMPT, b"")),
        response=text(fields.get(s.RESPONSE, b"")),
        metadata=metadata if isinstance(metadata, dict) else {"value": metadata},
        created_at=number(fields.get(s.CREATED)),
        expires_at=expires if expires > 0 else None,
    )


def entry_to_hash(entry: CacheEntry, vector: bytes, now: float) -> dict[Any, Any]:
    return {
        s.ENTRY_ID: entry.key,
        s.PROMPT: entry.prompt,
        s.RESPONSE: entry.response,
        s.SCOPE: entry.scope,
        s.METADATA: json.dumps(entry.metadata, ensure_ascii=False, separators=(",", ":")),
        s.CREATED: f"{entry.created_at:.6f}",
        s.UPDATED: f"{now:.6f}",
        s.EXPIRES: f"{entry.expires_at:.6f}" if entry.expires_at is not None else "0",
        s.VECTOR: vector,
    }


def results(reply: Any) -> tuple[int, list[tuple[str, dict[Any, Any]]]]:
    """(total, [(redis key, fields)]) from an FT.SEARCH reply, RESP3 map or RESP2 list."""
    if isinstance(reply, dict):
        rows = []
        for row in reply.get(b"results", []):
            rows.append((text(row.get(b"id", b"")), row.get(b"extra_attributes", {}) or {}))
        return int(reply.get(b"total_results", 0)), rows
    total, rest = int(reply[0]), reply[1:]
    rows = []
    if rest and not isinstance(rest[1] if len(rest) > 1 else None, list):  # NOCONTENT: keys only
        return total, [(text(key), {}) for key in rest]
    for key, flat in zip(rest[::2], rest[1::2], strict=False):
        rows.append((text(key), dict(zip(flat[::2], flat[1::2], strict=False))))
    return total, rows


def match(entry: CacheEntry, raw_distance: Any, raw_vector: Any = None, data_type: str = "FLOAT32") -> Match:
    distance = number(raw_distance, 2.0)
    return Match(
        entry, 0.0 if abs(distance) < _SNAP else clamp_distance(distance), vector(raw_vector, data_type)
    )


#: The little-endian numpy type of each vector type an index may store.
NUMPY_TYPES = {"FLOAT32": "<f4", "FLOAT16": "<f2"}


def vector(blob: Any, data_type: str = "FLOAT32") -> np.ndarray | None:
    """A stored vector field (FLOAT32 or FLOAT16) as a float32 array (a copy: the reply's bytes are not
    ours to pin); ``None`` for no field, or for bytes that are not a whole number of elements (another tool
    wrote them, so not a vector we can vouch for)."""
    dtype = np.dtype(NUMPY_TYPES.get(data_type, "<f4"))
    if not isinstance(blob, bytes) or not blob or len(blob) % dtype.itemsize:
        return None
    return np.frombuffer(blob, dtype=dtype).astype(np.float32)


def entry_feedback(wrong: Any, right: Any, refused: Any) -> EntryFeedback | None:
    """One entry's feedback from its two counts and its refused set; ``None`` when it has none."""
    found = EntryFeedback(int(number(wrong)), int(number(right)), frozenset(text(q) for q in refused or ()))
    return found if found.wrong or found.right or found.refused_queries else None


def glob_escape(value: str) -> str:
    """``value`` matched literally by SCAN's MATCH pattern (glob-style: * ? [ ] and \\ are special)."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in value)
