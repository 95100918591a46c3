"""Query lab: the k nearest entries of a prompt, marked hit or miss at a threshold the operator moves.

Marks come from ``service.judge`` (the cache's own rule), so moving the threshold re-marks the same
results without a new search, and what the lab shows is what ``check`` would answer.
"""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, Static

from engine.models import Match
from semcache_tui.formatting import one_line
from semcache_tui.screens.base import PanelScreen
from semcache_tui.screens.dialogs import ConfirmDialog, InputDialog, if_yes

K = 10
STEP = 0.01


def parse_threshold(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.0 <= value <= 2.0 else None


class QueryLabScreen(PanelScreen):
    MODE = "lab"
    AUTO_FOCUS = "#results"
    WRITES: ClassVar = frozenset({"store", "apply", "delete"})
    BINDINGS: ClassVar = [
        Binding("slash", "focus_prompt", "Prompt", tooltip="Type a prompt (Enter searches)"),
        Binding("plus,equals_sign", "threshold(1)", "Looser", tooltip="Raise the threshold by 0.01"),
        Binding("minus", "threshold(-1)", "Stricter", tooltip="Lower the threshold by 0.01"),
        Binding("t", "focus_threshold", "Threshold…", tooltip="Type a threshold (Enter re-marks)"),
        Binding("s", "store", "Store", tooltip="Store a response for the prompt"),
        Binding("a", "apply", "Apply", tooltip="Apply the lab's threshold to the running cache"),
        Binding("d", "delete", "Delete", tooltip="Delete the selected entry (y/n)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.prompt = ""
        self.scope: str | None = None
        self.matches: list[Match] = []

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Input(placeholder="Type a prompt and press Enter", id="prompt")
            yield Input(placeholder="scope: default", id="scope")
        with Horizontal(classes="form-row"):
            yield Label("threshold", classes="field-label")
            yield Input(f"{self.panel.lab_threshold:.3f}", id="threshold", restrict=r"[0-9.]*")
            yield Static("", id="threshold-note")
        yield DataTable(id="results", cursor_type="row", zebra_stripes=True)
        yield Static("", id="lab-summary")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#results", DataTable)
        table.add_columns("#", "distance", "similarity", "mark", "prompt", "response")
        self.refresh_data()

    # -- rendering -------------------------------------------------------------------------------------

    def refresh_data(self) -> None:
        app = self.panel
        running = app.service.policy.threshold
        note = f"running cache: {running:.3f}"
        if abs(running - app.lab_threshold) > 1e-9:
            note += " · [b]a[/b] applies the lab's"
        if not app.started:
            note += " · model loading, searches wait for it"
        self.query_one("#threshold-note", Static).update(note)
        field = self.query_one("#threshold", Input)
        if not field.has_focus:
            field.value = f"{app.lab_threshold:.3f}"
        self.render_marks()

    def render_marks(self) -> None:
        """Re-mark the current results at the lab's threshold; no search."""
        table = self.query_one("#results", DataTable)
        threshold = self.panel.lab_threshold
        row = table.cursor_row
        table.clear()
        hits = 0
        for number, match in enumerate(self.matches, start=1):
            reason = self.panel.service.judge(self.prompt, match, threshold)
            if reason is None:
                hits += 1
                mark = Text("HIT", style="bold green")
            else:
                mark = Text(f"miss: {reason}", style="red" if reason == "over threshold" else "yellow")
            table.add_row(
                str(number),
                f"{match.distance:.4f}",
                f"{match.similarity:.3f}",
                mark,
                one_line(match.entry.prompt, 40),
                one_line(match.entry.response, 40),
                key=match.entry.key,
            )
        if self.matches:
            table.move_cursor(row=min(row, len(self.matches) - 1))
        summary = self.query_one("#lab-summary", Static)
        if not self.prompt:
            summary.update("Type a prompt, press Enter: the nearest entries appear with their distances.")
        elif not self.matches:
            summary.update(
                f"No entries in scope {escape(self.scope or 'default')} yet: [b]s[/b] stores a response."
            )
        else:
            first = "a hit" if hits else "a miss"
            summary.update(
                f"{len(self.matches)} nearest · {hits} within {threshold:.3f} and verified · "
                f"check() would answer {first}"
            )

    # -- searching -------------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("prompt", "scope"):
            prompt = self.query_one("#prompt", Input).value
            if not prompt.strip():
                self.panel.set_status("Type a prompt first", "warning")
                return
            scope = self.query_one("#scope", Input).value.strip() or None
            self.search(prompt, scope)
        elif event.input.id == "threshold":
            value = parse_threshold(event.value)
            if value is None:
                self.panel.set_status("A threshold is a cosine distance from 0 to 2", "warning")
                return
            self.set_threshold(value)
            self.query_one("#results", DataTable).focus()

    @work(exclusive=True, group="lab", exit_on_error=False, name="search")
    async def search(self, prompt: str, scope: str | None) -> None:
        self.panel.set_status("Searching…" if self.panel.started else "Searching (waiting for the model)…")
        started = self.panel.probe.now()
        matches = await self.panel.service.nearest(prompt, scope=scope, k=K)
        elapsed = (self.panel.probe.now() - started) * 1000.0
        self.prompt, self.scope, self.matches = prompt, scope, matches
        self.render_marks()
        self.panel.set_status(f"{len(matches)} nearest entries in {elapsed:.0f} ms")
        self.query_one("#results", DataTable).focus()

    # -- the threshold ---------------------------------------------------------------------------------

    def set_threshold(self, value: float) -> None:
        self.panel.lab_threshold = round(min(2.0, max(0.0, value)), 4)
        field = self.query_one("#threshold", Input)
        field.value = f"{self.panel.lab_threshold:.3f}"
        self.refresh_data()

    def action_threshold(self, direction: int) -> None:
        self.set_threshold(self.panel.lab_threshold + direction * STEP)

    def action_focus_threshold(self) -> None:
        self.query_one("#threshold", Input).focus()

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    def action_apply(self) -> None:
        if self.refused("applying a threshold"):
            return
        self.panel.request_threshold(self.panel.lab_threshold, after=self.refresh_data)

    # -- writes ----------------------------------------------------------------------------------------

    def action_store(self) -> None:
        if self.refused("storing a response"):
            return
        prompt = self.query_one("#prompt", Input).value
        if not prompt.strip():
            self.panel.set_status("Type the prompt to store a response for first", "warning")
            self.action_focus_prompt()
            return
        scope = self.query_one("#scope", Input).value.strip() or None

        def done(value: object) -> None:
            if isinstance(value, str) and value.strip():
                self.store(prompt, value, scope)

        self.app.push_screen(
            InputDialog("Store a response", context=f"for: {prompt}", placeholder="the response to serve"),
            done,
        )

    @work(exclusive=True, group="lab-write", exit_on_error=False, name="store")
    async def store(self, prompt: str, response: str, scope: str | None) -> None:
        self.panel.set_status("Storing…")
        entry = await self.panel.service.store(prompt, response, scope=scope)
        await self.search(prompt, scope).wait()
        # After the search, whose own message would replace it: the store is what the operator did.
        self.panel.set_status(f"Stored entry {entry.key[:12]} in scope {entry.scope}")
        self.panel.poll_now()

    def selected(self) -> Match | None:
        table = self.query_one("#results", DataTable)
        if not self.matches or table.cursor_row < 0 or table.cursor_row >= len(self.matches):
            return None
        return self.matches[table.cursor_row]

    def action_delete(self) -> None:
        if self.refused("deleting an entry"):
            return
        match = self.selected()
        if match is None:
            self.panel.set_status("Select a result to delete first", "warning")
            return
        self.app.push_screen(
            ConfirmDialog(f"Delete this entry?\n\n{one_line(match.entry.prompt, 200)}"),
            if_yes(self.delete, match),
        )

    @work(exclusive=True, group="lab-write", exit_on_error=False, name="delete")
    async def delete(self, match: Match) -> None:
        deleted = await self.panel.service.delete(match.entry.key)
        self.matches = [m for m in self.matches if m.entry.key != match.entry.key]
        self.render_marks()
        self.panel.set_status("Entry deleted" if deleted else "The entry was already gone")
        self.panel.poll_now()
