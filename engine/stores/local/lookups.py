"""Lookup counters waiting to be written: a store records every lookup, so one write per lookup would cost a
disk sync each; they are batched for up to ``FLUSH_DELAY_S`` instead. They are not acknowledged writes, so
losing the last second of them to a crash is acceptable."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.models import CacheEntry
from engine.stores.base import LATENCY_WINDOW

FLUSH_DELAY_S = 0.5


@dataclass(slots=True)
class PendingLookups:
    hits: int = 0
    misses: int = 0
    latencies: list[float] = field(default_factory=list)
    hit_counts: dict[str, int] = field(default_factory=dict)
    extend_to: dict[str, float] = field(default_factory=dict)

    def record(self, hit_key: str | None, latency_ms: float, extend_to: float | None) -> None:
        if hit_key is None:
            self.misses += 1
        else:
            self.hits += 1
            self.hit_counts[hit_key] = self.hit_counts.get(hit_key, 0) + 1
            if extend_to is not None:
                self.extend_to[hit_key] = max(extend_to, self.extend_to.get(hit_key, extend_to))
        self.latencies.append(float(latency_ms))
        del self.latencies[:-LATENCY_WINDOW]

    @property
    def empty(self) -> bool:
        return not (self.hits or self.misses)

    @property
    def full(self) -> bool:
        return len(self.latencies) >= LATENCY_WINDOW

    def take(self) -> PendingLookups:
        """Everything recorded so far, leaving this buffer empty."""
        taken = PendingLookups(self.hits, self.misses, self.latencies, self.hit_counts, self.extend_to)
        self.hits = self.misses = 0
        self.latencies, self.hit_counts, self.extend_to = [], {}, {}
        return taken

    def merge(self, other: PendingLookups) -> None:
        """Put back a batch whose write failed, so it is retried with the next one."""
        self.hits += other.hits
        self.misses += other.misses
        self.latencies[:0] = other.latencies
        del self.latencies[:-LATENCY_WINDOW]
        for key, n in other.hit_counts.items():
            self.hit_counts[key] = self.hit_counts.get(key, 0) + n
        for key, when in other.extend_to.items():
            self.extend_to[key] = max(when, self.extend_to.get(key, when))

    def overlay(self, entry: CacheEntry) -> CacheEntry:
        """The entry as it will be once this batch is written, so this process reads its own lookups."""
        entry.hit_count += self.hit_counts.get(entry.key, 0)
        when = self.extend_to.get(entry.key)
        if when is not None and entry.expires_at is not None:
            entry.expires_at = max(entry.expires_at, when)
        return entry
