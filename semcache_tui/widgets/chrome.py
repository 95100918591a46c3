"""The line at the top (where am I, what am I attached to) and the status line above the footer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from semcache_tui.app import SemcacheApp


class NavBar(Static):
    """The screens and their keys, the current one highlighted, and the attached store."""

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def on_mount(self) -> None:
        self.refresh_bar()

    def refresh_bar(self) -> None:
        app: SemcacheApp = self.app  # type: ignore[assignment]
        text = self.build(compact=False)
        if text.cell_len > app.size.width:
            text = self.build(compact=True)  # the state (read-only, loading) must stay in sight
        self.update(text)

    def build(self, *, compact: bool) -> Text:
        app: SemcacheApp = self.app  # type: ignore[assignment]
        text = Text(" semcache ", style="bold reverse")
        text.append(" ")
        for item in app.nav:
            style = "bold reverse" if item.mode == self.current else ""
            key = f"{item.key} " if compact else f" {item.key} "
            text.append(key, style="bold" if item.mode != self.current else style)
            text.append(f"{item.label} ", style=style)
        if compact:
            if app.read_only:
                text.append(" READ-ONLY", style="bold")
            if not app.started:
                text.append(" model loading…" if app.start_error is None else " not started", style="italic")
            text.append("  ")
            text.append(app.target_label, style="dim")
            return text
        text.append("  ")
        text.append(app.target_label, style="dim")
        if app.read_only:
            text.append("  READ-ONLY", style="bold")
        if not app.started:
            text.append("  model loading…" if app.start_error is None else "  not started", style="italic")
        return text


class StatusLine(Static):
    """The last thing that happened: an action's result or a worker's error, shown in place."""

    def show(self, message: str, severity: str = "information") -> None:
        self.set_class(severity == "error", "-error")
        self.set_class(severity == "warning", "-warning")
        self.update(Text(message, no_wrap=True, overflow="ellipsis"))
