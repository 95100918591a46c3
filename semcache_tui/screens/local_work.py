"""What the backup and migration screens share: they work on the cache's own store, in workers that show
their progress in one row and their failure in one line.

Attached to a server (``RemoteCache``) there is no store here to work on: every key of such a screen is
disabled and the screen says how to run it instead (``REMOTE_NOTE``). The widgets a screen composes with
``compose_progress`` and ``compose_error`` are named after its mode: ``#<mode>-progress-row``,
``#<mode>-progress``, ``#<mode>-progress-text`` and ``#<mode>-error``.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import ProgressBar, Static
from textual.worker import Worker, WorkerState

from engine.cache import SemanticCache
from engine.errors import InvalidInputError
from semcache_tui.formatting import describe_error
from semcache_tui.screens.base import PanelScreen


class LocalWorkScreen(PanelScreen):
    #: Shown instead of the screen's content when the panel is attached to a server.
    REMOTE_NOTE: ClassVar[str] = ""

    @property
    def cache(self) -> SemanticCache | None:
        """The cache this panel opened itself; ``None`` when it is attached to a server."""
        service = self.panel.service
        return service if isinstance(service, SemanticCache) else None

    def local_cache(self) -> SemanticCache:
        """The cache a worker of this screen works on (its keys are disabled when there is none)."""
        cache = self.cache
        if cache is None:
            raise InvalidInputError(self.REMOTE_NOTE.splitlines()[0])
        return cache

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.cache is None and action in {b.action for b in self.BINDINGS if isinstance(b, Binding)}:
            return None
        return super().check_action(action, parameters)

    def why_disabled(self, action: str) -> str | None:
        if self.cache is None and action in {b.action for b in self.BINDINGS if isinstance(b, Binding)}:
            return f"Not available: {self.REMOTE_NOTE.splitlines()[0]}"
        return super().why_disabled(action)

    def remote_note(self) -> Text:
        return Text(self.REMOTE_NOTE, style="bold")

    # -- progress --------------------------------------------------------------------------------------

    def compose_progress(self) -> ComposeResult:
        with Horizontal(id=f"{self.MODE}-progress-row"):
            yield ProgressBar(total=None, show_eta=False, id=f"{self.MODE}-progress")
            yield Static("", id=f"{self.MODE}-progress-text")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(f"#{self.MODE}-progress-row").display = False

    def begin_progress(self, text: str) -> None:
        """Show the progress row, its bar running until the first count arrives."""
        self.query_one(f"#{self.MODE}-progress-row").display = True
        bar = self.query_one(f"#{self.MODE}-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.show_progress_text(text)

    def stop_progress(self, text: str) -> None:
        """A failed run: the bar stops (it would animate forever without a count) and says so."""
        self.query_one(f"#{self.MODE}-progress", ProgressBar).display = False
        self.show_progress_text(text)

    def show_progress(self, done: int, total: int, text: str) -> None:
        self.query_one(f"#{self.MODE}-progress", ProgressBar).update(total=max(total, 1), progress=done)
        self.show_progress_text(text)

    def show_progress_text(self, text: str) -> None:
        self.query_one(f"#{self.MODE}-progress-text", Static).update(text)

    # -- errors ----------------------------------------------------------------------------------------

    def compose_error(self) -> ComposeResult:
        yield Static("", id=f"{self.MODE}-error")

    def show_error(self, message: str) -> None:
        self.query_one(f"#{self.MODE}-error", Static).update(
            Text(self.panel.redact(message)) if message else ""
        )

    def work_failed(self) -> None:
        """What else a failed worker changes on this screen, besides its error line (nothing here)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.show_error(f"{event.worker.name or 'task'} failed: {describe_error(event.worker.error)}")
            self.work_failed()
        elif event.state == WorkerState.SUCCESS:
            self.show_error("")
        # Textual also calls PanelScreen's handler (it dispatches along the MRO): one toast, not two.
