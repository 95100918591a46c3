"""The line at the top (where am I, what am I attached to) and the status line above the footer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from semcache_tui.formatting import fit_url

if TYPE_CHECKING:
    from semcache_tui.app import SemcacheApp


class NavBar(Static):
    """Where am I, on one line: the screens and their keys (the current one highlighted), then the store
    kind, its URL or path (redacted), the index, READ-ONLY and whether the model is loaded.

    The location always stays in sight: when the line is too narrow (80 columns) the screens' labels go
    first (only the current one keeps its label), then the path is cut from its start (a URL loses its
    credentials and query, then the middle of its host: its scheme and port stay), then dropped."""

    #: How the screens are listed, widest first.
    NAV_STYLES = ("full", "compact", "current")

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def on_mount(self) -> None:
        self.refresh_bar()

    def on_resize(self) -> None:
        self.refresh_bar()

    def refresh_bar(self) -> None:
        app: SemcacheApp = self.app  # type: ignore[assignment]
        width = self.size.width or app.size.width
        # The store behind a server is dropped before any style is given up; the URL or path is cut last.
        for terse in (False, True):
            for style in self.NAV_STYLES:
                head = self.screens(style)
                where = self.location(width - head.cell_len - 2, cut_path=False, terse=terse)
                if where is not None:
                    self.update(head + Text("  ") + where)
                    return
        head = self.screens("current")
        room = width - head.cell_len - 1
        where = self.location(room, cut_path=True, terse=True) or self.location(
            room, cut_path=True, short=True, terse=True
        )
        self.update(
            head + Text(" ") + (where or self.location(0, cut_path=True, short=True, fit=False, terse=True))
        )

    def screens(self, style: str) -> Text:
        app: SemcacheApp = self.app  # type: ignore[assignment]
        text = Text(" semcache ", style="bold reverse") if style != "current" else Text()
        text.append(" " if style != "current" else "")
        for item in app.nav:
            here = item.mode == self.current
            if style == "full":
                text.append(f" {item.key} ", style="bold reverse" if here else "bold")
                text.append(f"{item.label} ", style="bold reverse" if here else "")
            elif style == "compact" or here:
                text.append(f"{item.key} {item.label}", style="bold reverse" if here else "bold")
                text.append(" ")
            else:
                text.append(item.key, style="bold")
                text.append(" ")
        if style == "current":
            text.rstrip()
        return text

    def location(
        self, room: int, *, cut_path: bool, short: bool = False, fit: bool = True, terse: bool = False
    ) -> Text | None:
        """The location in at most ``room`` cells (``None`` when it does not fit; ``fit=False``: whole;
        ``terse``: without the store behind a server)."""
        app: SemcacheApp = self.app  # type: ignore[assignment]
        kind, behind, where, index = app.location()
        if short:
            index = app.index_name
        text = Text(kind if terse or not behind else f"{kind} ({behind})", style="bold")
        tail = Text(" · ")
        tail.append(index, style="bold")
        if app.read_only:
            tail.append(" ")
            tail.append("READ-ONLY", style="bold reverse")
        if not app.started:
            tail.append(" model loading…" if app.start_error is None else " not started", style="italic")
        path_room = room - text.cell_len - tail.cell_len - 1
        if not fit or len(where) <= path_room:
            shown = where
        elif cut_path and (cut := shorten_place(where, path_room)) is not None:
            shown = cut
        elif cut_path and short:
            shown = ""
        else:
            return None
        if shown:
            text.append(" ")
            text.append(shown, style="dim")
        text.append_text(tail)
        return text


def shorten_place(where: str, width: int) -> str | None:
    """The store's URL or path in ``width`` cells, ``None`` when too few are left: a URL keeps its scheme
    and port (``fit_url``), a path its end (the folder's own name)."""
    if "://" in where:
        return fit_url(where, width)
    return "…" + where[len(where) - width + 1 :] if width >= 8 else None


class StatusLine(Static):
    """The last thing that happened: an action's result or a worker's error, shown in place."""

    def show(self, message: str, severity: str = "information") -> None:
        self.set_class(severity == "error", "-error")
        self.set_class(severity == "warning", "-warning")
        self.update(Text(message, no_wrap=True, overflow="ellipsis"))
