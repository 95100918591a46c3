"""Sweep: precision, recall and hit rate against the threshold on labeled pairs, and the threshold that
meets a target precision. The numbers come from engine/evaluation.py; this screen only asks and draws."""

from __future__ import annotations

import os
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Label, Static
from textual.worker import Worker, WorkerState
from textual_plotext import PlotextPlot

from engine.embeddings.base import Embedder
from engine.errors import InvalidInputError
from engine.evaluation import (
    DEFAULT_SAMPLE,
    DEFAULT_TARGET_PRECISION,
    SweepPoint,
    evaluate_pairs,
    load_pairs,
    recommend,
)
from semcache_tui.formatting import describe_error
from semcache_tui.screens.base import PanelScreen


class SweepScreen(PanelScreen):
    MODE = "sweep"
    WRITES: ClassVar = frozenset({"apply"})
    BINDINGS: ClassVar = [
        Binding("r", "run", "Run sweep", tooltip="Embed the sampled pairs and sweep the threshold"),
        Binding("slash", "focus_path", "Pairs file", tooltip="Type the labeled pairs file (JSON lines)"),
        Binding("a", "apply", "Apply", tooltip="Apply the recommended threshold to the running cache"),
        Binding("l", "to_lab", "To lab", tooltip="Use the recommended threshold in the query lab"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.points: list[SweepPoint] = []
        self.best: SweepPoint | None = None
        self.pairs_count = 0
        self.failure: str | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Input(
                self.panel.pairs_path, placeholder="pairs file: JSON lines {text_a, text_b, label}", id="path"
            )
            yield Label("n", classes="field-label")
            yield Input(str(DEFAULT_SAMPLE), id="sample", restrict=r"[0-9]*")
            yield Label("target precision", classes="field-label")
            yield Input(str(DEFAULT_TARGET_PRECISION), id="target", restrict=r"[0-9.]*")
        yield Static("", id="sweep-result")
        yield PlotextPlot(id="sweep-plot")

    def on_mount(self) -> None:
        super().on_mount()
        self.draw()
        self.describe()

    @property
    def available(self) -> bool:
        return self.panel.embedder is not None

    def describe(self) -> None:
        result = self.query_one("#sweep-result", Static)
        if not self.available:
            result.update(
                "The sweep is not available when attached to a server (--server): it needs the embedder in this "
                "process. Run the panel on the server's machine without --server to sweep."
            )
        elif self.failure is not None:
            result.update(Text(f"The last sweep failed, no recommendation: {self.failure}"))
        elif self.best is not None:
            best = self.best
            result.update(
                f"Recommended threshold [b]{best.threshold:.2f}[/b] for precision ≥ {self.target():.2f}: "
                f"precision {best.precision:.1%}, recall {best.recall:.1%}, hit rate {best.hit_rate:.1%} "
                f"({self.pairs_count:,} pairs) · [b]a[/b] applies it, [b]l[/b] tries it in the lab"
            )
        elif self.points:
            result.update(
                f"No threshold reaches precision {self.target():.2f} on these {self.pairs_count:,} pairs."
            )
        else:
            result.update(
                "Give a labeled pairs file and press [b]r[/b] (or Enter) to sweep thresholds 0-0.6."
            )

    def target(self) -> float:
        try:
            return float(self.query_one("#target", Input).value)
        except ValueError:
            return DEFAULT_TARGET_PRECISION

    def draw(self) -> None:
        widget = self.query_one("#sweep-plot", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("precision, recall and hit rate by threshold")
        plt.xlabel("threshold (cosine distance)")
        plt.ylim(0, 1)
        if self.points:
            xs = [p.threshold for p in self.points]
            # Without colour the three curves are told apart by their markers (NO_COLOR, no-color.org).
            markers = ("P", "R", "H") if os.environ.get("NO_COLOR") else ("braille",) * 3
            plt.plot(xs, [p.precision for p in self.points], label="precision", marker=markers[0])
            plt.plot(xs, [p.recall for p in self.points], label="recall", marker=markers[1])
            plt.plot(xs, [p.hit_rate for p in self.points], label="hit rate", marker=markers[2])
            plt.vline(self.panel.service.policy.threshold)
            if self.best is not None:
                plt.vline(self.best.threshold, "red")
        widget.refresh()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.set_focus(None)  # out of the field, so a / r / l work at once
        self.action_run()

    def action_focus_path(self) -> None:
        self.query_one("#path", Input).focus()

    def action_run(self) -> None:
        embedder = self.panel.embedder
        if embedder is None:
            self.panel.set_status(
                "The sweep needs the embedder in this process (not available with --server)", "warning"
            )
            return
        path = self.query_one("#path", Input).value.strip()
        if not path:
            self.panel.set_status("Type the path of a labeled pairs file first", "warning")
            self.action_focus_path()
            return
        try:
            sample = int(self.query_one("#sample", Input).value or DEFAULT_SAMPLE)
        except ValueError:
            sample = DEFAULT_SAMPLE
        self.sweep(embedder, path, sample, self.target())

    @work(exclusive=True, group="sweep", exit_on_error=False, name="sweep")
    async def sweep(self, embedder: Embedder, path: str, sample: int, target: float) -> None:
        import asyncio

        # A new run replaces the last one: its recommendation must not stay on screen as if current.
        self.points, self.best, self.pairs_count, self.failure = [], None, 0, None
        self.draw()
        self.describe()
        if not 0.0 < target <= 1.0:
            raise InvalidInputError(
                f"target precision {target} is out of range", "use a number from 0 to 1, e.g. 0.95"
            )
        pairs = await asyncio.to_thread(load_pairs, path, sample, 0)
        self.panel.set_status(f"Embedding {2 * len(pairs):,} texts for the sweep…")
        points = await evaluate_pairs(embedder, pairs, verify=self.panel.service.policy.verify_candidates)
        self.points, self.pairs_count = points, len(pairs)
        self.best = recommend(points, target)
        self.draw()
        self.describe()
        self.panel.set_status(f"Swept {len(points)} thresholds over {len(pairs):,} pairs")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name == "sweep" and event.state == WorkerState.ERROR:
            self.failure = self.panel.redact(describe_error(event.worker.error))
            self.describe()

    def action_apply(self) -> None:
        if self.refused("applying a threshold"):
            return
        if self.best is None:
            self.panel.set_status("Run a sweep with a reachable target first", "warning")
            return
        best = self.best.threshold

        def applied() -> None:
            self.panel.lab_threshold = best
            self.draw()

        self.panel.request_threshold(best, after=applied)

    def action_to_lab(self) -> None:
        if self.best is None:
            self.panel.set_status("Run a sweep with a reachable target first", "warning")
            return
        self.panel.lab_threshold = self.best.threshold
        self.panel.set_status(f"Query lab threshold set to {self.best.threshold:.3f}")
