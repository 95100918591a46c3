"""Index layout: key names, the FT.CREATE schema, reading FT.INFO, and the recorded embedder identity.

Entries are HASHes under ``{name}:`` (so the seed's documented ``FT.DROPINDEX {name} DD`` still empties
the cache). Field names follow RedisVL's SemanticCache (prompt, response, prompt_vector, inserted_at,
updated_at, metadata), the layout the seed service wrote, so an index it created can be adopted.

Our own bookkeeping (identity, counters, latencies, hit counts, feedback) lives under ``@semcache:{name}:...``: '@' can never
start an index name, so these keys are under no index's prefix, are never indexed as documents, and
survive a DROPINDEX DD. Identity recorded there is trusted only while it agrees with the live index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from engine.models import EmbedderIdentity

PROMPT = "prompt"
RESPONSE = "response"
SCOPE = "scope"
METADATA = "metadata"
CREATED = "inserted_at"
UPDATED = "updated_at"
EXPIRES = "expires_at"  # 0 means never: a NUMERIC field has no "missing" to range over
ENTRY_ID = "entry_id"
VECTOR = "prompt_vector"
DISTANCE = "vector_distance"

ENTRY_FIELDS = (PROMPT, RESPONSE, SCOPE, METADATA, CREATED, EXPIRES, ENTRY_ID)

#: What the seed's index (RedisVL) lacks and we add with FT.ALTER when adopting it.
OUR_INDEXED_FIELDS: dict[str, list[str]] = {
    # CASESENSITIVE: a TAG folds case by default, so "TenantA" and "tenanta" would be one scope and one
    # tenant would be served another's answers. Scopes are exact on both stores.
    SCOPE: ["TAG", "CASESENSITIVE"],
    CREATED: ["NUMERIC", "SORTABLE"],
    EXPIRES: ["NUMERIC"],
    PROMPT: ["TEXT", "NOSTEM"],
}


@dataclass(frozen=True, slots=True)
class Keys:
    name: str

    @property
    def prefix(self) -> str:
        return f"{self.name}:"

    def entry(self, key: str) -> str:
        return f"{self.name}:{key}"

    def entry_key(self, redis_key: str) -> str:
        return redis_key[len(self.prefix) :] if redis_key.startswith(self.prefix) else redis_key

    @property
    def meta(self) -> str:
        return f"@semcache:{self.name}:meta"

    @property
    def notes(self) -> str:
        """The index's notes (``VectorStore.set_note``): one JSON object per field."""
        return f"@semcache:{self.name}:notes"

    @property
    def stats(self) -> str:
        return f"@semcache:{self.name}:stats"

    @property
    def latencies(self) -> str:
        return f"@semcache:{self.name}:latency"

    @property
    def hits(self) -> str:
        """Hit count per entry key, beside the entries: see ``store._RECORD_LOOKUP`` for why."""
        return f"@semcache:{self.name}:hits"

    @property
    def feedback(self) -> str:
        """Feedback counts per entry: fields ``{entry key}:w`` and ``{entry key}:r`` (beside the entries,
        like the hit counts, so a report never re-indexes the entry)."""
        return f"@semcache:{self.name}:fb"

    @property
    def refused_prefix(self) -> str:
        return f"@semcache:{self.name}:refused:"

    def refused(self, key: str) -> str:
        """The set of query keys entry ``key`` must never be served for again. No TTL of its own (a hit
        slides the entry's expiry): ``RedisStore.purge_expired`` removes those of expired entries."""
        return f"{self.refused_prefix}{key}"

    @property
    def rank(self) -> str:
        """Every entry's eviction rank (a sorted set, the lowest evicted first), kept while a capacity is
        configured (see ``RedisStore`` on capacity)."""
        return f"@semcache:{self.name}:rank"

    @property
    def rank_prefix(self) -> str:
        """Followed by a scope: the ranks of that scope's entries (for SEMCACHE_MAX_ENTRIES_PER_SCOPE)."""
        return f"@semcache:{self.name}:rank:"

    def scope_rank(self, scope: str) -> str:
        return f"{self.rank_prefix}{scope}"

    def feedback_fields(self, key: str) -> tuple[str, str]:
        return f"{key}:w", f"{key}:r"


@dataclass(frozen=True, slots=True)
class Hnsw:
    m: int = 16
    ef_construction: int = 200
    ef_runtime: int = 64


#: Vector types a new index may store (SEMCACHE_VECTOR_TYPE): FLOAT16 halves the vectors' memory.
VECTOR_TYPES = {"float32": "FLOAT32", "float16": "FLOAT16"}


def create_args(keys: Keys, dimension: int, hnsw: Hnsw, data_type: str = "FLOAT32") -> list[Any]:
    vector = ["TYPE", data_type, "DIM", dimension, "DISTANCE_METRIC", "COSINE"]
    vector += ["M", hnsw.m, "EF_CONSTRUCTION", hnsw.ef_construction, "EF_RUNTIME", hnsw.ef_runtime]
    return _create(keys, VECTOR, ["HNSW", len(vector), *vector])


