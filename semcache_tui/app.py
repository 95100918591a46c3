"""``SemcacheApp``: the control panel, written against the ``CacheService`` protocol only.

    SemcacheApp(service, settings, read_only=False, refresh_interval=2.0).run()

The first frame comes before the model has loaded: ``service.start()`` runs in a worker while the Health
screen already shows the store. One self-rescheduling poll feeds every screen (the next poll is armed
when the last one finishes, so polls never pile up), and nothing is redrawn while a dialog is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from engine.assembly import IndexFollower
from engine.cache import SemanticCache
from engine.client import RemoteCache
from engine.config import Settings
from engine.embeddings.base import Embedder
from engine.errors import BackendUnavailableError, NotFoundError, SemcacheError
from engine.models import CacheStats, EmbedderIdentity, HealthReport, IndexInfo
from engine.redact import redact_secret, redact_url
from engine.service import CacheService
from semcache_tui.formatting import describe_error
from semcache_tui.memory import return_freed_memory
from semcache_tui.monitor import History, Probe, Sample
from semcache_tui.palette import PanelCommands
from semcache_tui.screens import NAV, NavItem, PanelScreen
from semcache_tui.screens.dialogs import ConfirmDialog, KeysDialog

#: The refresh intervals that + and - step through, in seconds.
INTERVALS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: A poll that takes longer than this is reported as a failure instead of holding the next one back.
POLL_TIMEOUT = 10.0
#: What the location line calls each store kind.
STORE_LABELS = {"local": "embedded", "redis": "redis"}


class SemcacheApp(App[None]):
    CSS_PATH = "semcache.tcss"
    TITLE = "semcache"
    COMMANDS: ClassVar = App.COMMANDS | {PanelCommands}
    MODES: ClassVar = {item.mode: item.screen for item in NAV}
    DEFAULT_MODE = NAV[0].mode
    BINDINGS: ClassVar = [
        *(Binding(item.key, f"show('{item.mode}')", item.label, show=False) for item in NAV),
        Binding("question_mark", "keys", "Keys"),
        Binding("f1", "keys", "Keys", show=False, priority=True),
        Binding("ctrl+p", "command_palette", "Commands", show=False),
        Binding("escape", "leave_field", "Leave field", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        service: CacheService,
        settings: Settings,
        *,
        read_only: bool = False,
        refresh_interval: float = 2.0,
        probe: Probe | None = None,
        pairs_path: str | Path | None = None,
        close_service: bool = True,
    ) -> None:
        super().__init__()
        self.service = service
        self._first_service: CacheService | None = service
        self.settings = settings
        self.follower = IndexFollower(settings)
        self.read_only = read_only
        self.refresh_interval = refresh_interval
        self.probe = probe or Probe()
        self.pairs_path = str(pairs_path) if pairs_path else ""
        self.close_service = close_service
        self.nav: tuple[NavItem, ...] = NAV
        self.history = History()
        self.index_info: IndexInfo | None = None
        self.index_error: str | None = None
        #: When (``probe.wall()``) ``index_info`` was last read successfully.
        self.index_read_at: float | None = None
        #: Conditions that last while something is wrong (an outage), by kind: raised once, cleared once.
        self.conditions: dict[str, str] = {}
        #: Polls taken since the panel started (the history keeps only the last ``HISTORY``).
        self.polls = 0
        self.identity: EmbedderIdentity | None = None
        self.started = False
        self.start_error: SemcacheError | None = None
        self.paused = False
        self.status_message = "Starting: the store opens first, the model loads in the background."
        self.status_severity = "information"
        #: The threshold the query lab marks results with; applied to the service only on request.
        self.lab_threshold = float(service.policy.threshold)
        #: The target precision the query lab judges with; ``None``: the running cache's own.
        self.lab_target: float | None = service.policy.target_precision
        self._poll_timer: Timer | None = None
        #: The cache this panel opened itself by following the active index, served now (``None``: the first).
        self._followed: SemanticCache | None = None
        #: The embedder this panel loaded for ``_followed`` (``None``: it borrows the first service's).
        self._owned_embedder: Embedder | None = None
        #: Followed caches (with the embedder each leaves behind, if this panel loaded it) no longer served:
        #: released at the next poll when no screen's worker may still hold them. Keeping them was the
        #: panel's memory growth: one loaded model per index switch (issue 14, item 13).
        self._retired: list[tuple[SemanticCache, Embedder | None]] = []
        self._polling = False
        self._no_proxy = False
        self._repoll = False
        self._starting = False
        self._closed = False
        if self.probe.frozen:
            self.animation_level = "none"

    # -- life cycle ------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.poll_now()
        # Importing torch holds the GIL for seconds: begin only once the first frame is on screen.
        self.call_after_refresh(self.start_service)
        if not self.is_headless:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._terminal_gone)
            self.set_interval(5.0, self._check_terminal)

    async def on_unmount(self) -> None:
        await self.close_service_once()

    async def close_service_once(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._followed is not None:  # opened here, so closed here whoever owns the first one
            self._retired.append((self._followed, self._owned_embedder))
            self._followed, self._owned_embedder = None, None
        await self.release_retired(force=True)
        if self.close_service and self._first_service is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._first_service.close(), timeout=5.0)

    def _terminal_gone(self) -> None:
        self.exit(return_code=129)

    def _check_terminal(self) -> None:
        """Over SSH a dropped connection may not deliver SIGHUP to us; the controlling tty then vanishes."""
        try:
            fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
        except OSError:
            self._terminal_gone()
        else:
            os.close(fd)

    @work(exclusive=True, group="start", exit_on_error=False, name="start")
    async def start_service(self) -> None:
        self._starting = True
        try:
            self.identity = await self.service.start()
        except SemcacheError as exc:
            if self.start_error is not None and str(exc) == str(self.start_error):
                self.start_error = exc
                return  # a retry failing the same way: already shown, keep the screen quiet
            self.start_error = exc
            raise
        except Exception as exc:  # an unnamed failure (a dropped connection) is retried as an outage
            self.start_error = BackendUnavailableError(describe_error(exc))
            raise
        else:
            self.started = True
            self.start_error = None
            self.set_status(f"Ready: embedder {self.identity.describe()}")
        finally:
            self._starting = False
            self.poll_now()

    def retry_start(self) -> None:
        """A start that failed because a dependency was down is tried again on the panel's interval, so a
        panel started during an outage finishes starting when the store (or the server) comes back."""
        if self.started or self._starting or self._closed:
            return
        if isinstance(self.start_error, BackendUnavailableError):
            self.start_service()

    # -- the poll --------------------------------------------------------------------------------------

    def poll_now(self) -> None:
        """Poll at once; if a poll is running, poll again as soon as it finishes (never two at a time)."""
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        if self._polling:
            self._repoll = True
            return
        self._polling = True
        self._poll()

    def _arm_poll(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        if self._repoll:
            self._repoll = False
            self.poll_now()
        elif not self.paused:
            self._poll_timer = self.set_timer(self.refresh_interval, self.poll_now)

    @work(group="poll", exit_on_error=False, name="poll")
    async def _poll(self) -> None:
        try:
            self.retry_start()
            await self.follow_active_index()
            sample = await self.take_sample()
            self.history.add(sample)
            self.polls += 1
            self.show_data()
        finally:
            self._polling = False
            self._arm_poll()

    async def follow_active_index(self) -> None:
        """After a migration switched the active index (from this panel or anywhere else), serve the index
        it names, with the embedder that index records (engine/assembly.py)."""
        await self.release_retired()
        service = self.service
        if not self.started or not isinstance(service, SemanticCache):
            return  # not started yet, or attached to a server (which follows by itself)
        try:
            physical = await asyncio.wait_for(self.follower.moved_to(service), POLL_TIMEOUT)
            move = None if physical is None else await self.follower.open(physical, self.base_for(physical))
        except Exception as exc:  # keep serving the current index; the next poll tries again
            self.raise_condition(
                "follow", f"Could not follow the active index: {self.redact(describe_error(exc))}"
            )
            return
        self.clear_condition("follow", "The active index can be read again")
        if physical is None or move is None:
            return
        previous, previous_owned = self._followed, self._owned_embedder
        embedder = move.cache.embedder
        if not move.shares_embedder:
            self._owned_embedder = embedder
        elif embedder is not previous_owned:
            self._owned_embedder = None  # the first service's embedder: its owner closes it
        if previous is not None:
            self._retired.append((previous, None if previous_owned is embedder else previous_owned))
        move.cache.policy = service.policy  # the threshold applied here stays, whichever cache lent its model
        self._followed = move.cache
        self.service = move.cache
        self.identity = move.cache.embedder.identity
        described = self.identity.describe() if self.identity else "its embedder"
        self.set_status(f"The active index is now {physical}: serving it with {described}")

    def base_for(self, physical: str) -> SemanticCache:
        """The cache whose embedder a move to ``physical`` may share: the first service when the pointer
        comes back to its index (a rollback), so its model is not loaded a second time."""
        first = self._first_service
        if isinstance(first, SemanticCache) and first.vector_store.name == physical:
            return first
        return self.service  # type: ignore[return-value]

    async def release_retired(self, *, force: bool = False) -> None:
        """Close the followed caches no longer served, once no worker other than the poll may hold them (a
        migration's worker keeps its cache until it ends)."""
        if not self._retired:
            return
        if not force and any(w.is_running and w.group not in ("poll", "start") for w in self.workers):
            return
        retired, self._retired = self._retired, []
        for cache, embedder in retired:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(IndexFollower.close(cache, keep_embedder=True), timeout=5.0)
            if embedder is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(embedder.close(), timeout=5.0)
        return_freed_memory()

    async def take_sample(self) -> Sample:
        """Health, stats and index information at once; each failure is kept, none stops the others."""
        service, probe = self.service, self.probe
        results = await asyncio.gather(
            asyncio.wait_for(service.health(), POLL_TIMEOUT),
            asyncio.wait_for(service.stats(), POLL_TIMEOUT),
            asyncio.wait_for(service.index_info(), POLL_TIMEOUT),
            self.proxy_figures(),
            return_exceptions=True,
        )
        health, counted, info, proxy = results
        errors: list[str] = []
        report: HealthReport | None = None
        if isinstance(health, BaseException):
            errors.append(f"health: {describe_error(health)}")
        else:
            health.components = [probe.steady(c) for c in health.components]
            report = health
        stats: CacheStats | None = None
        if isinstance(counted, BaseException):
            errors.append(f"stats: {describe_error(counted)}")
        else:
            stats = probe.steady_stats(counted)
        if isinstance(info, BaseException):
            self.index_error = self.redact(describe_error(info))
        else:
            self.index_info = probe.steady_index(info)
            self.index_error = None
            self.index_read_at = probe.wall()
        if errors and self.started:
            self.raise_condition("poll", f"Cannot read the cache: {self.redact('; '.join(errors))}")
        elif not errors:
            self.clear_condition("poll", "The cache answers again")
        host = None
        with contextlib.suppress(Exception):
            host = probe.host()
        error = self.redact("; ".join(errors)) if errors else None
        figures = proxy if isinstance(proxy, dict) else None
        return Sample(at=probe.now(), report=report, stats=stats, host=host, error=error, proxy=figures)

    async def proxy_figures(self) -> dict[str, Any] | None:
        """The attached server's ``/proxy/stats`` when it runs the proxy; ``None`` otherwise (a server
        without the route is not asked again)."""
        if not isinstance(self.service, RemoteCache) or self._no_proxy:
            return None
        try:
            figures = await asyncio.wait_for(self.service._json("GET", "/proxy/stats"), POLL_TIMEOUT)
        except NotFoundError:
            self._no_proxy = True
            return None
        return figures if isinstance(figures, dict) else None

    def show_data(self) -> None:
        """Redraw the current screen, unless a dialog is open (it redraws when the dialog closes)."""
        if isinstance(self.screen, ModalScreen):
            return
        if isinstance(self.screen, PanelScreen):
            self.screen.refresh_data()
            for bar in self.screen.query("NavBar"):
                bar.refresh_bar()  # type: ignore[attr-defined]

    def toggle_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            if self._poll_timer is not None:
                self._poll_timer.stop()
                self._poll_timer = None
            self.set_status("Refresh paused (p resumes)")
        else:
            self.set_status(f"Refresh resumed, every {self.refresh_interval:g}s")
            self.poll_now()

    def set_refresh_interval(self, seconds: float) -> None:
        self.refresh_interval = max(0.2, float(seconds))
        self.set_status(f"Refresh every {self.refresh_interval:g}s")
        if not self._polling and not self.paused:
            self._arm_poll()

    def step_interval(self, direction: int) -> None:
        current = self.refresh_interval
        if direction > 0:
            bigger = [i for i in INTERVALS if i > current]
            self.set_refresh_interval(bigger[0] if bigger else INTERVALS[-1])
        else:
            smaller = [i for i in INTERVALS if i < current]
            self.set_refresh_interval(smaller[-1] if smaller else INTERVALS[0])

    # -- errors and status -----------------------------------------------------------------------------

    def redact(self, text: object) -> str:
        return redact_secret(str(text), self.settings.redis_password, self.settings.api_key)

    def set_status(self, message: str, severity: str = "information") -> None:
        """Show ``message`` (plain text, never markup: key names like ``[r]`` stay) in the status line."""
        self.status_message = self.redact(message)
        self.status_severity = severity
        for line in self.screen.query("#status"):
            line.show(self.status_message, severity)  # type: ignore[attr-defined]

    def raise_condition(self, kind: str, message: str) -> None:
        """A lasting problem (an outage): said once when it begins or changes, not at every poll, so the
        results of actions taken meanwhile stay on screen."""
        if self.conditions.get(kind) != message:
            self.conditions[kind] = message
            self.set_status(message, "warning")

    def clear_condition(self, kind: str, recovered: str) -> None:
        """The problem ``kind`` has ended: its warning leaves the status line (if still shown there)."""
        message = self.conditions.pop(kind, None)
        if message is not None and self.status_message == self.redact(message):
            self.set_status(recovered)

    def worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a worker's failure is shown: in the status line and one notification."""
        if event.state != WorkerState.ERROR:
            return
        worker = event.worker
        if getattr(worker, "_semcache_reported", False):
            return  # the screen and the app both hear of it; one toast per failure
        worker._semcache_reported = True  # type: ignore[attr-defined]
        message = f"{worker.name or 'task'} failed: {describe_error(worker.error)}"
        self.set_status(message, "error")
        self.notify(self.redact(message), severity="error", timeout=8, markup=False)
        if isinstance(self.screen, PanelScreen):
            for bar in self.screen.query("NavBar"):
                bar.refresh_bar()  # type: ignore[attr-defined]

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.worker_state_changed(event)

    # -- the running cache's threshold -----------------------------------------------------------------

    def refused_on_a_server(self, what: str, variable: str) -> bool:
        """Attached to a server, a setting of the running cache is refused (said in the status line and a
        toast): it is the server's configuration, and a change here would reach one replica at most."""
        if not isinstance(self.service, RemoteCache):
            return False
        reason = (
            f"Refused: {what} of the server at {redact_url(self.service.safe_url)} is not changed "
            f"from the panel; set {variable} on every replica and restart them"
        )
        self.set_status(reason, "warning")
        self.notify(reason, severity="warning", timeout=8, markup=False)
        return True

    def request_threshold(self, new: float, after: Any = None) -> None:
        """Change the running cache's threshold, after a y/n that shows the old and the new value.

        Attached to a server, it is refused: the server's threshold is its configuration, and a change
        here would reach one replica behind a load balancer at most."""
        if self.refused_on_a_server("the threshold", "CACHE_DISTANCE_THRESHOLD"):
            return
        old = float(self.service.policy.threshold)
        if abs(old - new) < 1e-9:
            self.set_status(f"The running cache already uses threshold {new:.3f}")
            return
        way = "looser: more hits, more risk of a wrong answer" if new > old else "stricter: fewer hits"
        question = (
            f"Change the threshold of the running cache?\n\n    {old:.3f}  ->  {new:.3f}   ({way})\n\n"
            "Lookups through this panel's cache use it at once. It is not saved: set "
            "CACHE_DISTANCE_THRESHOLD to keep it."
        )

        def answered(yes: object) -> None:
            if yes is not True:
                self.set_status(f"Threshold unchanged: {old:.3f}")
                return
            self.service.policy.threshold = new
            self.set_status(f"Running cache threshold {old:.3f} -> {new:.3f}")
            if after is not None:
                after()

        self.push_screen(ConfirmDialog(question), answered)

    def request_target_precision(self, new: float, after: Any = None) -> None:
        """Change the running cache's target precision (the verifier's cut follows), after a y/n that shows
        the old and the new value and cut. Refused when attached to a server, as for the threshold."""
        if self.refused_on_a_server("the target precision", "SEMCACHE_TARGET_PRECISION"):
            return
        old_point, new_point = self.verifier_point(), self.verifier_point(new)
        if old_point is None or new_point is None:
            self.set_status(
                "The verifier is off (SEMCACHE_VERIFY=off): there is no target precision", "warning"
            )
            return
        if abs(old_point[0] - new) < 1e-9:
            self.set_status(f"The running cache already uses target precision {new:.2f}")
            return
        way = (
            "stricter: fewer hits" if new > old_point[0] else "looser: more hits, more risk of a wrong answer"
        )
        question = (
            "Change the target precision of the running cache?\n\n"
            f"    {old_point[0]:.2f} (cut {old_point[1]:.2f})  ->  {new:.2f} (cut {new_point[1]:.2f})   ({way})\n\n"
            "Lookups through this panel's cache use it at once. It is not saved: set "
            "SEMCACHE_TARGET_PRECISION to keep it."
        )

        def answered(yes: object) -> None:
            if yes is not True:
                self.set_status(f"Target precision unchanged: {old_point[0]:.2f}")
                return
            self.service.policy.target_precision = new
            self.set_status(
                f"Running cache target precision {old_point[0]:.2f} -> {new:.2f} (cut {new_point[1]:.2f})"
            )
            if after is not None:
                after()

        self.push_screen(ConfirmDialog(question), answered)

    # -- what the screens show about the target --------------------------------------------------------

    @property
    def target_label(self) -> str:
        if isinstance(self.service, RemoteCache):
            return f"remote:{redact_url(self.service.safe_url)}"
        if self.index_info is not None:
            return f"{self.index_info.store}:{self.index_info.name}"
        return f"{self.settings.store_kind}:{self.settings.index_name}"

    def location(self) -> tuple[str, str, str, str]:
        """Where the panel is: the kind ("embedded", "redis", "server"), the store behind a server once its
        stats were read ("" otherwise), the URL or path (secrets redacted) and the index."""
        if isinstance(self.service, RemoteCache):
            behind = self.service.store_kind or ""
            return (
                "server",
                STORE_LABELS.get(behind, behind),
                redact_url(self.service.safe_url),
                self.describe_index(),
            )
        kind = self.index_info.store if self.index_info is not None else self.settings.store_kind
        if kind == "redis":
            where = redact_url(self.settings.redis_url or "")
        else:
            where = str(self.settings.resolved_data_dir)
        return STORE_LABELS.get(kind, kind), "", self.redact(where), self.describe_index()

    @property
    def index_name(self) -> str:
        """The physical index served now (``semantic_cache__v2`` after a migration)."""
        return self.index_info.name if self.index_info is not None else self.settings.index_name

    @property
    def logical_index(self) -> str:
        """The index name the operator configured and knows; typed confirmations ask for this one."""
        if isinstance(self.service, RemoteCache):
            return self.service.index_name or self.index_name
        return self.settings.index_name

    def describe_index(self) -> str:
        """``semantic_cache``, or ``semantic_cache (physical semantic_cache__v2)`` after a migration."""
        logical, physical = self.logical_index, self.index_name
        return logical if logical == physical else f"{logical} (physical {physical})"

    def verifier_point(self, target: float | None = None) -> tuple[float, float] | None:
        """The verifier's (target precision, score cut) at ``target`` (the running cache's when
        ``None``), or ``None`` when verification is off or the weights cannot be read. Attached to a
        server, the shipped weights stand for the server's (both come with the package)."""
        policy = self.service.policy
        if not policy.verify_candidates:
            return None
        try:
            verifier = self.service.load_verifier()
        except SemcacheError:
            return None
        chosen = target if target is not None else policy.target_precision
        chosen = verifier.default_target_precision if chosen is None else float(chosen)
        return chosen, verifier.cut_for_precision(chosen)

    @property
    def embedder(self) -> Embedder | None:
        """The embedder when the cache runs in this process (``None`` when attached to a server)."""
        return self.service.embedder if isinstance(self.service, SemanticCache) else None

    # -- actions ---------------------------------------------------------------------------------------

    async def run_action(self, action: Any, default_namespace: Any = None, namespaces: Any = None) -> bool:
        """A disabled key that is pressed says why it does nothing (read-only, attached to a server)."""
        if isinstance(action, str):
            target, name, params = self._parse_action(
                action, self if default_namespace is None else default_namespace, namespaces
            )
            if isinstance(target, PanelScreen) and not target.check_action(name, params):
                reason = target.why_disabled(name)
                if reason is not None:
                    self.set_status(reason, "warning")
                    self.notify(reason, severity="warning", timeout=4, markup=False)
                    return True
        return await super().run_action(action, default_namespace, namespaces)

    async def action_show(self, mode: str) -> None:
        if self.current_mode != mode:
            await self.switch_mode(mode)

    async def run_screen_action(self, mode: str, action: str) -> None:
        """Run an action of a screen from the command palette: go there first."""
        await self.action_show(mode)
        screen = self.screen
        name = action.split("(", 1)[0]
        if isinstance(screen, PanelScreen) and name in screen.WRITES and screen.refused(name):
            return  # the footer shows it disabled; from the palette, say why nothing happens
        await screen.run_action(action)

    def action_leave_field(self) -> None:
        self.screen.set_focus(None)

    def action_keys(self) -> None:
        if isinstance(self.screen, ModalScreen):
            return
        rows: list[tuple[str, str, bool]] = []
        seen: set[tuple[str, str]] = set()
        screen = self.screen
        # The screen's own keys first, then the app's, then those of the focused widget.
        ordered = sorted(
            screen.active_bindings.values(),
            key=lambda active: 0 if active.node is screen else 1 if active.node is self else 2,
        )
        for active in ordered:
            binding = active.binding
            if not binding.description or (binding.action, binding.description) in seen:
                continue
            seen.add((binding.action, binding.description))
            rows.append(
                (self.get_key_display(binding), binding.tooltip or binding.description, active.enabled)
            )
        rows += [(item.key, f"Go to {item.label}", True) for item in self.nav]
        rows.append(("esc", "Leave a text field (so the keys above work)", True))
        title = next((item.label for item in self.nav if item.mode == self.current_mode), "semcache")
        self.push_screen(KeysDialog(f"Keys: {title}", rows))

    def palette_entries(self) -> Iterable[tuple[str, str, str, str, bool]]:
        """(title, help, mode, action, enabled) for every screen's actions, from their bindings."""
        for item in self.nav:
            for binding in item.screen.BINDINGS:
                if not isinstance(binding, Binding) or not binding.description:
                    continue
                enabled = not (self.read_only and binding.action in item.screen.WRITES)
                key = self.get_key_display(binding)
                help_text = f"{binding.tooltip or binding.description} · key {key}"
                if not enabled:
                    help_text += " · refused: read-only"
                yield (f"{item.label}: {binding.description}", help_text, item.mode, binding.action, enabled)
