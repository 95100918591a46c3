"""Migration: move the cache to another embedder (provider, model, dimension) step by step.

Target -> plan (``plan_migration``) -> strategy -> typed confirmation -> run with progress
(``run_migration``) -> verify (counts and sample lookups through the new index) -> finalize or roll back.
The engine does the work (the same calls as ``semcache-tui migrate``); this screen only drives it.
An unfinished migration is shown on entry and ``u`` resumes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import ClassVar

from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Static

from engine.cache import SemanticCache
from engine.embeddings.base import Embedder
from engine.migration import (
    MigrationPlan,
    MigrationProgress,
    MigrationState,
    MigrationTarget,
    finalize_migration,
    migration_status,
    plan_migration,
    rollback_migration,
    run_migration,
    verify_migration,
)
from engine.models import EmbedderIdentity
from engine.stores import create_store
from engine.stores.base import VectorStore
from semcache_tui.formatting import duration, size
from semcache_tui.memory import return_freed_memory
from semcache_tui.screens.dialogs import ConfirmDialog, TypedConfirmDialog, if_yes
from semcache_tui.screens.index import configured_identity
from semcache_tui.screens.local_work import LocalWorkScreen

STRATEGIES = ("reembed", "recreate")
#: How many of the source's prompts the verify step looks up through the new index.
VERIFY_SAMPLE = 8


class MigrationProgressed(Message):
    """Posted by the run's progress callback (thread-safe), shown by the screen on the UI thread."""

    def __init__(self, progress: MigrationProgress) -> None:
        super().__init__()
        self.progress = progress


