"""Sweep: on labeled pairs, the verifier's precision/served curve beside the distance curve, precision,
recall and hit rate against the threshold, and the operating point that meets a target precision (the
verifier's cut, or the threshold when verification is off). The numbers come from engine/evaluation.py
(``evaluate_pairs`` for the threshold, ``evaluate_verifier`` for the verifier); this screen asks and draws.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, ClassVar

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
    NEAR_MISS_PAIRS,
    NEAR_MISS_REPORT_SPLIT,
    LabeledPair,
    SweepPoint,
    evaluate_pairs,
    evaluate_verifier,
    read_eval_pairs,
    recommend,
)
from semcache_tui.formatting import describe_error
from semcache_tui.screens.base import PanelScreen

if TYPE_CHECKING:
    from engine.verification.corpus import Pair
    from engine.verification.evaluate import EvaluationReport

#: Without colour (NO_COLOR, no-color.org) every curve is told apart by its own letter.
PLAIN_MARKERS = {"precision": "P", "recall": "R", "hit rate": "H", "verifier": "V", "distance": "D"}


def load_sweep_pairs(path: str, sample: int) -> list[Pair]:
    """The pairs file's pairs, or (no path) the report split of the near-miss set shipped in the package."""
    if path:
        return read_eval_pairs(path, sample, 0)
    return read_eval_pairs(NEAR_MISS_PAIRS, sample, 0, split=NEAR_MISS_REPORT_SPLIT)


