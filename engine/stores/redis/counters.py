"""The shared bookkeeping of ``RedisStore``: hit/miss counters, recent latencies and per-entry hit counts.

They live in Redis beside the entries (see ``schema.Keys``), so every replica sharing the Redis counts
into the same numbers.
"""

from __future__ import annotations

from typing import Any

from engine.models import CacheEntry, StoreCounters
from engine.stores.base import LATENCY_WINDOW
from engine.stores.redis import query as q
from engine.stores.redis.core import RedisCore

# One round trip per lookup. Hit counts live in a side hash, not in the entry: touching any field of an
# indexed HASH makes RediSearch re-index the whole document, HNSW vector included (~1.5 ms at 20k).
_RECORD_LOOKUP = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
if #KEYS == 4 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
  if ARGV[5] ~= '' then
    redis.call('PEXPIREAT', KEYS[3], ARGV[5])
    redis.call('HSET', KEYS[3], 'expires_at', ARGV[6])
  end
end
return 1
"""


class CountersMixin(RedisCore):
    """``record_lookup`` and ``counters``, and the hit counts every entry read fills in."""

    async def _with_hits(self, entries: list[CacheEntry]) -> list[CacheEntry]:
        if entries:
            counts = await self._run(lambda: self.client.hmget(self.keys.hits, [e.key for e in entries]))
            for entry, count in zip(entries, counts, strict=True):
                entry.hit_count = int(count or 0)
        return entries

    async def record_lookup(
        self, *, hit_key: str | None, latency_ms: float, extend_to: float | None = None
    ) -> None:
        keys = [self.keys.stats, self.keys.latencies]
        args: list[Any] = ["hits" if hit_key else "misses", f"{latency_ms:.4f}", LATENCY_WINDOW]
        if hit_key:
            keys += [self.keys.entry(hit_key), self.keys.hits]
            extend = (str(int(extend_to * 1000)), f"{extend_to:.6f}") if extend_to is not None else ("", "")
            args += [hit_key, *extend]
        await self._run(lambda: self.client.eval(_RECORD_LOOKUP, len(keys), *keys, *args))

    async def counters(self) -> StoreCounters:
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.keys.stats, ["hits", "misses"])
        pipe.lrange(self.keys.latencies, 0, LATENCY_WINDOW - 1)
        (hits, misses), latencies = await self._run(pipe.execute)
        return StoreCounters(int(hits or 0), int(misses or 0), [q.number(v) for v in latencies])
