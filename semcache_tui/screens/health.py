"""Health: the store, the embedder, the cache and the host, refreshed by the app's poll."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from engine.models import ComponentHealth, IndexInfo
from semcache_tui.formatting import capacity, evictions, ms, percent, size
from semcache_tui.screens.base import PanelScreen
from semcache_tui.screens.dialogs import InputDialog
from semcache_tui.widgets.health import ComponentPanel, MetricSpark

#: Store facts said elsewhere on the card (its title and detail line) or twice over (the human-readable
#: memory): left out so the Redis card fits at 100x30.
STORE_FACTS_SHOWN_ELSEWHERE = frozenset(
    # bookkeeping_evictable: when true the store is degraded and its detail line says why and what to do.
    {
        "store",
        "url",
        "path",
        "redis_version",
        "search_version",
        "used_memory_human",
        "import_incomplete",
        "bookkeeping_evictable",
    }
)


def import_marker(store: ComponentHealth | None, info: IndexInfo | None) -> str | None:
    """The marker of an import that was interrupted (or is running), from the health facts or the index."""
    marker = store.facts.get("import_incomplete") if store is not None else None
    if marker is None and info is not None:
        marker = info.extra.get("import_incomplete")
    if marker is None:
        return None
    if isinstance(marker, dict):
        return f"{marker.get('file', 'a backup')}, {marker.get('written', '?')} of {marker.get('total', '?')} written"
    return str(marker)


def entries_held(entries: int, info: IndexInfo | None) -> str:
    """The cache card's entries: against the capacity, with the eviction policy, when there is a limit."""
    if info is None:
        return f"{entries:,}"
    if not (info.max_entries or info.max_entries_per_scope):
        return capacity(entries, None, noun="")
    held = capacity(entries, info.max_entries, info.max_entries_per_scope, noun="")
    return f"{held}, {info.eviction_policy}"


def proxy_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    hits, misses, bypasses = (int(figures.get(k) or 0) for k in ("hits", "misses", "bypasses"))
    served = hits + misses
    mean = figures.get("upstream_mean_seconds")
    return [
        ("requests", f"{hits:,} hits, {misses:,} misses, {bypasses:,} bypassed"),
        ("hit rate", percent(hits / served if served else None)),
        (
            "upstream",
            f"{int(figures.get('upstream_calls') or 0):,} calls, mean {ms(None if mean is None else mean * 1000)}",
        ),
        ("errors", f"{int(figures.get('upstream_errors') or 0):,}"),
    ]


def _interval_problem(text: str) -> str | None:
    try:
        value = float(text)
    except ValueError:
        return "Type a number of seconds, e.g. 2 or 0.5"
    return None if 0.2 <= value <= 3600 else "Use 0.2 to 3600 seconds"


