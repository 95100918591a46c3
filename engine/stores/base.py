"""The ``VectorStore`` protocol. Two implementations: the embedded store (default) and Redis.

Rules every store keeps, so ``engine/cache.py`` can rely on them:
- vectors are unit-normalized float32 of the bound identity's dimension; distance = 1 - dot, clamped
  to [0, 2];
- expired entries are never returned (by ``get``, ``search``, ``list_entries`` or ``iter_entries``);
- ``search`` only returns entries of the given scope, closest first, at most ``k``, and when
  ``max_distance`` is given only those at or under it; with ``with_vectors`` each match carries the
  entry's stored unit vector (what ``get_vectors`` returns for it);
- ``upsert`` is durable when it returns (an acknowledged write survives the process being killed), is all
  or nothing (a batch with one bad entry, such as an expiry outside ``check_expiry``'s range, writes
  none), and stores each entry's ``hit_count`` as given: 0 for a prompt stored again (its count starts
  again, and its feedback is forgotten: a new entry), the carried count for a restore or a migration
  (feedback already held for the key is kept);
- hit/miss counters, feedback totals and recent latencies live in the store, so every process sharing it
  sees them;
- feedback about an entry lives and dies with it: ``delete``, ``clear``, ``purge_expired`` and ``drop``
  remove it, and feedback of an entry that expired is never returned;
- notes (``set_note``/``notes``) are the index's own bookkeeping, never entries: ``clear`` keeps them,
  ``drop`` removes them;
- a store given a ``Capacity`` never holds more entries than it allows once an ``upsert`` returns, on
  either store and whatever the number of writing processes (``CAPACITY_SLACK`` = 0: the write and the
  evictions it causes are one transaction); the entries evicted are the policy's lowest-ranked, are gone
  from every read (``get``, ``search``, listings, ``count``) with their feedback, and are counted in
  ``StoreCounters.evictions``. Expired entries make room first and are not counted as evictions.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from engine.models import (
    CacheEntry,
    ComponentHealth,
    EmbedderIdentity,
    EntryFeedback,
    EntryPage,
    IndexInfo,
    Match,
    StoreCounters,
)

#: The note a backup import keeps in the store while it writes (engine/backup/import_.py); one left
#: behind means an import was killed half-way.
IMPORT_NOTE = "import"
#: How many recent lookup latencies a store keeps for p50/p95.
LATENCY_WINDOW = 1000
#: The latest expiry a store accepts: the last second of year 9999. Redis refuses a PEXPIREAT far past
#: it, and only after the rest of a transaction was queued (EXEC does not roll back), so both stores
#: check every entry before writing any.
MAX_EXPIRES_AT = 253402300799.0
#: How far over its capacity an index may be after an ``upsert`` returns: none (see the module docstring).
#: Redis's own ``maxmemory`` eviction only ever lowers the count.
CAPACITY_SLACK = 0
#: The rank an entry without an expiry gets under the ``ttl`` policy: after every expiring one (oldest first).
NEVER_EXPIRES_RANK = 1e12

EvictionPolicy = Literal["lru", "lfu", "ttl"]


@dataclass(frozen=True, slots=True)
class Capacity:
    """How many entries an index may hold, and which go first when it is full.

    ``lru``: the least recently hit (or stored) first. ``lfu``: the least often hit first, with ageing
    (LFU with dynamic ageing: an entry's rank is its hit count plus the rank of the last entry evicted
    when it was last hit, so entries hit often long ago do not stay for ever). ``ttl``: the soonest to
    expire first, then the oldest of those that never expire."""

    max_entries: int = 0
    max_entries_per_scope: int = 0
    policy: EvictionPolicy = "lru"

    @property
    def limited(self) -> bool:
        return self.max_entries > 0 or self.max_entries_per_scope > 0

    @classmethod
    def from_settings(cls, settings: Any) -> Capacity:
        return cls(settings.max_entries, settings.max_entries_per_scope, settings.eviction_policy)


def eviction_rank(
    policy: str, *, now: float, hits: int, expires_at: float | None, created_at: float, lfu_age: float
) -> float:
    """An entry's rank under ``policy`` after a write or a hit: the lowest is evicted first."""
    if policy == "lfu":
        return lfu_age + hits + 1
    if policy == "ttl":
        return expires_at if expires_at is not None else NEVER_EXPIRES_RANK + created_at
    return now