class SweepScreen(PanelScreen):
    MODE = "sweep"
    WRITES: ClassVar = frozenset({"apply"})
    BINDINGS: ClassVar = [
        Binding("r", "run", "Run sweep", tooltip="Embed the sampled pairs, sweep the threshold and the cut"),
        Binding("slash", "focus_path", "Pairs file", tooltip="Type the labeled pairs file (JSON lines)"),
        Binding("a", "apply", "Apply", tooltip="Apply the recommendation to the running cache"),
        Binding("l", "to_lab", "To lab", tooltip="Use the recommendation in the query lab"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.points: list[SweepPoint] = []
        self.best: SweepPoint | None = None
        self.report: EvaluationReport | None = None
        self.pairs_count = 0
        self.failure: str | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Input(
                self.panel.pairs_path,
                placeholder="pairs file (JSON lines); empty: the shipped near-miss report pairs",
                id="path",
            )
            yield Label("n", classes="field-label")
            yield Input(str(DEFAULT_SAMPLE), id="sample", restrict=r"[0-9]*")
            yield Label("target precision", classes="field-label")
            yield Input(str(DEFAULT_TARGET_PRECISION), id="target", restrict=r"[0-9.]*")
        yield Static("", id="sweep-result")
        with Horizontal(id="sweep-plots"):
            yield PlotextPlot(id="sweep-plot")
            yield PlotextPlot(id="verifier-plot")

    def on_mount(self) -> None:
        super().on_mount()
        self.draw()
        self.describe()

    @property
    def available(self) -> bool:
        return self.panel.embedder is not None

    @property
    def verifying(self) -> bool:
        return bool(self.panel.service.policy.verify_candidates)

    def describe(self) -> None:
        result = self.query_one("#sweep-result", Static)
        if not self.available:
            result.update(
                "The sweep is not available when attached to a server (--server): it needs the embedder in this "
                "process. Run the panel on the server's machine without --server to sweep."
            )
        elif self.failure is not None:
            result.update(Text(f"The last sweep failed, no recommendation: {self.failure}"))
        elif self.report is not None and self.verifying:
            result.update(self.describe_verifier(self.report))
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
            source = (
                "the pairs file"
                if self.query_one("#path", Input).value.strip()
                else ("the shipped near-miss report pairs")
            )
            result.update(
                f"Press [b]r[/b] (or Enter) to sweep {source}: the verifier's cut and the threshold."
            )

    def describe_verifier(self, report: EvaluationReport) -> str:
        figures = report.verifier
        reached = figures.served_count > 0 and figures.precision >= report.target_precision - 1e-9
        head = (
            f"Recommended: target precision [b]{report.target_precision:.2f}[/b] (verifier cut "
            f"[b]{report.cut:.2f}[/b]): precision {figures.precision:.1%}, serves {figures.served:.1%} of "
            "duplicates"
            if reached
            else f"Target precision {report.target_precision:.2f} (cut {report.cut:.2f}) is not reached on "
            f"these pairs: precision {figures.precision:.1%}, serves {figures.served:.1%}"
        )
        # Like against like: the distance figures of the same simulated cache as the verifier's.
        meeting = [
            p
            for p in report.baseline_curve
            if p.served_count and p.precision >= report.target_precision - 1e-9
        ]
        best = max(meeting, key=lambda p: (p.served, -p.cut)) if meeting else None
        distance = (
            f"distance alone: threshold {best.cut:.2f}, precision {best.precision:.1%}, serves {best.served:.1%}"
            if best is not None
            else f"no distance threshold alone reaches {report.target_precision:.2f}"
        )
        keys = " · [b]a[/b] applies it, [b]l[/b] tries it in the lab" if reached else ""
        return f"{head} · {distance} ({self.pairs_count:,} pairs){keys}"

    def target(self) -> float:
        try:
            return float(self.query_one("#target", Input).value)
        except ValueError:
            return DEFAULT_TARGET_PRECISION

    @staticmethod
    def marker(name: str) -> str:
        return PLAIN_MARKERS[name] if os.environ.get("NO_COLOR") else "braille"

    def draw(self) -> None:
        by_threshold = self.query_one("#sweep-plot", PlotextPlot)
        plt = by_threshold.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("by distance threshold")
        plt.xlabel("threshold")
        plt.ylim(0, 1)
        if self.points:
            xs = [p.threshold for p in self.points]
            plt.plot(
                xs, [p.precision for p in self.points], label="precision", marker=self.marker("precision")
            )
            plt.plot(xs, [p.recall for p in self.points], label="recall", marker=self.marker("recall"))
            plt.plot(xs, [p.hit_rate for p in self.points], label="hit rate", marker=self.marker("hit rate"))
            plt.vline(self.panel.service.policy.threshold)
            if self.best is not None:
                plt.vline(self.best.threshold, "red")
        by_threshold.refresh()

        served = self.query_one("#verifier-plot", PlotextPlot)
        plt = served.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("precision by share served")
        plt.xlabel("served (of duplicates)")
        plt.ylim(0, 1)
        plt.xlim(0, 1)
        report = self.report
        if report is not None:
            curve = [p for p in report.curve if p.served_count]
            plt.plot(
                [p.served for p in curve],
                [p.precision for p in curve],
                label="verifier",
                marker=self.marker("verifier"),
            )
            baseline = [p for p in report.baseline_curve if p.served_count]
            plt.plot(
                [p.served for p in baseline],
                [p.precision for p in baseline],
                label="distance",
                marker=self.marker("distance"),
            )
            plt.hline(report.target_precision)
        served.refresh()

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
        try:
            sample = int(self.query_one("#sample", Input).value or DEFAULT_SAMPLE)
        except ValueError:
            sample = DEFAULT_SAMPLE
        self.sweep(embedder, path, sample, self.target())

    @work(exclusive=True, group="sweep", exit_on_error=False, name="sweep")
    async def sweep(self, embedder: Embedder, path: str, sample: int, target: float) -> None:
        # A new run replaces the last one: its recommendation must not stay on screen as if current.
        self.points, self.best, self.report, self.pairs_count, self.failure = [], None, None, 0, None
        self.draw()
        self.describe()
        if not 0.0 < target <= 1.0:
            raise InvalidInputError(
                f"target precision {target} is out of range", "use a number above 0 and at most 1, e.g. 0.95"
            )
        pairs = await asyncio.to_thread(load_sweep_pairs, path, sample)
        self.panel.set_status(f"Embedding {2 * len(pairs):,} texts for the sweep…")
        labeled = [LabeledPair(p.text_a, p.text_b, p.label) for p in pairs]
        verify = self.verifying
        points = await evaluate_pairs(embedder, labeled, verify=verify)
        report = None
        if verify:
            self.panel.set_status(f"Scoring {len(pairs):,} pairs with the verifier…")
            verifier = await asyncio.to_thread(self.panel.service.load_verifier)
            report = await evaluate_verifier(
                embedder, pairs, verifier, target, cap=self.panel.service.policy.threshold
            )
        self.points, self.report, self.pairs_count = points, report, len(pairs)
        self.best = recommend(points, target)
        self.draw()
        self.describe()
        what = f"{len(points)} thresholds and the verifier's cuts" if verify else f"{len(points)} thresholds"
        self.panel.set_status(f"Swept {what} over {len(pairs):,} pairs")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name == "sweep" and event.state == WorkerState.ERROR:
            self.failure = self.panel.redact(describe_error(event.worker.error))
            self.describe()

    def reached(self) -> bool:
        report = self.report
        return (
            report is not None
            and report.verifier.served_count > 0
            and report.verifier.precision >= report.target_precision - 1e-9
        )

    def action_apply(self) -> None:
        if self.refused("applying the recommendation"):
            return
        if self.verifying and self.report is not None:
            if not self.reached():
                self.panel.set_status(
                    "The target precision is not reached on these pairs: nothing to apply", "warning"
                )
                return
            self.panel.request_target_precision(self.report.target_precision, after=self.draw)
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
        if self.verifying and self.report is not None and self.reached():
            self.panel.lab_target = self.report.target_precision
            self.panel.set_status(
                f"Query lab target precision set to {self.report.target_precision:.2f} (cut {self.report.cut:.2f})"
            )
            return
        if self.best is None:
            self.panel.set_status("Run a sweep with a reachable target first", "warning")
            return
        self.panel.lab_threshold = self.best.threshold
        self.panel.set_status(f"Query lab threshold set to {self.best.threshold:.3f}")
