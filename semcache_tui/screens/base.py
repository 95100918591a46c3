"""What every screen of the panel shares: the nav bar, the status line, the footer, read-only refusal."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input
from textual.worker import Worker

from semcache_tui.widgets.chrome import NavBar, StatusLine

if TYPE_CHECKING:
    from semcache_tui.app import SemcacheApp


class PanelScreen(Screen[None]):
    """A top-level screen of the panel, shown in its own mode (see ``semcache_tui.screens.NAV``)."""

    #: The mode name this screen is registered under.
    MODE: ClassVar[str] = ""
    #: Land on a table, not a text field, so the number keys and single-letter keys work at once.
    AUTO_FOCUS: ClassVar[str | None] = ""
    #: Actions that change or remove data: shown disabled and refused when the panel is read-only.
    WRITES: ClassVar[frozenset[str]] = frozenset()

    @property
    def panel(self) -> SemcacheApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield from self.compose_body()
        yield StatusLine(self.panel.status_message, id="status", markup=False)
        # Compact: at 80 and 100 columns the keys that matter (? and q after the screen's own) stay in sight.
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        if self.panel.probe.frozen:
            for field in self.query(Input):
                field.cursor_blink = False

    def on_screen_resume(self) -> None:
        self.query_one(NavBar).refresh_bar()
        self.query_one(StatusLine).show(self.panel.status_message, self.panel.status_severity)
        self.refresh_data()

    def refresh_data(self) -> None:
        """Render the app's latest data; called when the screen is shown and after each poll."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.WRITES and self.panel.read_only:
            return None  # shown disabled in the footer; pressing it does nothing
        return True

    def refused(self, what: str) -> bool:
        """True (and says so) when the panel is read-only; every write action starts with this."""
        if self.panel.read_only:
            self.panel.set_status(
                f"Refused: {what} is not allowed in read-only mode (--read-only)", "warning"
            )
            return True
        return False

    def why_disabled(self, action: str) -> str | None:
        """Why the key of ``action`` is disabled (said when it is pressed anyway), or ``None``."""
        if action in self.WRITES and self.panel.read_only:
            return f"Refused: {self.describe_action(action)} is not allowed in read-only mode (--read-only)"
        return None

    def describe_action(self, action: str) -> str:
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.action.split("(", 1)[0] == action:
                return binding.description.rstrip("…").lower()
        return action.replace("_", " ")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.panel.worker_state_changed(event)
