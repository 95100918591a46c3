"""Listing entries of ``LocalStore``: a page of the newest, the batched walk over every entry (exports),
and stored vectors by key."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import numpy as np

from engine.models import CacheEntry, EntryPage
from engine.stores.local import database as db
from engine.stores.local.core import LocalCore


class ListingMixin(LocalCore):
    """Pages, walks and vectors for the control panel and exports."""

    async def list_entries(
        self, *, offset: int = 0, limit: int = 50, scope: str | None = None, contains: str | None = None
    ) -> EntryPage:
        await self.open()
        entries, total = await self._thread(
            self._read_lock,
            lambda: db.list_entries(
                self._conn, offset=offset, limit=limit, scope=scope, contains=contains, now=time.time()
            ),
        )
        return EntryPage([self._pending.overlay(e) for e in entries], total, offset, limit)

    async def iter_entries(
        self, *, batch: int = 500, scope: str | None = None
    ) -> AsyncIterator[list[CacheEntry]]:
        await self.open()
        batch = max(1, batch)
        after: str | None = None
        while True:
            # One short read per batch, so a long export never holds the read lock between batches.
            entries = await self._thread(
                self._read_lock, db.entries_after, self._conn, after, batch, scope, time.time()
            )
            if not entries:
                return
            after = entries[-1].key
            # This process's lookups not yet written count, as in list_entries.
            yield [self._pending.overlay(entry) for entry in entries]
            if len(entries) < batch:
                return

    async def get_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The stored float32 vector of each key present (for exports); absent keys are left out."""
        await self.open()
        if not keys:
            return {}
        return await self._thread(self._read_lock, db.vectors, self._conn, keys)
