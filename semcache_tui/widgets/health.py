"""Status badges, component panels and sparklines with their current number beside them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline, Static

from engine.models import ComponentHealth
from semcache_tui.formatting import ms, size

STATUSES = ("ok", "degraded", "down", "loading", "unknown")


class StatusBadge(Static):
    """The status in words and colour: ok (green), degraded (yellow), down (red), loading (blue)."""

    def __init__(self, status: str = "unknown", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.set_status(status)

    def set_status(self, status: str) -> None:
        status = status if status in STATUSES else "unknown"
        for name in STATUSES:
            self.set_class(name == status, f"-{name}")
        self.update(f" {status.upper()} ")


#: Short names for long fact names, so a card's values keep their width at 80 columns (no word broken).
SHORT_LABELS = {
    "load_seconds": "load time",
    "connected_clients": "clients",
    "maxmemory_policy": "eviction",
    "maxmemory": "max memory",
    "used_memory": "memory",
    "ops_per_sec": "ops/s",
    "evicted_keys": "evicted",
    "uptime_s": "uptime",
    "embed latency": "latency",
}


def fact_label(name: str) -> str:
    if name in SHORT_LABELS:
        return SHORT_LABELS[name]
    for suffix in ("_bytes", "_ms"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return name.replace("_", " ")


def fact_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if name == "maxmemory" and value == 0:
        return "no limit"  # Redis's maxmemory 0: it grows until the host runs out, never evicts
    lowered = name.lower()
    if isinstance(value, int | float) and any(p in lowered for p in ("bytes", "size", "memory", "rss")):
        return size(value)
    if isinstance(value, int | float) and lowered.endswith("_ms"):
        return ms(value)
    if isinstance(value, int | float) and (lowered.endswith("_seconds") or lowered.endswith("_s")):
        return f"{value:,} s" if isinstance(value, int) else f"{value:.3g} s"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def facts_table(rows: Sequence[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, value)
    return table


class ComponentPanel(Vertical):
    """One component of the health report: name, badge, detail line and its facts."""

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="panel")
        self.title = title

    def compose(self) -> ComposeResult:
        with Horizontal(classes="panel-head"):
            yield Label(self.title, classes="panel-title")
            yield StatusBadge()
        yield Static("", classes="panel-detail")
        yield Static("", classes="panel-facts")

    def show(
        self,
        component: ComponentHealth | None,
        rows: Sequence[tuple[str, str]] = (),
        *,
        redact: Any = str,
        hidden: frozenset[str] = frozenset(),
    ) -> None:
        badge = self.query_one(StatusBadge)
        detail = self.query_one(".panel-detail", Static)
        facts = self.query_one(".panel-facts", Static)
        if component is None:
            badge.set_status("unknown")
            detail.update("no report yet")
            facts.update(facts_table(rows))
            return
        badge.set_status(component.status)
        detail.update(Text(redact(component.detail or component.status)))
        self.set_class(component.status == "down", "-down")
        all_rows = list(rows) + [
            (fact_label(k), redact(fact_value(k, v))) for k, v in component.facts.items() if k not in hidden
        ]
        facts.update(facts_table(all_rows))

    def warn(self, message: str) -> None:
        """A warning on the card (in words, so it reads without colour): the badge turns DEGRADED."""
        self.query_one(StatusBadge).set_status("degraded")
        self.query_one(".panel-detail", Static).update(Text(f"WARNING: {message}", style="bold"))

    def show_rows(self, status: str, detail: str, rows: Sequence[tuple[str, str]]) -> None:
        self.query_one(StatusBadge).set_status(status)
        self.query_one(".panel-detail", Static).update(Text(detail))
        self.query_one(".panel-facts", Static).update(facts_table(rows))


class MetricSpark(Horizontal):
    """A named sparkline with the current value beside it."""

    def __init__(self, label: str, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="metric")
        self.label = label

    def compose(self) -> ComposeResult:
        yield Label(self.label, classes="metric-label")
        yield Sparkline([], summary_function=max, classes="metric-spark")
        yield Label("-", classes="metric-value")

    def show(self, values: Sequence[float], current: str) -> None:
        data = list(values)
        if len(set(data)) <= 1:
            # A flat line: the sparkline scales between its own min and max, and draws one value full height.
            data = data[:1] * 2
        self.query_one(Sparkline).data = data
        self.query_one(".metric-value", Label).update(current)
