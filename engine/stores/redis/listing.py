"""Walking many entries of ``RedisStore``: the panel's pages, exports' batches and their vectors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import numpy as np

from engine.models import CacheEntry, EntryPage
from engine.stores.redis import query as q
from engine.stores.redis import schema as s
from engine.stores.redis.core import BATCH
from engine.stores.redis.counters import CountersMixin


class ListingMixin(CountersMixin):
    """``list_entries``, ``iter_entries`` and ``get_vectors`` (listed entries carry their hit counts)."""

    async def list_entries(
        self, *, offset: int = 0, limit: int = 50, scope: str | None = None, contains: str | None = None
    ) -> EntryPage:
        text = q.filters(time.time(), scope)
        if not contains:
            returned = list(s.ENTRY_FIELDS)
            reply = await self._command(
                "FT.SEARCH", self.name, text, "SORTBY", s.CREATED, "DESC",
                "RETURN", len(returned), *returned, "LIMIT", offset, limit, "DIALECT", 2,
            )  # fmt: skip
            total, rows = q.results(reply)
            entries = [q.entry_from_hash(self.keys.entry_key(key), values) for key, values in rows]
            return EntryPage(await self._with_hits(entries), total, offset, limit)
        terms = q.contains_terms(contains)
        if terms:
            text += f" @{s.PROMPT}:({' '.join(terms)})"
        needle = contains.casefold()
        found: list[tuple[float, str]] = []
        async for batch in self._scan(text, [s.PROMPT, s.CREATED]):
            for row in batch:
                if needle in q.text(row.get(s.PROMPT, b"")).casefold():
                    found.append((-q.number(row.get(s.CREATED)), q.text(row["__key"])))
        found.sort()
        page_keys = [key for _, key in found[offset : offset + limit]]
        pipe = self.client.pipeline(transaction=False)
        for key in page_keys:
            pipe.hgetall(key)
        hashes = await self._run(pipe.execute) if page_keys else []
        entries = [
            q.entry_from_hash(self.keys.entry_key(key), values)
            for key, values in zip(page_keys, hashes, strict=True)
            if values
        ]
        return EntryPage(await self._with_hits(entries), len(found), offset, limit)

    async def iter_entries(
        self, *, batch: int = 500, scope: str | None = None
    ) -> AsyncIterator[list[CacheEntry]]:
        # An aggregate cursor, not FT.SEARCH paging: LIMIT offsets stop at MAXSEARCHRESULTS.
        batch = max(1, batch)
        seen: set[str] = set()
        pending: list[CacheEntry] = []
        async for rows in self._scan(q.filters(time.time(), scope), s.ENTRY_FIELDS, batch):
            now = time.time()
            for row in rows:
                key = self.keys.entry_key(q.text(row.pop("__key")))
                # A document re-indexed during the walk (stored again) may be met twice: once is the promise.
                if key in seen:
                    continue
                entry = q.entry_from_hash(key, row)
                if entry.is_expired(now):
                    continue
                seen.add(key)
                pending.append(entry)
            while len(pending) >= batch:
                page, pending = pending[:batch], pending[batch:]
                yield await self._with_hits(page)
        if pending:
            yield await self._with_hits(pending)

    async def get_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The stored float32 vector of each key that still exists (for exports); absent keys are left out."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            pipe = self.client.pipeline(transaction=False)
            for key in chunk:
                pipe.hget(self.keys.entry(key), self._vector_field)
            blobs = await self._run(pipe.execute)
            for key, blob in zip(chunk, blobs, strict=True):
                # Not a whole number of float32s: written by another tool, so not a vector we can vouch for.
                if isinstance(blob, bytes) and blob and len(blob) % 4 == 0:
                    found[key] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        return found
