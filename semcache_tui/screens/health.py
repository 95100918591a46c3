"""Health: the store, the embedder, the cache and the host, refreshed by the app's poll."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.widgets import Static

from engine.models import ComponentHealth
from semcache_tui.formatting import ms, percent, size
from semcache_tui.screens.base import PanelScreen
from semcache_tui.screens.dialogs import InputDialog
from semcache_tui.widgets.health import ComponentPanel, MetricSpark


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
        with VerticalScroll(id="health-body"):
            yield Static("", id="poll-line")
            with Grid(id="health-grid"):
                yield ComponentPanel("Store", id="store-panel")
                yield ComponentPanel("Embedder", id="embedder-panel")
                yield ComponentPanel("Cache", id="cache-panel")
                yield ComponentPanel("Host", id="host-panel")
            with Grid(id="spark-grid"):
                yield MetricSpark("hit rate", id="spark-hit-rate")
                yield MetricSpark("lookups/s", id="spark-lookups")
                yield MetricSpark("p95 ms", id="spark-latency")
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
        store_rows = [("latency", ms(store.latency_ms))] if store and store.latency_ms is not None else []
        self.query_one("#store-panel", ComponentPanel).show(store, store_rows, redact=redact)
        embed_rows = []
        if embedder is not None and embedder.latency_ms is not None:
            embed_rows.append(("embed latency", ms(embedder.latency_ms)))
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
            cache_panel.show_rows(
                "ok",
                f"threshold {app.service.policy.threshold:.3f}",
                [
                    ("entries", f"{stats.entries:,}"),
                    ("lookups", f"{stats.lookups:,} ({stats.hits:,} hits, {stats.misses:,} misses)"),
                    ("hit rate", percent(sample.hit_rate)),
                    ("lookups/s", "-" if sample.lookups_per_s is None else f"{sample.lookups_per_s:.2f}"),
                    ("latency p50", ms(stats.latency_p50_ms)),
                    ("latency p95", ms(stats.latency_p95_ms)),
                ],
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
        self.query_one("#other-components", Static).update(
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
