"""The ``VectorStore`` protocol. Two implementations: the embedded store (default) and Redis.

Rules every store keeps, so ``engine/cache.py`` can rely on them:
- vectors are unit-normalized float32 of the bound identity's dimension; distance = 1 - dot, clamped
  to [0, 2];
- expired entries are never returned (by ``get``, ``search``, ``list_entries`` or ``iter_entries``);
- ``search`` only returns entries of the given scope, closest first, at most ``k``, and when
  ``max_distance`` is given only those at or under it;
- ``upsert`` is durable when it returns (an acknowledged write survives the process being killed), and
  stores each entry's ``hit_count`` as given: 0 for a prompt stored again (its count starts again), the
  carried count for a restore or a migration;
- hit/miss counters and recent latencies live in the store, so every process sharing it sees them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from engine.models import (
    CacheEntry,
    ComponentHealth,
    EmbedderIdentity,
    EntryPage,
    IndexInfo,
    Match,
    StoreCounters,
)

#: How many recent lookup latencies a store keeps for p50/p95.
LATENCY_WINDOW = 1000


@runtime_checkable
class VectorStore(Protocol):
    kind: str
    name: str

    @property
    def recorded_identity(self) -> EmbedderIdentity | None:
        """The identity that filled the index, or ``None`` for a store never bound."""

    async def open(self) -> EmbedderIdentity | None:
        """Connect and read the recorded identity. Raises ``BackendUnavailableError``."""

    async def bind(self, identity: EmbedderIdentity) -> None:
        """Create the index for ``identity`` when there is none; raise ``IndexMismatchError`` (naming both
        identities and the migration command) when the recorded one differs. Never recreates silently."""

    async def close(self) -> None: ...

    async def get(self, key: str) -> CacheEntry | None: ...

    async def search(
        self, vector: np.ndarray, *, scope: str, k: int, max_distance: float | None = None
    ) -> list[Match]: ...

    async def upsert(self, items: Sequence[tuple[CacheEntry, np.ndarray]]) -> None: ...

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

    async def purge_expired(self) -> int: ...

    async def info(self) -> IndexInfo: ...

    async def health(self) -> ComponentHealth:
        """Cheap: a ping and a few facts, never a scan."""


def mismatch_error(index: str, recorded: EmbedderIdentity, configured: EmbedderIdentity) -> Exception:
    """The one wording of an identity mismatch, shared by every store."""
    from engine.errors import IndexMismatchError

    return IndexMismatchError(
        f"index {index} holds vectors from {recorded.describe()}, but the configured embedder is "
        f"{configured.describe()}",
        "run `semcache-tui migrate plan` to move the cache to the new embedder, or configure the old one",
    )