class MigrationScreen(LocalWorkScreen):
    MODE = "migration"
    REMOTE_NOTE = (
        "Migrations work on the store itself: this panel is attached to a server.\n"
        "Run the panel (or `semcache-tui migrate`) with --store/--redis-url on the cache's own store."
    )
    AUTO_FOCUS = ""
    WRITES: ClassVar = frozenset({"run", "resume", "finalize", "rollback", "drop_leftover"})
    BINDINGS: ClassVar = [
        Binding(
            "t", "focus_target", "Target", show=False, tooltip="Edit the target provider, model and dimension"
        ),
        Binding("p", "plan", "Plan", tooltip="What the migration would change; changes nothing"),
        Binding(
            "s",
            "strategy",
            "Strategy",
            show=False,
            tooltip="Switch between reembed (keeps) and recreate (empties)",
        ),
        Binding("r", "run", "Run", tooltip="Migrate (type the index name to confirm)"),
        Binding("u", "resume", "Resume", show=False, tooltip="Continue an unfinished migration"),
        Binding("v", "verify", "Verify", tooltip="Counts and sample lookups through the new index"),
        Binding("f", "finalize", "Finalize", tooltip="Delete the old index's entries (no rollback after)"),
        Binding("b", "rollback", "Rollback", tooltip="Serve from the old index again (y/n)"),
        Binding("l", "reload", "Status", show=False, tooltip="Read the migration status again"),
        Binding(
            "d",
            "drop_leftover",
            "Drop leftover",
            show=False,
            tooltip="Delete the new index a rollback left behind",
        ),
    ]
    DEFAULT_CSS = """
    #to-provider { width: 30; }
    #to-model { width: 1fr; }
    #to-dimension { width: 12; }
    #migration-body { height: 1fr; padding: 0 1; }
    #migration-status, #migration-plan, #migration-strategy, #migration-verify { height: auto; margin-bottom: 1; }
    #migration-progress-row { height: auto; }
    #migration-progress-text { width: 1fr; padding: 0 1; }
    #migration-error { height: auto; color: $error; }
    """

    #: Makes the target embedder; tests swap in an already loaded one.
    embedder_factory: ClassVar[Callable[[MigrationTarget], Embedder] | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.strategy = "reembed"
        self.plan: MigrationPlan | None = None
        self.state: MigrationState | None = None
        self.active: str | None = None
        self.verified: tuple[int, int, int, int] | None = None  # source, target, hits, sampled
        self.last_progress: MigrationProgress | None = None
        self.loaded = False
        #: After a rollback: whether the index it left (the migration's target) is still in the store.
        self.leftover = False
        self._embedders: dict[MigrationTarget, Embedder] = {}

    # -- layout ----------------------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        provider, model, dimension = configured_identity(self.panel)
        with Horizontal(classes="form-row"):
            yield Label("to", classes="field-label")
            yield Input(provider, placeholder="provider", id="to-provider")
            yield Input(model, placeholder="model", id="to-model")
            yield Input(str(dimension or ""), placeholder="dimension", id="to-dimension", restrict=r"[0-9]*")
        with VerticalScroll(id="migration-body"):
            yield Static("", id="migration-status")
            yield Static("", id="migration-plan")
            yield Static("", id="migration-strategy")
            yield from self.compose_progress()
            yield Static("", id="migration-verify")
            yield from self.compose_error()

    def on_mount(self) -> None:
        super().on_mount()
        self.render_all()

    def refresh_data(self) -> None:
        if not self.loaded and self.cache is not None:
            self.loaded = True
            self.load_status()
        self.render_all()

    # -- rendering -------------------------------------------------------------------------------------

    def render_all(self) -> None:
        self.render_status()
        self.render_plan()
        self.render_strategy()
        self.render_verify()

    def render_status(self) -> None:
        widget = self.query_one("#migration-status", Static)
        if self.cache is None:
            widget.update(self.remote_note())
            return
        if not self.loaded or self.active is None:
            widget.update("Reading the migration status…")
            return
        state = self.state
        e = escape
        lines = [f"index [b]{e(self.panel.settings.index_name)}[/b]: serving from [b]{e(self.active)}[/b]"]
        if state is None:
            lines.append("no migration yet: set the target, then [b]p[/b] plans")
        else:
            lines.append(
                f"last migration: {e(state.strategy)} {e(state.source_index)} -> {e(state.target_index)} "
                f"({e(state.target_identity.describe())}): [b]{e(state.phase.replace('_', ' '))}[/b], "
                f"{state.done}/{state.total} entries"
            )
            if state.in_progress:
                lines.append("[b]unfinished[/b]: [b]u[/b] resumes it, [b]b[/b] rolls back")
            elif state.phase == "switched":
                lines.append(
                    "switched: [b]v[/b] verifies, [b]f[/b] finalizes, [b]b[/b] rolls back; "
                    "running servers and this panel follow by themselves"
                )
            elif state.phase == "rolled_back" and self.leftover:
                lines.append(
                    f"the new index [b]{e(state.target_index)}[/b] is still in the store: "
                    "[b]d[/b] drops it (its entries are not served)"
                )
        widget.update("\n".join(lines))

    def render_plan(self) -> None:
        widget = self.query_one("#migration-plan", Static)
        plan = self.plan
        if plan is None:
            widget.update(
                "" if self.cache is None else "No plan yet: [b]p[/b] plans the migration to the target."
            )
            return
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim")
        table.add_column()
        table.add_row("index", f"{plan.index} (physical {plan.source_index}) -> {plan.target_index}")
        table.add_row("from", plan.source.describe() if plan.source else "nothing yet (unbound)")
        table.add_row("to", plan.target.describe())
        table.add_row("changes", "; ".join(plan.changes) if plan.needed else "none: the index matches")
        table.add_row("entries", f"{plan.entries:,}")
        table.add_row("time", f"about {duration(plan.estimated_seconds)} at {plan.embed_rate:.0f} prompts/s")
        table.add_row("storage", f"{size(plan.bytes_before)} -> {size(plan.bytes_after)} (estimated)")
        widget.update(table)

    def render_strategy(self) -> None:
        widget = self.query_one("#migration-strategy", Static)
        if self.cache is None:
            widget.update("")
            return
        about = {
            "reembed": "keeps every entry: re-embeds into a new index while the old one serves",
            "recreate": "EMPTIES the cache: switches to an empty index and deletes the old entries",
        }
        widget.update(f"strategy [b]{self.strategy}[/b] ([b]s[/b] switches): {about[self.strategy]}")

    def render_verify(self) -> None:
        widget = self.query_one("#migration-verify", Static)
        if self.verified is None:
            widget.update("")
            return
        source, target, hits, sampled = self.verified
        style = "green" if source == target and hits == sampled else "yellow"
        widget.update(
            Text(
                f"verified: old index {source:,} entries, new index {target:,}; "
                f"{hits}/{sampled} sample lookups hit through the new index",
                style=style,
            )
        )

    # -- the target ------------------------------------------------------------------------------------

    def target(self) -> MigrationTarget | None:
        provider = self.query_one("#to-provider", Input).value.strip()
        model = self.query_one("#to-model", Input).value.strip()
        dimension_text = self.query_one("#to-dimension", Input).value.strip()
        if not provider or not model:
            self.panel.set_status("Give the target's provider and model", "warning")
            return None
        dimension = int(dimension_text) if dimension_text else None
        return MigrationTarget(
            model=model,
            dimension=dimension,
            provider=provider,
            ollama_base_url=self.panel.settings.ollama_base_url,
            backend=self.panel.settings.embedding_backend,
            settings=self.panel.settings,
        )

    async def embedder_for(self, target: MigrationTarget) -> Embedder:
        """The target's embedder: the panel's own when it already is one (after the switch, verify uses
        the embedder the panel follows with), else one loaded here and kept only until the run ends."""
        current = self.panel.embedder
        identity = current.identity if current is not None else None
        if current is not None and identity is not None and is_target(identity, target):
            return current
        if target not in self._embedders:
            await self.release_embedders()
            factory = type(self).embedder_factory
            self._embedders[target] = factory(target) if factory else target.create_embedder()
        return self._embedders[target]

    async def release_embedders(self) -> None:
        """Close the embedders this screen loaded (each holds a model: ~100 MiB), never the panel's."""
        embedders, self._embedders = list(self._embedders.values()), {}
        for embedder in embedders:
            if embedder is not self.panel.embedder:
                with contextlib.suppress(Exception):  # closing must not keep the panel from quitting
                    await embedder.close()
        if embedders:
            return_freed_memory()

    def stores(self, name: str) -> VectorStore:
        return create_store(self.panel.settings, name)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.set_focus(None)
        self.action_plan()

    def action_focus_target(self) -> None:
        self.query_one("#to-model", Input).focus()

    def action_strategy(self) -> None:
        self.strategy = STRATEGIES[(STRATEGIES.index(self.strategy) + 1) % len(STRATEGIES)]
        self.render_strategy()

    # -- status ----------------------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.load_status()

    @work(exclusive=True, group="migration-status", exit_on_error=False, name="migration status")
    async def load_status(self) -> None:
        cache = self.cache
        if cache is None:
            return
        await cache.open_store()
        self.active, self.state = await migration_status(cache)
        self.leftover = await self.leftover_exists()
        self.loaded = True
        self.render_status()

    async def leftover_exists(self) -> bool:
        """Whether a rollback left the migration's target index in the store (asked without opening it:
        opening would create it)."""
        state = self.state
        if state is None or state.phase != "rolled_back" or state.target_index == self.active:
            return False
        store = self.stores(state.target_index)
        try:
            return await store.exists()
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await store.close()

    # -- plan ------------------------------------------------------------------------------------------

    def action_plan(self) -> None:
        target = self.target()
        if target is not None and self.cache is not None:
            self.make_plan(target)

    @work(exclusive=True, group="migration", exit_on_error=False, name="plan")
    async def make_plan(self, target: MigrationTarget) -> None:
        cache = self.local_cache()
        self.panel.set_status(f"Planning the migration to {target.model} (loading it, measuring its rate)…")
        self.plan = await plan_migration(cache, target, embedder=await self.embedder_for(target))
        self.render_plan()
        if self.plan.needed:
            self.panel.set_status("Planned: [s] picks the strategy, [r] runs it (type the index name)")
        else:
            self.panel.set_status("Nothing to migrate: the index already matches the target", "warning")

    # -- run -------------------------------------------------------------------------------------------

    def action_run(self) -> None:
        if self.refused("running a migration"):
            return
        if self.state is not None and self.state.in_progress:
            self.panel.set_status("A migration is unfinished: [u] resumes it or [b] rolls it back", "warning")
            return
        if self.plan is None:
            self.panel.set_status("Plan first ([p]): the run follows the plan you read", "warning")
            return
        if not self.plan.needed:
            self.panel.set_status("Nothing to migrate: the index already matches the target", "warning")
            return
        target = self.target()
        if target is None:
            return
        plan, strategy, name = self.plan, self.strategy, self.panel.settings.index_name
        if strategy == "recreate":
            message = (
                f"Recreate index {name} for {plan.target.describe()}?\n"
                f"Every one of its {plan.entries:,} entries is DELETED. This cannot be undone."
            )
        else:
            message = (
                f"Re-embed the {plan.entries:,} entries of {name} into {plan.target_index} "
                f"({plan.target.describe()}), about {duration(plan.estimated_seconds)}?\n"
                "The old index keeps serving until the switch and stays until you finalize."
            )

        self.app.push_screen(TypedConfirmDialog(message, name), if_yes(self.migrate, target, strategy))

    def action_resume(self) -> None:
        if self.refused("resuming a migration"):
            return
        state = self.state
        if state is None or not state.in_progress:
            self.panel.set_status("No unfinished migration to resume", "warning")
            return
        target = MigrationTarget.resuming(state.target_identity, self.panel.settings)
        self.migrate(target, state.strategy)

    def on_migration_progressed(self, message: MigrationProgressed) -> None:
        p = message.progress
        self.last_progress = p
        self.show_progress(
            p.done,
            p.total,
            f"{p.phase.replace('_', ' ')} {p.done:,}/{p.total:,} · eta {duration(p.eta_seconds)}",
        )

    @work(exclusive=True, group="migration", exit_on_error=False, name="migration")
    async def migrate(self, target: MigrationTarget, strategy: str) -> None:
        cache = self.local_cache()
        self.begin_progress("starting…")
        self.verified = None
        self.render_verify()
        self.panel.set_status(f"Migrating ({strategy}) to {target.model}…")

        def progress(p: MigrationProgress) -> None:
            self.post_message(MigrationProgressed(p))

        try:
            state = await run_migration(
                cache,
                target,
                self.stores,
                strategy=strategy,  # type: ignore[arg-type]
                embedder=await self.embedder_for(target),
                progress=progress,
            )
        finally:
            # The panel follows the new index with an embedder of its own: this one is done.
            await self.release_embedders()
            await self.load_status().wait()
        self.show_progress(
            state.total, state.total, f"{state.phase.replace('_', ' ')} {state.done:,}/{state.total:,} · done"
        )
        if state.phase == "switched":
            self.panel.set_status(
                f"Switched to {state.target_index}: [v] verifies, then [f] finalizes or [b] rolls back"
            )
        else:
            self.panel.set_status(f"Migration {state.phase.replace('_', ' ')}: {state.target_index}")
        self.panel.poll_now()

    # -- verify ----------------------------------------------------------------------------------------

    def action_verify(self) -> None:
        state = self.state
        if state is None or state.phase not in ("switched", "finalized"):
            self.panel.set_status("Nothing to verify: no migration has switched yet", "warning")
            return
        self.verify(state)

    @work(exclusive=True, group="migration", exit_on_error=False, name="verify")
    async def verify(self, state: MigrationState) -> None:
        cache = self.local_cache()
        target = MigrationTarget.resuming(state.target_identity, self.panel.settings)
        self.panel.set_status(f"Verifying {state.target_index}…")
        found = await verify_migration(
            cache, state, self.stores, await self.embedder_for(target), sample=VERIFY_SAMPLE
        )
        self.verified = (found.source_entries, found.target_entries, found.hits, found.sampled)
        self.render_verify()
        self.panel.set_status(f"Verified {state.target_index}: {found.hits}/{found.sampled} lookups hit")

    # -- finalize and rollback -------------------------------------------------------------------------

    def action_finalize(self) -> None:
        if self.refused("finalizing a migration"):
            return
        state = self.state
        if state is None or state.phase != "switched":
            self.panel.set_status(self.nothing_to("finalize"), "warning")
            return
        message = (
            f"Delete every entry of the old index {state.source_index}?\nNo rollback is possible after this."
        )

        self.app.push_screen(
            TypedConfirmDialog(message, self.panel.settings.index_name), if_yes(self.finalize)
        )

    @work(exclusive=True, group="migration", exit_on_error=False, name="finalize")
    async def finalize(self) -> None:
        cache = self.local_cache()
        deleted = await finalize_migration(cache, self.stores, settings=self.panel.settings)
        self.end_progress()
        await self.load_status().wait()
        self.panel.set_status(f"Finalized: deleted {deleted:,} entries of the old index")

    def action_rollback(self) -> None:
        if self.refused("rolling back a migration"):
            return
        state = self.state
        if state is None or state.phase not in ("copying", "catching_up", "switched"):
            self.panel.set_status(self.nothing_to("roll back"), "warning")
            return
        self.app.push_screen(
            ConfirmDialog(f"Serve from {state.source_index} again (leaving {state.target_index})?"),
            if_yes(self.rollback),
        )

    @work(exclusive=True, group="migration", exit_on_error=False, name="rollback")
    async def rollback(self) -> None:
        cache = self.local_cache()
        state = await rollback_migration(cache, self.stores, settings=self.panel.settings)
        self.verified = None
        self.end_progress()
        await self.load_status().wait()
        self.render_verify()
        left = f"; {state.target_index} is still in the store (d drops it)" if self.leftover else ""
        self.panel.set_status(f"Rolled back: serving from {state.source_index} again{left}")

    def end_progress(self) -> None:
        """The run's bar says what the run did; once the migration is finalized or rolled back it is
        history, not the state: hide it."""
        self.query_one("#migration-progress-row").display = False

    def nothing_to(self, verb: str) -> str:
        state = self.state
        if state is None:
            return f"Nothing to {verb}: no migration yet"
        phase = state.phase.replace("_", " ")
        return (
            f"Nothing to {verb}: the last migration ({state.source_index} -> {state.target_index}) is {phase}"
        )

    # -- the index a rollback leaves -------------------------------------------------------------------

    def action_drop_leftover(self) -> None:
        if self.refused("dropping an index"):
            return
        state = self.state
        if state is None or state.phase != "rolled_back" or not self.leftover:
            self.panel.set_status("No leftover index to drop (only a rollback leaves one)", "warning")
            return
        message = (
            f"Drop index {state.target_index}, left by the rolled-back migration of "
            f"{self.panel.settings.index_name}?\nIts entries are deleted; {state.source_index} keeps serving."
        )
        self.app.push_screen(
            TypedConfirmDialog(message, self.panel.settings.index_name), if_yes(self.drop_leftover, state)
        )

    @work(exclusive=True, group="migration", exit_on_error=False, name="drop leftover")
    async def drop_leftover(self, state: MigrationState) -> None:
        cache = self.local_cache()
        leftover = SemanticCache(self.stores(state.target_index), cache.embedder, cache.policy)
        try:
            await leftover.open_store()
            dropped = await leftover.vector_store.drop()
        finally:
            with contextlib.suppress(Exception):
                await leftover.vector_store.close()
        await self.load_status().wait()
        self.panel.set_status(f"Dropped {state.target_index} ({dropped:,} entries)")
        self.panel.poll_now()

    async def on_unmount(self) -> None:
        await self.release_embedders()


def is_target(identity: EmbedderIdentity, target: MigrationTarget) -> bool:
    """Whether an embedder of ``identity`` is the one ``target`` asks for."""
    return (
        identity.provider == target.provider
        and identity.model == target.model
        and target.dimension is not None
        and identity.dimension == target.dimension
    )