class HealthScreen(PanelScreen):
    MODE = "health"
    BINDINGS: ClassVar = [
        Binding("r", "refresh", "Refresh", tooltip="Poll the service now"),
        Binding("p", "pause", "Pause/resume", tooltip="Pause or resume the automatic refresh"),
        # Listed by ? and the palette; out of the footer so ? and q fit at 80 columns.
        Binding("plus,equals_sign", "interval(1)", "Slower", tooltip="Refresh less often", show=False),
        Binding("minus", "interval(-1)", "Faster", tooltip="Refresh more often", show=False),
        Binding("i", "set_interval", "Interval…", tooltip="Type the refresh interval in seconds"),
    ]

    def compose_body(self) -> ComposeResult:
        # Two columns, each stacked to its own height (a grid would give every row its tallest card's
        # height): the Redis store card is long, and at 100x30 every card must still be in sight.
        with VerticalScroll(id="health-body"):
            yield Static("", id="poll-line")
            with Horizontal(id="health-grid"):
                with Vertical(classes="health-column"):
                    yield ComponentPanel("Cache", id="cache-panel")
                    yield ComponentPanel("Host", id="host-panel")
                    yield ComponentPanel("Proxy", id="proxy-panel")
                    with Vertical(id="spark-grid"):
                        yield MetricSpark("hit rate", id="spark-hit-rate")
                        yield MetricSpark("lookups/s", id="spark-lookups")
                        yield MetricSpark("p95 ms", id="spark-latency")
                with Vertical(classes="health-column"):
                    yield ComponentPanel("Store", id="store-panel")
                    yield ComponentPanel("Embedder", id="embedder-panel")
            yield Static("", id="other-components")

    def refresh_data(self) -> None:
        app = self.panel
        sample = app.history.latest
        state = "paused" if app.paused else f"every {app.refresh_interval:g}s"
        polled = "waiting for the first poll…" if sample is None else f"{app.polls:,} polls"
        self.query_one("#poll-line", Static).update(
            f"Refresh {state} · {polled} · [b]r[/b] now, [b]p[/b] pause, [b]+/-[/b] interval"
        )
        if sample is None:
            return
        report = sample.report
        redact = app.redact
        store = report.component("store") if report else None
        embedder = report.component("embedder") if report else None
        if sample.error and report is None:
            store = ComponentHealth("store", "down", sample.error)
            embedder = self.last_seen("embedder", sample.error)
        elif report is not None and (store is None or embedder is None):
            # Attached to a server that does not answer: the report names the server as down and says
            # nothing of the components behind it; show what they last said, and when, not "no report".
            down = next((c for c in report.components if c.status == "down"), None)
            reason = down.detail if down is not None else "no answer"
            store = store or self.last_seen("store", reason)
            embedder = embedder or self.last_seen("embedder", reason)
        store_rows = [("latency", ms(store.latency_ms))] if store and store.latency_ms is not None else []
        store_panel = self.query_one("#store-panel", ComponentPanel)
        interrupted = import_marker(store, app.index_info)
        warned = interrupted is not None and store is not None and store.status != "down"
        if warned:
            store_rows.insert(0, ("import", f"INCOMPLETE: {redact(interrupted)}; run it again"))
        where = store.facts.get("url") or store.facts.get("path") if store is not None else None
        if store is not None and where:
            # In the detail line, the card's full width: in the narrow value column a URL or a path is
            # broken mid-word.
            store = replace(store, detail=f"{store.detail} at {where}")
        store_panel.show(store, store_rows, redact=redact, hidden=STORE_FACTS_SHOWN_ELSEWHERE)
        if warned:
            store_panel.warn("an import was interrupted")
        embed_rows = []
        if embedder is not None and embedder.latency_ms is not None:
            embed_rows.append(("latency", ms(embedder.latency_ms)))
        if embedder is None and not app.started:
            embedder = ComponentHealth("embedder", "loading", "starting…")
        self.query_one("#embedder-panel", ComponentPanel).show(embedder, embed_rows, redact=redact)

        stats = sample.stats
        cache_panel = self.query_one("#cache-panel", ComponentPanel)
        if stats is None:
            cache_panel.show_rows(
                "down" if sample.error else "unknown", redact(sample.error or "no stats"), []
            )
        else:
            point = app.verifier_point()
            verifier = (
                "off: distance alone" if point is None else f"on, target {point[0]:.2f}, cut {point[1]:.2f}"
            )
            info = app.index_info
            capacity_rows: list[tuple[str, str]] = []
            if info is not None:
                # An index that never had a limit never evicts: the row would only take a line at 80x24.
                if info.max_entries or info.max_entries_per_scope or info.evictions:
                    capacity_rows.append(("evictions", evictions(info.evictions, info.evictions_per_minute)))
                capacity_rows.append(("mem/entry", size(info.memory_per_entry)))
            cache_panel.show_rows(
                "ok",
                f"cap {app.service.policy.threshold:.3f}",
                [
                    ("entries", entries_held(stats.entries, info)),
                    *capacity_rows,
                    ("lookups", f"{stats.lookups:,} ({stats.hits:,} hits, {stats.misses:,} misses)"),
                    ("hit rate", percent(sample.hit_rate)),
                    ("lookups/s", "-" if sample.lookups_per_s is None else f"{sample.lookups_per_s:.2f}"),
                    ("latency", f"p50 {ms(stats.latency_p50_ms)}, p95 {ms(stats.latency_p95_ms)}"),
                    ("verifier", verifier),
                    ("feedback", f"{stats.feedback_wrong:,} wrong, {stats.feedback_right:,} right"),
                ],
            )
        proxy_panel = self.query_one("#proxy-panel", ComponentPanel)
        proxy_panel.display = sample.proxy is not None
        if sample.proxy is not None:
            proxy_panel.show_rows(
                "ok", redact(f"upstream {sample.proxy.get('upstream') or '-'}"), proxy_rows(sample.proxy)
            )
        host = sample.host
        host_panel = self.query_one("#host-panel", ComponentPanel)
        if host is None:
            host_panel.show_rows("unknown", "not sampled", [])
        else:
            host_panel.show_rows(
                "degraded" if host.cpu_percent > 90 or host.memory_percent > 90 else "ok",
                "this machine",
                [
                    ("cpu", f"{host.cpu_percent:.1f}%"),
                    (
                        "memory",
                        f"{size(host.memory_used)} of {size(host.memory_total)} ({host.memory_percent:.0f}%)",
                    ),
                    ("panel rss", size(host.process_rss)),
                ],
            )
        history = app.history
        self.query_one("#spark-hit-rate", MetricSpark).show(
            history.series(lambda s: s.hit_rate), percent(sample.hit_rate)
        )
        self.query_one("#spark-lookups", MetricSpark).show(
            history.series(lambda s: s.lookups_per_s),
            "-" if sample.lookups_per_s is None else f"{sample.lookups_per_s:.2f}",
        )
        self.query_one("#spark-latency", MetricSpark).show(
            history.series(lambda s: s.latency_p95), ms(sample.latency_p95)
        )
        others = [c for c in (report.components if report else []) if c.name not in ("store", "embedder")]
        other_components = self.query_one("#other-components", Static)
        # Out of the layout when empty: its blank line made the tall Redis card scroll at 100x30.
        other_components.display = bool(others)
        other_components.update(
            Text("\n".join(f"{c.name}: {c.status.upper()} {redact(c.detail)}" for c in others))
        )

    def last_seen(self, name: str, error: str) -> ComponentHealth | None:
        """A component the last poll could not ask about: unknown now, with what it last said and when."""
        app = self.panel
        for sample in reversed(app.history.samples):
            component = sample.report.component(name) if sample.report else None
            if component is not None:
                when = app.probe.clock(app.probe.wall() - (app.probe.now() - sample.at))
                return ComponentHealth(
                    name, "unknown", f"no answer now; {component.status.upper()} as of {when}"
                )
        return ComponentHealth(name, "unknown", f"no answer: {error}") if app.started else None

    def action_refresh(self) -> None:
        self.panel.poll_now()

    def action_pause(self) -> None:
        self.panel.toggle_pause()
        self.refresh_data()

    def action_interval(self, direction: int) -> None:
        self.panel.step_interval(direction)
        self.refresh_data()

    def action_set_interval(self) -> None:
        def done(value: object) -> None:
            if isinstance(value, str):
                self.panel.set_refresh_interval(float(value))
                self.refresh_data()

        self.app.push_screen(
            InputDialog(
                "Refresh interval (seconds)",
                value=f"{self.panel.refresh_interval:g}",
                check=_interval_problem,
            ),
            done,
        )
