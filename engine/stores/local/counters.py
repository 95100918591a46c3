"""Lookup counters of ``LocalStore``: each lookup is recorded in the pending buffer (``lookups``), which is
written in one transaction when full or ``FLUSH_DELAY_S`` after the first unwritten lookup; reading the
counters writes the buffer first."""

from __future__ import annotations

import asyncio

from engine.models import StoreCounters
from engine.stores.local import database as db
from engine.stores.local.core import LocalCore
from engine.stores.local.lookups import FLUSH_DELAY_S


class CountersMixin(LocalCore):
    """Recording lookups, flushing them, reading the counters."""

    async def record_lookup(
        self, *, hit_key: str | None, latency_ms: float, extend_to: float | None = None
    ) -> None:
        await self.open()
        self._pending.record(hit_key, latency_ms, extend_to)
        if self._pending.full:
            await self._flush()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(FLUSH_DELAY_S, self._flush_later)

    def _flush_later(self) -> None:
        self._flush_timer = None
        self._spawn(self._flush())

    async def _flush(self) -> None:
        if self._pending.empty or self._writer is None:
            return
        batch = self._pending.take()
        try:
            await self._thread(
                self._write_lock,
                lambda: db.record_lookups(
                    self._wconn,
                    hits=batch.hits,
                    misses=batch.misses,
                    latencies=batch.latencies,
                    hit_counts=batch.hit_counts,
                    extend_to=batch.extend_to,
                ),
            )
        except BaseException:
            self._pending.merge(batch)
            raise

    async def counters(self) -> StoreCounters:
        await self.open()
        await self._flush()
        hits, misses, latencies = await self._thread(self._read_lock, db.counters, self._conn)
        return StoreCounters(hits=hits, misses=misses, recent_latencies_ms=latencies)