def recreate_args(keys: Keys, facts: IndexFacts, ef_runtime: int) -> list[Any]:
    """FT.CREATE for ``facts``' index with our current field definitions and its own vector field, for
    redefining an index in place (FT.DROPINDEX without DD keeps the entries; FT.CREATE indexes them again)."""
    vector = facts.vector_field or {}
    algorithm = str(vector.get("algorithm", "HNSW")).upper()
    spec: list[Any] = ["TYPE", str(vector.get("data_type", "FLOAT32")).upper(), "DIM", facts.dimension]
    spec += ["DISTANCE_METRIC", str(vector.get("distance_metric", "COSINE")).upper()]
    if algorithm == "HNSW":
        spec += ["M", int(vector.get("M", 16)), "EF_CONSTRUCTION", int(vector.get("ef_construction", 200))]
        spec += ["EF_RUNTIME", ef_runtime]
    return _create(keys, facts.vector_name or VECTOR, [algorithm, len(spec), *spec])


def _create(keys: Keys, vector_name: str, vector: list[Any]) -> list[Any]:
    schema: list[Any] = []
    for name, spec in OUR_INDEXED_FIELDS.items():
        schema += [name, *spec]
    schema += [vector_name, "VECTOR", *vector]
    # STOPWORDS 0: prompt words like "what" or "is" stay searchable in the entry browser.
    return ["FT.CREATE", keys.name, "ON", "HASH", "PREFIX", 1, keys.prefix, "STOPWORDS", 0, "SCHEMA", *schema]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _plain(value: Any) -> Any:
    """bytes -> str, recursively, for FT.INFO replies shown to people."""
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, dict):
        return {_text(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass(slots=True)
class IndexFacts:
    """What FT.INFO says about an index, in plain types."""

    raw: dict[str, Any]
    fields: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def parse(cls, reply: Any) -> IndexFacts:
        raw = _plain(reply)
        if isinstance(raw, list):  # RESP2 flat pairs, should a proxy downgrade the protocol
            raw = dict(zip(raw[::2], raw[1::2], strict=False))
        fields = []
        for attribute in raw.get("attributes", []):
            if isinstance(attribute, list):
                attribute = dict(zip(attribute[::2], attribute[1::2], strict=False))
            fields.append(attribute)
        return cls(raw, fields)

    @property
    def vector_field(self) -> dict[str, Any] | None:
        return next((f for f in self.fields if str(f.get("type", "")).upper() == "VECTOR"), None)

    @property
    def vector_name(self) -> str | None:
        vector = self.vector_field
        return str(vector.get("attribute") or vector.get("identifier")) if vector else None

    @property
    def data_type(self) -> str:
        """FLOAT32 or FLOAT16 (what the vector field stores; FLOAT32 when FT.INFO does not say)."""
        vector = self.vector_field or {}
        return str(vector.get("data_type") or "FLOAT32").upper()

    @property
    def dimension(self) -> int | None:
        vector = self.vector_field
        value = vector.get("dim") if vector else None
        return int(value) if value is not None else None

    def field(self, name: str) -> dict[str, Any] | None:
        return next((f for f in self.fields if str(f.get("attribute") or f.get("identifier")) == name), None)

    @property
    def scope_folds_case(self) -> bool:
        """True when the scope field exists and folds case: an index created before scopes were exact."""
        scope = self.field(SCOPE)
        if scope is None:
            return False
        flags = scope.get("flags") or []
        flags = flags if isinstance(flags, list) else [flags]
        return "CASESENSITIVE" not in {str(flag).upper() for flag in flags}

    def field_names(self) -> set[str]:
        return {str(f.get("attribute") or f.get("identifier")) for f in self.fields}

    @property
    def documents(self) -> int:
        return int(float(self.raw.get("num_docs", 0)))

    @property
    def failures(self) -> int:
        return int(float(self.raw.get("hash_indexing_failures", 0)))

    @property
    def memory_bytes(self) -> int:
        names = ("total_index_memory_sz_mb", "vector_index_sz_mb")
        megabytes = sum(float(self.raw.get(n, 0) or 0) for n in names)
        if not self.raw.get("total_index_memory_sz_mb"):
            megabytes += sum(float(self.raw.get(n, 0) or 0) for n in ("inverted_sz_mb", "doc_table_size_mb"))
        return int(megabytes * 1024 * 1024)


def identity_to_meta(identity: EmbedderIdentity, vector_name: str, hnsw: Hnsw) -> dict[Any, Any]:
    return {
        "provider": identity.provider,
        "model": identity.model,
        "dimension": str(identity.dimension),
        "vector_field": vector_name,
        "hnsw_m": str(hnsw.m),
        "hnsw_ef_construction": str(hnsw.ef_construction),
        "hnsw_ef_runtime": str(hnsw.ef_runtime),
        "recorded_at": f"{time.time():.3f}",
        "recorded_by": "semcache",
    }


def meta_identity(meta: dict[Any, Any]) -> EmbedderIdentity | None:
    plain = {_text(k): _text(v) for k, v in meta.items()}
    try:
        return EmbedderIdentity(plain["provider"], plain["model"], int(plain["dimension"]))
    except (KeyError, ValueError):
        return None


def unrecorded_identity(dimension: int) -> EmbedderIdentity:
    """What an index created without semcache (the seed service) is known to hold: only a dimension."""
    return EmbedderIdentity("unknown", "unrecorded model (index created by the seed service)", dimension)
