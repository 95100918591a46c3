"""Index: what the store holds (documents against its capacity, the eviction policy, evictions per minute,
algorithm, metric, HNSW parameters, fields, failures, memory in all and per entry) and whether the embedder
that filled it is the one configured now."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.errors import IndexMismatchError
from engine.models import EmbedderIdentity, IndexInfo
from semcache_tui.formatting import capacity, evictions, policy, size
from semcache_tui.screens.base import PanelScreen
from semcache_tui.widgets.health import fact_label, fact_value

if TYPE_CHECKING:
    from semcache_tui.app import SemcacheApp

MIGRATE_COMMAND = "semcache-tui migrate plan"


def configured_identity(app: SemcacheApp) -> tuple[str, str, int | None]:
    """The embedder the panel is configured with: from the started service, else the settings."""
    identity = app.identity or (app.embedder.identity if app.embedder is not None else None)
    if identity is not None:
        return identity.provider, identity.model, identity.dimension
    settings = app.settings
    return settings.embedding_provider, settings.model_name, settings.embedding_output_dimension


def identity_problem(
    recorded: EmbedderIdentity | None, configured: tuple[str, str, int | None]
) -> str | None:
    if recorded is None:
        return None
    provider, model, dimension = configured
    differences = []
    if recorded.provider != provider:
        differences.append(f"provider {recorded.provider} vs {provider}")
    if recorded.model != model:
        differences.append(f"model {recorded.model} vs {model}")
    if dimension is not None and recorded.dimension != dimension:
        differences.append(f"dimension {recorded.dimension} vs {dimension}")
    return ", ".join(differences) or None


class IndexScreen(PanelScreen):
    MODE = "index"
    BINDINGS: ClassVar = [
        Binding("r", "refresh", "Refresh", tooltip="Read the index information again"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static("", id="mismatch-banner")
        with VerticalScroll(id="index-body"):
            yield Static("", id="index-freshness")
            yield Static("", id="identity")
            yield Static("", id="index-details")
            yield Static("", id="index-fields")
            yield Static("", id="other-indexes")

    def refresh_data(self) -> None:
        app = self.panel
        info = app.index_info
        configured = configured_identity(app)
        banner = self.query_one("#mismatch-banner", Static)
        problem = identity_problem(info.identity if info else None, configured)
        start_error = app.start_error
        if isinstance(start_error, IndexMismatchError):
            banner.update(
                Text(f"Embedder mismatch: {start_error.message}\nRun `{MIGRATE_COMMAND}` to migrate.")
            )
            banner.display = True
        elif problem and info is not None:
            banner.update(
                Text(
                    f"Embedder mismatch on index {info.name}: {problem}. The cache refuses lookups and stores "
                    f"until this is resolved.\nRun `{MIGRATE_COMMAND}` to move the cache to the configured "
                    "embedder, or configure the recorded one."
                )
            )
            banner.display = True
        else:
            banner.display = False

        freshness = self.query_one("#index-freshness", Static)
        when = "" if app.index_read_at is None else f"as of {app.probe.clock(app.index_read_at)}"
        if app.index_error:
            # The last good numbers stay, marked as such: never shown as if they were current.
            stale = f" · the numbers below are {when}" if info is not None else ""
            freshness.update(Text(f"Cannot read the index: {app.index_error}{stale}", style="bold red"))
        else:
            freshness.update(Text(f"{when} · r reloads" if when else "", style="dim"))
        self.query_one("#identity", Static).update(self.identity_table(info, configured))
        details = self.query_one("#index-details", Static)
        if info is None:
            details.update("" if app.index_error else "Reading the index…")
            return
        details.update(self.details_table(info))
        self.query_one("#index-fields", Static).update(self.fields_table(info))
        indexes = info.extra.get("indexes")
        others = self.query_one("#other-indexes", Static)
        if isinstance(indexes, list | tuple) and indexes:
            others.update(Text("Indexes in this store: " + ", ".join(str(i) for i in indexes)))
        else:
            others.update("")

    def identity_table(self, info: IndexInfo | None, configured: tuple[str, str, int | None]) -> Table:
        table = Table(title="Embedder identity", title_justify="left", expand=True, show_edge=False)
        table.add_column("", style="dim", no_wrap=True)
        table.add_column("recorded in the index")
        table.add_column("configured now")
        table.add_column("", no_wrap=True)
        recorded = info.identity if info else None
        rows = (
            ("provider", recorded.provider if recorded else None, configured[0]),
            ("model", recorded.model if recorded else None, configured[1]),
            ("dimension", recorded.dimension if recorded else None, configured[2]),
        )
        for name, left, right in rows:
            if left is None:
                mark = Text("new index" if info is not None else "", style="dim")
            elif right is None:
                mark = Text("loading", style="dim")
            else:
                mark = Text("same", style="green") if left == right else Text("DIFFERENT", style="bold red")
            table.add_row(
                name,
                "-" if left is None else str(left),
                "? (model loading)" if right is None else str(right),
                mark,
            )
        return table

    def details_table(self, info: IndexInfo) -> Table:
        table = Table(
            title=f"Index {info.name}", title_justify="left", expand=True, show_edge=False, show_header=False
        )
        table.add_column(style="dim", no_wrap=True)
        table.add_column(overflow="fold")
        redact = self.panel.redact
        table.add_row("store", info.store)
        limited = bool(info.max_entries or info.max_entries_per_scope)
        table.add_row("capacity", capacity(info.documents, info.max_entries, info.max_entries_per_scope))
        table.add_row("eviction policy", policy(info.eviction_policy, limited))
        table.add_row("evictions", evictions(info.evictions, info.evictions_per_minute))
        table.add_row("memory per entry", size(info.memory_per_entry))
        table.add_row("algorithm", info.algorithm)
        table.add_row("metric", info.metric)
        for name, value in info.parameters.items():
            table.add_row(fact_label(name), fact_value(name, value))
        table.add_row("memory", fact_value("memory_bytes", info.memory_bytes))
        failures = Text(str(info.indexing_failures), style="bold red" if info.indexing_failures else "")
        table.add_row("indexing failures", failures)
        for name, value in info.extra.items():
            if name != "indexes":
                table.add_row(fact_label(name), redact(fact_value(name, value)))
        return table

    def fields_table(self, info: IndexInfo) -> Table | str:
        if not info.fields:
            return ""
        columns: list[str] = []
        for field in info.fields:
            for key in field:
                if key not in columns:
                    columns.append(key)
        table = Table(title="Fields", title_justify="left", expand=True, show_edge=False)
        for column in columns:
            table.add_column(column.replace("_", " "))
        for field in info.fields:
            table.add_row(*(fact_value(c, field.get(c)) for c in columns))
        return table

    def action_refresh(self) -> None:
        self.panel.poll_now()
