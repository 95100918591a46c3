"""What the Health screen plots: one sample per poll, kept in a short rolling history.

No Textual here: the poll worker builds a ``Sample`` from the service and the host, the screen renders
it. Everything that varies from run to run (the clock, the host's numbers, measured latencies) goes
through a ``Probe``, so a ``FrozenProbe`` makes snapshots and screenshots repeatable.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from engine.models import CacheStats, ComponentHealth, HealthReport, IndexInfo
from semcache_tui.formatting import span

HISTORY = 120


@dataclass(frozen=True, slots=True)
class HostSample:
    cpu_percent: float
    memory_percent: float
    memory_used: int
    memory_total: int
    process_rss: int


class Probe:
    """The live clock and host."""

    frozen = False

    def __init__(self) -> None:
        self._process: Any = None

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def host(self) -> HostSample:
        import psutil

        if self._process is None:
            self._process = psutil.Process()
            psutil.cpu_percent(None)  # the first call only primes the counter
        memory = psutil.virtual_memory()
        return HostSample(
            cpu_percent=float(psutil.cpu_percent(None)),
            memory_percent=float(memory.percent),
            memory_used=int(memory.used),
            memory_total=int(memory.total),
            process_rss=int(self._process.memory_info().rss),
        )

    def steady(self, component: ComponentHealth) -> ComponentHealth:
        return component

    def steady_stats(self, stats: CacheStats) -> CacheStats:
        return stats

    def steady_index(self, info: IndexInfo) -> IndexInfo:
        return info

    def age(self, timestamp: float) -> str:
        return f"{span(self.wall() - timestamp)} ago"

    def clock(self, timestamp: float | None = None) -> str:
        """A wall-clock time of day (now by default), as the screens' "as of" lines show it."""
        return time.strftime("%H:%M:%S", time.localtime(self.wall() if timestamp is None else timestamp))

    def until(self, timestamp: float | None) -> str:
        return "never" if timestamp is None else f"in {span(timestamp - self.wall())}"


#: Fact names whose values differ between two runs over the same data (timings, sizes on disk, uptime).
_VOLATILE = ("latency", "_ms", "seconds", "uptime", "size", "bytes", "ops", "memory", "rss", "clients", "pid")
#: Fact names that match ``_VOLATILE`` but are configuration, the same from one run to the next: frozen,
#: Redis's ``maxmemory`` 0 (no limit) would be drawn as a limit.
_CONFIGURED = frozenset({"maxmemory"})


class FrozenProbe(Probe):
    """A fixed clock, fixed host numbers and fixed timings: for snapshot tests and screenshots."""

    frozen = True

    def __init__(self, now: float = 1_000.0, wall: float = 1_767_225_600.0) -> None:
        super().__init__()
        self._now = now
        self._wall = wall

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._wall

    def host(self) -> HostSample:
        return HostSample(12.5, 41.0, 6_600_000_000, 16_000_000_000, 310_000_000)

    def steady(self, component: ComponentHealth) -> ComponentHealth:
        facts = {k: (_frozen_value(v) if _volatile(k) else v) for k, v in component.facts.items()}
        latency = None if component.latency_ms is None else 4.2
        return replace(component, latency_ms=latency, facts=facts)

    def steady_stats(self, stats: CacheStats) -> CacheStats:
        return replace(
            stats,
            latency_p50_ms=None if stats.latency_p50_ms is None else 8.0,
            latency_p95_ms=None if stats.latency_p95_ms is None else 14.0,
        )

    def steady_index(self, info: IndexInfo) -> IndexInfo:
        extra = {k: (_frozen_value(v) if _volatile(k) else v) for k, v in info.extra.items()}
        # Whether a rate is known, and what it is, depends on how far apart the reads fell: fixed, as the
        # timings are.
        rate = 1.5 if info.evictions else 0.0
        return replace(
            info,
            memory_bytes=None if info.memory_bytes is None else 1_048_576,
            extra=extra,
            evictions_per_minute=rate,
        )

    def age(self, timestamp: float) -> str:
        return "2m ago"

    def clock(self, timestamp: float | None = None) -> str:
        return "12:00:00"

    def until(self, timestamp: float | None) -> str:
        return "never" if timestamp is None else "in 7d"


def _volatile(name: str) -> bool:
    lowered = name.lower()
    return lowered not in _CONFIGURED and any(part in lowered for part in _VOLATILE)


def _frozen_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return 1024 if isinstance(value, int) else 1.5


@dataclass(slots=True)
class Sample:
    """One poll: what the service said, and the rates derived from the previous poll."""

    at: float
    report: HealthReport | None
    stats: CacheStats | None
    host: HostSample | None
    lookups_per_s: float | None = None
    error: str | None = None
    #: The attached server's ``/proxy/stats`` figures, when it runs the proxy.
    proxy: dict[str, Any] | None = None

    @property
    def hit_rate(self) -> float | None:
        return None if self.stats is None or not self.stats.lookups else self.stats.hit_rate

    @property
    def latency_p50(self) -> float | None:
        return None if self.stats is None else self.stats.latency_p50_ms

    @property
    def latency_p95(self) -> float | None:
        return None if self.stats is None else self.stats.latency_p95_ms


@dataclass(slots=True)
class History:
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def add(self, sample: Sample) -> Sample:
        previous = self.latest
        if (
            previous is not None
            and previous.stats is not None
            and sample.stats is not None
            and sample.at > previous.at
        ):
            delta = sample.stats.lookups - previous.stats.lookups
            sample.lookups_per_s = max(0.0, delta / (sample.at - previous.at))
        elif previous is not None and sample.stats is not None:
            sample.lookups_per_s = 0.0
        self.samples.append(sample)
        return sample

    def clear(self) -> None:
        self.samples.clear()

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def series(self, measure: Callable[[Sample], float | None]) -> list[float]:
        """The non-missing values of one measure, oldest first (e.g. ``lambda s: s.hit_rate``)."""
        values = (measure(s) for s in self.samples)
        return [float(v) for v in values if v is not None]
