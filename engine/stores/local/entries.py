"""Entries of ``LocalStore``: get, upsert, search (with the exact float32 re-ranking of the int8 graph's
candidates), delete, clear, count and purge_expired; searching also keeps the graphs fresh with other
processes' writes and starts the periodic maintenance (purge, graph snapshot)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np

from engine.errors import IndexMissingError, InvalidInputError
from engine.models import CacheEntry, EmbedderIdentity, Match, clamp_distance
from engine.stores.local import database as db
from engine.stores.local.core import (
    MAINTENANCE_INTERVAL_S,
    REFRESH_INTERVAL_S,
    SNAPSHOT_AFTER_CHANGES,
    LocalCore,
)
from engine.stores.local.graphs import ScopeGraphs


class EntriesMixin(LocalCore):
    """Reading, writing and searching entries."""

    def _vector(self, vector: np.ndarray, identity: EmbedderIdentity) -> np.ndarray:
        array = np.asarray(vector, dtype=np.float32).reshape(-1)
        if array.size != identity.dimension:
            raise InvalidInputError(
                f"a vector of {array.size} dimensions was given to index {self.name}, which holds "
                f"{identity.describe()}",
                "embed with the embedder the index is bound to",
            )
        norm = float(np.linalg.norm(array))
        if not np.isfinite(norm) or norm == 0.0:
            raise InvalidInputError("a vector is zero or not finite", "embedders return unit vectors")
        # Unit length is the protocol's promise; renormalizing is cheap insurance that 1 - dot is cosine.
        return np.ascontiguousarray(array / norm, dtype=np.float32)

    def _bound(self) -> EmbedderIdentity:
        if self._identity is None:
            raise IndexMissingError(
                f"index {self.name} is not bound to an embedder yet",
                "start the cache (it binds the index to the configured embedder) before storing",
            )
        return self._identity

    async def get(self, key: str) -> CacheEntry | None:
        await self.open()
        entry = await self._quick(self._read_lock, db.get, self._conn, key, time.time())
        return None if entry is None else self._pending.overlay(entry)

    async def upsert(self, items: Sequence[tuple[CacheEntry, np.ndarray]]) -> None:
        if not items:
            return
        await self.open()
        identity = self._bound()
        rows = [(entry, self._vector(vector, identity)) for entry, vector in items]
        await self._thread(self._write_lock, db.upsert, self._wconn, rows)
        # Acknowledged above; now make our own graphs show the write before we return.
        if await self._ensure_graphs() is not None:
            await self._sync()

    async def search(
        self, vector: np.ndarray, *, scope: str, k: int, max_distance: float | None = None
    ) -> list[Match]:
        await self.open()
        if k <= 0 or self._identity is None:
            return []
        query = self._vector(vector, self._identity)
        graphs = await self._ensure_graphs()
        if graphs is None:
            return []
        await self._refresh_if_stale(graphs)
        # int8 graph distances are approximate: take extra candidates and re-rank them exactly.
        wanted = max(2 * k, k + 10)
        count = wanted
        while True:
            labels, total = await self._quick(graphs.lock, graphs.search, scope, query, count)
            if labels.size == 0:
                return []
            ranked, live = await self._quick(
                self._read_lock, self._rank, labels, query, scope, k, max_distance, time.time()
            )
            # Candidates expired (or deleted) but still in the graph took places: ask for more.
            if live >= min(wanted, total) or count >= total:
                return ranked
            count *= 4

    def _rank(
        self,
        labels: np.ndarray,
        query: np.ndarray,
        scope: str,
        k: int,
        max_distance: float | None,
        now: float,
    ) -> tuple[list[Match], int]:
        rows = [row for row in db.candidates(self._conn, labels.tolist(), now) if row[2] == scope]
        if not rows:
            return [], 0
        vectors = np.frombuffer(b"".join(row[-1] for row in rows), dtype=np.float32).reshape(len(rows), -1)
        distances = 1.0 - vectors @ query
        matches: list[Match] = []
        for position in np.argsort(distances, kind="stable")[:k]:
            distance = clamp_distance(float(distances[position]))
            if max_distance is not None and distance > max_distance:
                break
            matches.append(Match(self._pending.overlay(db.entry_from_row(rows[position])), distance))
        return matches, len(rows)

    async def delete(self, key: str) -> bool:
        await self.open()
        deleted = await self._thread(self._write_lock, db.delete, self._wconn, key, time.time())
        await self._sync()
        return deleted

    async def clear(self) -> int:
        await self.open()
        cleared = await self._thread(self._write_lock, db.clear, self._wconn, time.time())
        await self._sync()
        return cleared

    async def count(self) -> int:
        await self.open()
        return await self._thread(self._read_lock, db.count, self._conn, time.time())

    async def purge_expired(self) -> int:
        await self.open()
        purged = await self._thread(self._write_lock, db.purge_expired, self._wconn, time.time())
        if purged:
            await self._sync()
        return purged

    # -- keeping the graphs fresh ------------------------------------------------------------------------

    async def _refresh_if_stale(self, graphs: ScopeGraphs) -> None:
        now = time.monotonic()
        if now - self._last_check < REFRESH_INTERVAL_S:
            return
        self._last_check = now
        state = await self._quick(self._read_lock, db.change_state, self._conn)
        if state.seq != graphs.seq:
            await self._sync()
        if now >= self._next_maintenance:
            self._next_maintenance = now + MAINTENANCE_INTERVAL_S
            self._spawn(self._maintain())

    async def _maintain(self) -> None:
        await self.purge_expired()
        graphs = self._follower.graphs
        if graphs is not None and self._follower.dirty and graphs.size >= SNAPSHOT_AFTER_CHANGES:
            await asyncio.to_thread(self._follower.save_snapshot)