@runtime_checkable
class VectorStore(Protocol):
    kind: str
    name: str
    #: Told how many entries each of this process's writes evicted (capacity limits), e.g. for metrics.
    on_evict: Callable[[int], None] | None

    @property
    def recorded_identity(self) -> EmbedderIdentity | None:
        """The identity that filled the index, or ``None`` for a store never bound."""

    async def exists(self) -> bool:
        """Whether this index is in the store, asked without creating it (``open`` would)."""
        ...

    async def open(self) -> EmbedderIdentity | None:
        """Connect and read the recorded identity. Raises ``BackendUnavailableError``."""

    async def bind(self, identity: EmbedderIdentity) -> None:
        """Create the index for ``identity`` when there is none; raise ``IndexMismatchError`` (naming both
        identities and the migration command) when the recorded one differs. Never recreates silently."""

    async def close(self) -> None: ...

    async def get(self, key: str) -> CacheEntry | None: ...

    async def search(
        self,
        vector: np.ndarray,
        *,
        scope: str,
        k: int,
        max_distance: float | None = None,
        with_vectors: bool = False,
    ) -> list[Match]:
        """With ``with_vectors``, each ``Match.vector`` is the entry's stored float32 unit vector (read in
        the same round trip); without it, ``None``."""

    async def get_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored float32 vector of each key present; absent keys are left out."""

    async def upsert(self, items: Sequence[tuple[CacheEntry, np.ndarray]]) -> None:
        """Write the batch whole or not at all; ``InvalidInputError`` (nothing written) for an entry whose
        ``expires_at`` is not finite, not positive or past ``MAX_EXPIRES_AT``."""

    async def delete(self, key: str) -> bool: ...

    async def clear(self) -> int:
        """Delete every entry; return how many. The index stays, bound to the same identity."""

    async def drop(self) -> int:
        """Delete the index, its entries and its bookkeeping, and close the store; return how many entries
        it held. For a retired index (after a migration), never for the one being served."""

    async def count(self) -> int: ...

    async def list_entries(
        self, *, offset: int = 0, limit: int = 50, scope: str | None = None, contains: str | None = None
    ) -> EntryPage: ...

    def iter_entries(self, *, batch: int = 500, scope: str | None = None) -> AsyncIterator[list[CacheEntry]]:
        """Every live entry (hit counts included) exactly once, in batches of at most ``batch``, in no
        particular order, for exports and migrations. Walks a cursor, never an offset: Redis caps offsets
        at MAXSEARCHRESULTS (10000 on Redis Stack), and an entry written or expiring meanwhile must not shift
        another past the page boundary unseen."""
        ...

    async def record_lookup(
        self, *, hit_key: str | None, latency_ms: float, extend_to: float | None = None
    ) -> None:
        """Count a hit (and the entry's hit count, and push its expiry to ``extend_to`` when given) or a miss."""

    async def counters(self) -> StoreCounters: ...

    async def record_feedback(self, entry_key: str, query_key: str, correct: bool) -> EntryFeedback:
        """Record, atomically, one report that serving entry ``entry_key`` for query ``query_key`` (an
        opaque key the cache derives from the normalized prompt and scope) was wrong or right; return the
        entry's feedback after it. Wrong: ``wrong`` + 1 and the query joins ``refused_queries``. Right:
        ``right`` + 1 and the query leaves ``refused_queries``. The store's totals count it either way.
        ``NotFoundError`` when the entry does not exist (or expired)."""

    async def feedback(self, entry_keys: Sequence[str]) -> dict[str, EntryFeedback]:
        """The feedback of each of ``entry_keys``, in one round trip; entries without any are absent."""

    async def purge_expired(self) -> int: ...

    async def set_note(self, name: str, value: dict[str, Any] | None) -> None:
        """Record ``value`` (a small JSON object) as the note ``name`` about this index, replacing any
        earlier one; ``None`` removes it (removing a missing note is not an error). Notes are bookkeeping a
        long operation leaves so that its interruption shows (``import`` while a backup import runs): they
        are durable when this returns, seen by every process sharing the store, kept by ``clear``, removed
        by ``drop``. Needs an opened store; the index need not be bound."""

    async def notes(self) -> dict[str, dict[str, Any]]:
        """Every note by name (``{}`` when there is none). Cheap: one read, never a scan."""

    async def info(self) -> IndexInfo: ...

    async def health(self) -> ComponentHealth:
        """Cheap: a ping and a few facts, never a scan."""


def unit_vector(vector: np.ndarray) -> np.ndarray:
    """``vector`` as contiguous float32 of length 1, the form every store keeps; ``InvalidInputError`` for
    a zero or non-finite one (it has no direction to compare)."""
    from engine.errors import InvalidInputError

    array = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(array))
    if not math.isfinite(norm) or norm == 0.0:
        raise InvalidInputError("a vector is zero or not finite", "embedders return unit vectors")
    # Unit length is the protocol's promise; renormalizing is cheap insurance that 1 - dot is cosine.
    return np.ascontiguousarray(array / norm, dtype=np.float32)


def check_expiry(entries: Sequence[CacheEntry]) -> None:
    """Refuse (``InvalidInputError``) the first entry whose expiry no store can keep."""
    from engine.errors import InvalidInputError

    for entry in entries:
        when = entry.expires_at
        if when is not None and not (math.isfinite(when) and 0 < when <= MAX_EXPIRES_AT):
            raise InvalidInputError(
                f"entry {entry.key} expires at {when!r}, outside what a store can keep: nothing was stored",
                f"an expiry is a Unix time in seconds, above 0 and at most {MAX_EXPIRES_AT:.0f} "
                "(the end of year 9999); leave it unset for an entry that never expires",
            )


def mismatch_error(index: str, recorded: EmbedderIdentity, configured: EmbedderIdentity) -> Exception:
    """The one wording of an identity mismatch, shared by every store."""
    from engine.errors import IndexMismatchError

    return IndexMismatchError(
        f"index {index} holds vectors from {recorded.describe()}, but the configured embedder is "
        f"{configured.describe()}",
        "run `semcache-tui migrate plan` to move the cache to the new embedder, or configure the old one",
    )
