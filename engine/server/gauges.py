"""Figures read at scrape time, for alerts and the dashboard: whether each dependency answers, readiness,
entries, the store's memory and evictions.

They are computed when ``/metrics`` is asked (one health check and one count, bounded by a timeout), not
kept in prometheus_client gauges: those would need a multiprocess mode with ``--workers``, and a figure
read from the store is the same whichever worker answers. Counters and histograms stay in ``metrics.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from engine.models import HealthReport

if TYPE_CHECKING:
    from engine.server.state import ServerState

#: A scrape must answer even when the store hangs: past this, the store counts as down.
SCRAPE_TIMEOUT_S = 3.0


class _Fixed:
    """A collector that yields metric families made beforehand."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def families(report: HealthReport, ready: bool, entries: int | None) -> list[Metric]:
    up = GaugeMetricFamily(
        "semcache_dependency_up",
        "1 when the dependency answers its health check, else 0",
        labels=["component"],
    )
    for component in report.components:
        up.add_metric([component.name], 0.0 if component.status == "down" else 1.0)
    found: list[Metric] = [
        up,
        GaugeMetricFamily(
            "semcache_ready", "1 once the model is loaded and the store open", value=float(ready)
        ),
    ]
    if entries is not None:
        found.append(
            GaugeMetricFamily("semcache_cache_entries", "Entries in the active index", value=entries)
        )
    store = report.component("store")
    facts = store.facts if store is not None else {}
    memory = _number(facts.get("used_memory", facts.get("size_on_disk_bytes")))
    if memory is not None:
        found.append(
            GaugeMetricFamily(
                "semcache_store_memory_bytes",
                "Memory of the store (Redis used_memory; the embedded store's size on disk)",
                value=memory,
            )
        )
    limit = _number(facts.get("maxmemory"))
    if limit:
        found.append(GaugeMetricFamily("semcache_store_maxmemory_bytes", "Redis maxmemory", value=limit))
    evicted = _number(facts.get("evicted_keys"))
    if evicted is not None:
        found.append(
            CounterMetricFamily(
                "semcache_store_evicted_keys",
                "Keys Redis evicted under maxmemory (INFO evicted_keys)",
                evicted,
            )
        )
    return found


async def scrape(state: ServerState) -> bytes:
    """The figures above in Prometheus' text format."""
    try:
        report = await asyncio.wait_for(state.cache.health(), SCRAPE_TIMEOUT_S)
    except TimeoutError:
        from engine.models import ComponentHealth

        report = HealthReport([ComponentHealth("store", "down", "no health answer in time")])
    entries = None
    store = report.component("store")
    if state.ready and store is not None and store.status != "down":
        with contextlib.suppress(Exception):  # a count that fails leaves the figure out of this scrape
            entries = (await asyncio.wait_for(state.cache.stats(), SCRAPE_TIMEOUT_S)).entries
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families(report, state.ready, entries)))
    return generate_latest(registry)
