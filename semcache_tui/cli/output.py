"""What the subcommands print: short human lines, or one JSON document with ``--json``.

A JSON document names its fields as the HTTP API does for the same result (``vector_distance``,
``cosine_similarity``, ``total_entries``, ``latency_p50_ms``...; see engine/server/schemas.py), so a script
reads the command's answer and the server's alike.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from engine.errors import SemcacheError
from engine.models import (
    CacheEntry,
    CacheStats,
    Candidate,
    CheckResult,
    EntryPage,
    FeedbackResult,
    HealthReport,
    IndexInfo,
)
from semcache_tui.formatting import capacity, evictions, ms, one_line, percent, policy, size

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.verification.evaluate import CurvePoint, EvaluationReport


def stats_dict(stats: CacheStats) -> dict[str, Any]:
    return {
        "total_entries": stats.entries,
        "hits": stats.hits,
        "misses": stats.misses,
        "hit_rate": round(stats.hit_rate, 4),
        "latency_p50_ms": stats.latency_p50_ms,
        "latency_p95_ms": stats.latency_p95_ms,
        "feedback_wrong": stats.feedback_wrong,
        "feedback_right": stats.feedback_right,
        "evictions": stats.evictions,
    }


def wrong_rate(wrong: int, pairs: int) -> float:
    """Queries served a wrong answer, out of all queries."""
    return wrong / pairs if pairs else 0.0


def curve_rows(report: EvaluationReport) -> list[CurvePoint]:
    """The verifier's curve every 0.05 of cut, and the point of the target's cut."""
    rows = [p for p in report.curve if round(p.cut * 1000) % 50 == 0 and 0.3 <= p.cut <= 1.0]
    at_cut = min(report.curve, key=lambda p: abs(p.cut - report.cut), default=None)
    if at_cut is not None:
        from dataclasses import replace

        rows.append(replace(at_cut, cut=report.cut))
    return sorted(rows, key=lambda p: p.cut)


def evaluation_dict(report: EvaluationReport) -> dict[str, Any]:
    def figures(f: Any) -> dict[str, Any]:
        return {
            "precision": round(f.precision, 4),
            "served": round(f.served, 4),
            "served_count": f.served_count,
            "correct": f.correct,
            "wrong_rate": round(wrong_rate(f.wrong, report.pairs), 4),
            "categories": [
                {
                    "category": c.category,
                    "positives": c.positives,
                    "negatives": c.negatives,
                    "served_rate": round(c.served_rate, 4),
                    "wrong_served_rate": round(c.wrong_served_rate, 4),
                }
                for c in f.categories
            ],
        }

    return {
        "pairs": report.pairs,
        "positives": report.positives,
        "cap": report.cap,
        "k": report.k,
        "cap_recall": round(report.cap_recall, 4),
        "target_precision": report.target_precision,
        "cut": round(report.cut, 4),
        "verifier": figures(report.verifier),
        "baseline": figures(report.baseline),
        "curve": [
            {
                "cut": p.cut,
                "precision": round(p.precision, 4),
                "served": round(p.served, 4),
                "meets_target": p.precision >= report.target_precision,
            }
            for p in report.curve
        ],
    }


def check_dict(result: CheckResult) -> dict[str, Any]:
    return {
        "prompt": result.prompt,
        "scope": result.scope,
        "threshold": result.threshold,
        "is_hit": result.is_hit,
        "exact": result.exact,
        "lookup_time_ms": round(result.lookup_time_ms, 3),
        "matches": [
            {
                "key": m.entry.key,
                "prompt": m.entry.prompt,
                "response": m.entry.response,
                "vector_distance": round(m.distance, 6),
                "cosine_similarity": round(m.similarity, 6),
                "metadata": m.entry.metadata,
            }
            for m in result.matches
        ],
        "rejected": [
            {
                "key": m.entry.key,
                "prompt": m.entry.prompt,
                "vector_distance": round(m.distance, 6),
                "reason": reason,
            }
            for m, reason in result.rejected
        ],
        "explain": [explain_dict(c) for c in result.candidates],
    }


def explain_dict(candidate: Candidate) -> dict[str, Any]:
    """One candidate as ``/cache/check`` explains it (``explain: true``)."""
    return {
        "key": candidate.match.entry.key,
        "prompt": candidate.match.entry.prompt,
        "vector_distance": round(candidate.match.distance, 6),
        "score": None if candidate.score is None else round(candidate.score, 6),
        "served": candidate.served,
        "reason": candidate.reason,
    }


class Printer:
    """Human lines (none with ``-q``), or with ``--json`` one JSON document on stdout; errors on stderr."""

    def __init__(self, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet

    def emit(self, data: Any) -> None:
        """The JSON document of a command, printed only with ``--json``."""
        if self.json_mode:
            print(json.dumps(data, indent=2, default=str, ensure_ascii=False))

    def progress(self, line: str) -> None:
        """A progress line on stderr, at once (stdout stays the command's answer)."""
        print(line, file=sys.stderr, flush=True)

    def info(self, line: str) -> None:
        if not self.quiet and not self.json_mode:
            print(line)

    def error(self, exc: SemcacheError) -> None:
        if self.json_mode:
            print(json.dumps(exc.to_dict()), file=sys.stderr)
        else:
            print(f"semcache-tui: {exc}", file=sys.stderr)

    def check_result(self, result: CheckResult) -> None:
        if self.json_mode:
            return self.emit(check_dict(result))
        if self.quiet:
            return None
        verdict = "HIT (exact repeat)" if result.exact else ("HIT" if result.is_hit else "MISS")
        print(f"{verdict} at threshold {result.threshold} in {ms(result.lookup_time_ms)}")
        for match in result.matches:
            print(f"  {match.distance:.4f}  {one_line(match.entry.prompt, 60)}")
            print(f"          -> {one_line(match.entry.response, 70)}")
        for match, reason in result.rejected:
            print(f"  {match.distance:.4f}  {one_line(match.entry.prompt, 60)}  [rejected: {reason}]")
        refused = result.best_refused
        if not result.is_hit and refused is not None:
            print(f"closest refused: {one_line(refused.match.entry.prompt, 60)} ({refused.reason})")
        return None

    def feedback(self, key: str, correct: bool, result: FeedbackResult) -> None:
        if self.json_mode:
            return self.emit(
                {
                    "success": True,
                    "key": key,
                    "wrong": result.wrong,
                    "right": result.right,
                    "evicted": result.evicted,
                }
            )
        verdict = "right" if correct else "wrong"
        self.info(f"reported {key} {verdict}: {result.wrong} wrong, {result.right} right")
        if result.evicted:
            self.info(f"evicted {key}: too many wrong reports")
        return None

    def evaluation(self, report: EvaluationReport, path: str) -> None:
        if self.json_mode:
            return self.emit(evaluation_dict(report))
        v = report.verifier
        self.info(
            f"{path}: {report.pairs} pairs ({report.positives} duplicates), target precision "
            f"{report.target_precision:.3f} -> cut {report.cut:.3f} (cap {report.cap:.2f}, k {report.k})"
        )
        self.info(
            f"verifier: precision {v.precision:.3f}  served {percent(v.served)}  "
            f"wrong {percent(wrong_rate(v.wrong, report.pairs))} of queries"
        )
        b = report.baseline
        self.info(
            f"distance 0.15 (the seed): precision {b.precision:.3f}  served {percent(b.served)}  "
            f"wrong {percent(wrong_rate(b.wrong, report.pairs))} of queries"
        )
        self.info(f"{'category':<22} {'pairs':>6} {'served':>8} {'wrong-served':>13}")
        for c in v.categories:
            served = percent(c.served_rate) if c.positives else "-"
            wrong = percent(c.wrong_served_rate) if c.negatives else "-"
            self.info(f"{c.category:<22} {c.positives + c.negatives:>6} {served:>8} {wrong:>13}")
        self.info("curve (score cut: precision / served):")
        for point in curve_rows(report):
            mark = "  <- target" if abs(point.cut - report.cut) < 1e-9 else ""
            meets = "meets" if point.precision >= report.target_precision else "below"
            self.info(
                f"  {point.cut:.3f}: {point.precision:.3f} / {percent(point.served)}  "
                f"({meets} {report.target_precision:.3f}){mark}"
            )
        return None

    def stored(self, entry: CacheEntry) -> None:
        if self.json_mode:
            return self.emit(
                {"success": True, "key": entry.key, "scope": entry.scope, "expires_at": entry.expires_at}
            )
        self.info(f"stored {entry.key} in scope {entry.scope}")
        return None

    def stats(self, stats: CacheStats, settings: Settings) -> None:
        data = stats_dict(stats) | {
            "index_name": settings.index_name,
            "threshold": settings.distance_threshold,
        }
        if self.json_mode:
            return self.emit(data)
        self.info(
            f"entries {stats.entries}  hits {stats.hits}  misses {stats.misses}  "
            f"hit rate {percent(stats.hit_rate)}  p50 {ms(stats.latency_p50_ms)}  p95 {ms(stats.latency_p95_ms)}"
        )
        return None

    def cleared(self, deleted: int) -> None:
        if self.json_mode:
            return self.emit({"success": True, "deleted_count": deleted})
        self.info(f"deleted {deleted} entries")
        return None

    def deleted(self, key: str) -> None:
        if self.json_mode:
            return self.emit({"success": True, "key": key})
        self.info(f"deleted {key}")
        return None

    def entries(self, page: EntryPage) -> None:
        if self.json_mode:
            return self.emit(
                {
                    "total": page.total,
                    "offset": page.offset,
                    "limit": page.limit,
                    "entries": [e.to_dict() for e in page.entries],
                }
            )
        now = time.time()
        for entry in page.entries:
            ttl = entry.remaining_ttl(now)
            ttl_text = "never" if ttl is None else f"{int(ttl)}s"
            self.info(
                f"{entry.key}  [{entry.scope}] hits={entry.hit_count} ttl={ttl_text}  {one_line(entry.prompt, 60)}"
            )
        self.info(f"{page.offset + len(page.entries)} of {page.total}")
        return None

    def health(self, report: HealthReport) -> None:
        if self.json_mode:
            return self.emit({"status": report.status, "components": [asdict(c) for c in report.components]})
        self.info(f"status: {report.status}")
        for component in report.components:
            latency = f" ({ms(component.latency_ms)})" if component.latency_ms is not None else ""
            self.info(f"  {component.name}: {component.status}{latency} {component.detail}".rstrip())
            marker = component.facts.get("import_incomplete")
            if isinstance(marker, dict):
                from engine.backup.import_ import describe_import

                self.info(f"  {component.name}: {describe_import(marker)}")
        return None

    def index(self, info: IndexInfo) -> None:
        if self.json_mode:
            return self.emit({**asdict(info), "memory_per_entry_bytes": info.memory_per_entry})
        identity = info.identity.describe() if info.identity else "none recorded"
        self.info(
            f"index {info.name} ({info.store}): {info.documents} documents, {info.algorithm} {info.metric}"
        )
        self.info(f"  embedder: {identity}")
        for key, value in info.parameters.items():
            self.info(f"  {key}: {value}")
        limited = bool(info.max_entries or info.max_entries_per_scope)
        self.info(f"  capacity: {capacity(info.documents, info.max_entries, info.max_entries_per_scope)}")
        self.info(f"  eviction policy: {policy(info.eviction_policy, limited)}")
        self.info(f"  evictions: {evictions(info.evictions, info.evictions_per_minute)}")
        self.info(f"  memory per entry: {size(info.memory_per_entry)}")
        return None

    def demo(self, results: list[CheckResult], stats: CacheStats, settings: Settings) -> None:
        if self.json_mode:
            return self.emit({"checks": [check_dict(r) for r in results], "stats": stats_dict(stats)})
        for result in results:
            best = result.best
            if best is not None:
                how = "exact" if result.exact else f"distance {best.distance:.3f}"
                self.info(
                    f"HIT   {one_line(result.prompt, 45):45}  ({how}) -> {one_line(best.entry.response, 50)}"
                )
            else:
                self.info(f"MISS  {one_line(result.prompt, 45):45}  (call your LLM, then store the answer)")
        self.stats(stats, settings)
        return None
