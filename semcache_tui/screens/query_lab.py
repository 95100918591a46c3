"""Query lab: the k nearest entries of a prompt, each judged by the cache's own rule at a cap and a target
precision the operator moves.

Marks come from ``service.verdicts`` (what ``check`` decides with: the distance cap, the critical-token
rules, the verifier's score against its cut, feedback), so moving the cap or the target re-marks the same
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

from engine.cache import OVER_CAP_REASON
from engine.models import Candidate, Match
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


def parse_precision(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.0 < value <= 1.0 else None


def short_reason(reason: str) -> str:
    """The reason as the table shows it: the cap's long wording shortened, the rest as ``check`` says."""
    if reason.startswith(OVER_CAP_REASON):
        return "over cap " + reason.removeprefix(OVER_CAP_REASON).strip(" ()")
    return reason


def mark_of(candidate: Candidate) -> Text:
    """SERVED, pass (would be served but a better one is) or refused; words, not colour alone."""
    if candidate.served:
        return Text("SERVED", style="bold green")
    if candidate.passed:
        return Text("pass", style="green")
    return Text("refused", style="red" if candidate.reason.startswith(OVER_CAP_REASON) else "yellow")


class QueryLabScreen(PanelScreen):
    MODE = "lab"
    AUTO_FOCUS = "#results"
    WRITES: ClassVar = frozenset({"store", "apply", "delete", "feedback"})
    BINDINGS: ClassVar = [
        Binding("slash", "focus_prompt", "Prompt", tooltip="Type a prompt (Enter searches)"),
        Binding(
            "plus,equals_sign", "threshold(1)", "Looser", show=False, tooltip="Raise the distance cap by 0.01"
        ),
        Binding("minus", "threshold(-1)", "Stricter", show=False, tooltip="Lower the distance cap by 0.01"),
        Binding("t", "focus_threshold", "Cap…", show=False, tooltip="Type a distance cap (Enter re-marks)"),
        Binding(
            "p",
            "focus_precision",
            "Precision…",
            show=False,
            tooltip="Type a target precision (Enter re-marks)",
        ),
        Binding("w", "feedback(False)", "Wrong", tooltip="Mark the selected served hit wrong (feedback)"),
        Binding("r", "feedback(True)", "Right", tooltip="Mark the selected served hit right (feedback)"),
        Binding("s", "store", "Store", tooltip="Store a response for the prompt"),
        Binding("a", "apply", "Apply", tooltip="Apply the lab's cap to the running cache"),
        Binding("d", "delete", "Delete", tooltip="Delete the selected entry (y/n)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.prompt = ""
        self.scope: str | None = None
        self.matches: list[Match] = []
        #: ``matches`` judged at the lab's cap and target (same order); empty until judged.
        self.candidates: list[Candidate] = []
        #: The (cap, target) the candidates were judged at.
        self.judged_at: tuple[float, float | None] | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Input(placeholder="Type a prompt and press Enter", id="prompt")
            yield Input(placeholder="scope: default", id="scope")
        with Horizontal(classes="form-row"):
            yield Label("cap", classes="field-label")
            yield Input(f"{self.panel.lab_threshold:.3f}", id="threshold", restrict=r"[0-9.]*")
            yield Label("target precision", classes="field-label")
            yield Input(self.precision_text(), placeholder="off", id="precision", restrict=r"[0-9.]*")
            yield Static("", id="threshold-note")
        yield DataTable(id="results", cursor_type="row", zebra_stripes=True)
        yield Static("", id="lab-summary")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#results", DataTable)
        table.add_columns("#", "distance", "score", "mark", "reason", "prompt", "response")
        self.refresh_data()

    def precision_text(self) -> str:
        point = self.panel.verifier_point(self.panel.lab_target)
        return "" if point is None else f"{point[0]:.2f}"

    # -- rendering -------------------------------------------------------------------------------------

    def refresh_data(self) -> None:
        app = self.panel
        running = app.service.policy.threshold
        note = f"running cap {running:.3f}"
        if abs(running - app.lab_threshold) > 1e-9:
            note += " · [b]a[/b] applies the lab's"
        if not app.service.policy.verify_candidates:
            note += " · verifier off: distance alone"
        if not app.started:
            note += " · model loading, searches wait for it"
        self.query_one("#threshold-note", Static).update(note)
        field = self.query_one("#threshold", Input)
        if not field.has_focus:
            field.value = f"{app.lab_threshold:.3f}"
        precision = self.query_one("#precision", Input)
        if not precision.has_focus:
            precision.value = self.precision_text()
        if self.matches and self.judged_at != (app.lab_threshold, app.lab_target):
            self.remark()
        else:
            self.render_marks()

    def render_marks(self) -> None:
        """Show the current results with their judgement (``candidates``); no search, no judging."""
        table = self.query_one("#results", DataTable)
        row = table.cursor_row
        table.clear()
        judged = len(self.candidates) == len(self.matches)
        for number, match in enumerate(self.matches, start=1):
            candidate = self.candidates[number - 1] if judged else None
            score = "" if candidate is None or candidate.score is None else f"{candidate.score:.2f}"
            table.add_row(
                str(number),
                f"{match.distance:.3f}",
                score,
                mark_of(candidate) if candidate is not None else Text("…"),
                one_line(short_reason(candidate.reason), 36) if candidate is not None else "judging…",
                one_line(match.entry.prompt, 30),
                one_line(match.entry.response, 24),
                key=match.entry.key,
            )
        if self.matches:
            table.move_cursor(row=min(max(row, 0), len(self.matches) - 1))
        summary = self.query_one("#lab-summary", Static)
        if not self.prompt:
            summary.update(
                "Type a prompt, press Enter: the nearest entries appear, each judged as check() would."
            )
        elif not self.matches:
            summary.update(
                f"No entries in scope {escape(self.scope or 'default')} yet: [b]s[/b] stores a response."
            )
        elif not judged:
            summary.update(f"{len(self.matches)} nearest · judging…")
        else:
            served = next((c for c in self.candidates if c.served), None)
            passing = sum(c.passed for c in self.candidates)
            cap, _target = self.judged_at or (self.panel.lab_threshold, None)
            cut = next((c.cut for c in self.candidates if c.cut is not None), None)
            at = f"cap {cap:.3f}" + (f" · cut {cut:.2f}" if cut is not None else "")
            answer = (
                f"check() would serve #{self.candidates.index(served) + 1}"
                if served
                else "check() would miss"
            )
            summary.update(f"{len(self.matches)} nearest · {passing} pass at {at} · {answer}")

    @work(exclusive=True, group="lab-judge", exit_on_error=False, name="judge")
    async def remark(self) -> None:
        """Judge the current results again at the lab's cap and target (the same rule as ``check``)."""
        at = (self.panel.lab_threshold, self.panel.lab_target)
        prompt, scope, matches = self.prompt, self.scope, self.matches
        candidates = await self.panel.service.verdicts(
            prompt, matches, scope=scope, threshold=at[0], target_precision=at[1]
        )
        if matches is self.matches:  # a newer search has not replaced them meanwhile
            self.candidates, self.judged_at = candidates, at
            self.render_marks()

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
                self.panel.set_status("A distance cap is a cosine distance from 0 to 2", "warning")
                return
            self.set_threshold(value)
            self.query_one("#results", DataTable).focus()
        elif event.input.id == "precision":
            if not event.value.strip():
                self.panel.lab_target = None
            else:
                target = parse_precision(event.value)
                if target is None:
                    self.panel.set_status("A target precision is above 0 and at most 1, e.g. 0.95", "warning")
                    return
                self.panel.lab_target = target
            self.query_one("#results", DataTable).focus()
            self.refresh_data()

    @work(exclusive=True, group="lab", exit_on_error=False, name="search")
    async def search(self, prompt: str, scope: str | None) -> None:
        self.panel.set_status("Searching…" if self.panel.started else "Searching (waiting for the model)…")
        started = self.panel.probe.now()
        matches = await self.panel.service.nearest(prompt, scope=scope, k=K)
        at = (self.panel.lab_threshold, self.panel.lab_target)
        candidates = await self.panel.service.verdicts(
            prompt, matches, scope=scope, threshold=at[0], target_precision=at[1]
        )
        elapsed = (self.panel.probe.now() - started) * 1000.0
        self.prompt, self.scope, self.matches = prompt, scope, matches
        self.candidates, self.judged_at = candidates, at
        self.render_marks()
        self.panel.set_status(f"{len(matches)} nearest entries, judged in {elapsed:.0f} ms")
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

    def action_focus_precision(self) -> None:
        self.query_one("#precision", Input).focus()

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
        self.candidates = []
        self.judged_at = None
        self.refresh_data()
        self.panel.set_status("Entry deleted" if deleted else "The entry was already gone")
        self.panel.poll_now()

    # -- feedback --------------------------------------------------------------------------------------

    def action_feedback(self, correct: bool) -> None:
        word = "right" if correct else "wrong"
        if self.refused(f"marking a hit {word}"):
            return
        match = self.selected()
        if match is None:
            self.panel.set_status(f"Search, then select the served hit to mark {word}", "warning")
            return
        index = self.matches.index(match)
        candidate = self.candidates[index] if index < len(self.candidates) else None
        if candidate is None or not candidate.served:
            self.panel.set_status(
                f"Only the served hit (SERVED) can be marked {word}: #{index + 1} is not served", "warning"
            )
            return
        self.send_feedback(self.prompt, self.scope, match, correct)

    @work(exclusive=True, group="lab-write", exit_on_error=False, name="feedback")
    async def send_feedback(self, prompt: str, scope: str | None, match: Match, correct: bool) -> None:
        result = await self.panel.service.feedback(prompt, match.entry.key, correct, scope=scope)
        await self.search(prompt, scope).wait()  # an evicted entry leaves the results
        word = "right" if correct else "wrong"
        outcome = " and evicted" if result.evicted else ""
        # After the search, whose own message would replace it: the report is what the operator did.
        self.panel.set_status(
            f"Marked {word}{outcome}: entry {match.entry.key[:12]} for this prompt "
            f"({result.wrong} wrong, {result.right} right)"
        )
        self.panel.poll_now()
