"""Walking many entries of ``RedisStore``: the panel's pages, exports' batches and their vectors."""

from __future__ import annotations

import functools
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
        # SCAN over the entries' key prefix rather than a query of the index: Redis promises that SCAN meets
        # every key present for the whole walk, whatever state the index is in, and no result cap (LIMIT's
        # MAXSEARCHRESULTS) applies. A backup must not depend on the secondary index. A key can be met twice
        # (the keyspace rehashing); the keys seen drop the repeats.
        batch = max(1, batch)
        match = _glob_escape(self.keys.prefix) + "*"
        fields = list(s.ENTRY_FIELDS)
        seen: set[str] = set()
        pending: list[CacheEntry] = []
        cursor = 0
        while True:
            step = functools.partial(
                self.client.scan, cursor, match=match, count=max(batch, 100), _type="HASH"
            )
            cursor, found = await self._run(step)
            keys = [key for key in dict.fromkeys(q.text(raw) for raw in found) if key not in seen]
            seen.update(keys)
            if keys:
                pipe = self.client.pipeline(transaction=False)
                for key in keys:
                    pipe.hmget(key, fields)
                rows = await self._run(pipe.execute)
                now = time.time()
                for key, values in zip(keys, rows, strict=True):
                    if values is None or values[0] is None:  # gone meanwhile, or not an entry (no prompt)
                        continue
                    entry = q.entry_from_hash(
                        self.keys.entry_key(key), dict(zip(fields, values, strict=True))
                    )
                    if entry.is_expired(now) or (scope is not None and entry.scope != scope):
                        continue
                    pending.append(entry)
            while len(pending) >= batch:
                page, pending = pending[:batch], pending[batch:]
                yield await self._with_hits(page)
            if int(cursor) == 0:
                break
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


def _glob_escape(text: str) -> str:
    """``text`` matched literally by SCAN's MATCH pattern (glob-style: * ? [ ] and \\ are special)."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
