"""What the subcommands print: short human lines, or one JSON document with ``--json``."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import Any

from engine.errors import SemcacheError
from engine.models import CacheEntry, CacheStats, CheckResult, EntryPage, HealthReport, IndexInfo


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def duration(seconds: float | None) -> str:
    """An estimate or an ETA, at the precision an operator needs: 45s, 12m, 3.5h."""
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def age(seconds: float) -> str:
    """How old something is, at a glance: 45s, 12m, 5h, 3d (a clock skew never shows a negative age)."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def size(n: float) -> str:
    """A file or storage size for command output: 512 B, 3.4 MB."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def stats_dict(stats: CacheStats) -> dict[str, Any]:
    return {
        "entries": stats.entries,
        "hits": stats.hits,
        "misses": stats.misses,
        "hit_rate": round(stats.hit_rate, 4),
        "lookup_latency_p50_ms": stats.latency_p50_ms,
        "lookup_latency_p95_ms": stats.latency_p95_ms,
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
                "distance": round(m.distance, 6),
                "similarity": round(m.similarity, 6),
                "metadata": m.entry.metadata,
            }
            for m in result.matches
        ],
        "rejected": [
            {"key": m.entry.key, "prompt": m.entry.prompt, "distance": round(m.distance, 6), "reason": reason}
            for m, reason in result.rejected
        ],
    }


class Printer:
    def __init__(self, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet

    def _json(self, data: Any) -> None:
        print(json.dumps(data, indent=2, default=str, ensure_ascii=False))

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
            return self._json(check_dict(result))
        if self.quiet:
            return None
        verdict = "HIT (exact repeat)" if result.exact else ("HIT" if result.is_hit else "MISS")
        print(f"{verdict} at threshold {result.threshold} in {result.lookup_time_ms:.1f} ms")
        for match in result.matches:
            print(f"  {match.distance:.4f}  {_short(match.entry.prompt)}")
            print(f"          -> {_short(match.entry.response, 70)}")
        for match, reason in result.rejected:
            print(f"  {match.distance:.4f}  {_short(match.entry.prompt)}  [rejected: {reason}]")
        return None

    def stored(self, entry: CacheEntry) -> None:
        if self.json_mode:
            return self._json(
                {"success": True, "key": entry.key, "scope": entry.scope, "expires_at": entry.expires_at}
            )
        self.info(f"stored {entry.key} in scope {entry.scope}")
        return None

    def stats(self, stats: CacheStats, settings: Any) -> None:
        data = stats_dict(stats) | {
            "index_name": settings.index_name,
            "threshold": settings.distance_threshold,
        }
        if self.json_mode:
            return self._json(data)
        self.info(
            f"entries {stats.entries}  hits {stats.hits}  misses {stats.misses}  hit rate {stats.hit_rate:.1%}  "
            f"p50 {_ms(stats.latency_p50_ms)}  p95 {_ms(stats.latency_p95_ms)}"
        )
        return None

    def cleared(self, deleted: int) -> None:
        if self.json_mode:
            return self._json({"success": True, "deleted_count": deleted})
        self.info(f"deleted {deleted} entries")
        return None

    def deleted(self, key: str) -> None:
        if self.json_mode:
            return self._json({"success": True, "key": key})
        self.info(f"deleted {key}")
        return None

    def entries(self, page: EntryPage) -> None:
        if self.json_mode:
            return self._json(
                {
                    "total": page.total,
                    "offset": page.offset,
                    "limit": page.limit,
                    "entries": [asdict(e) for e in page.entries],
                }
            )
        now = time.time()
        for entry in page.entries:
            ttl = entry.remaining_ttl(now)
            ttl_text = "never" if ttl is None else f"{int(ttl)}s"
            self.info(
                f"{entry.key}  [{entry.scope}] hits={entry.hit_count} ttl={ttl_text}  {_short(entry.prompt)}"
            )
        self.info(f"{page.offset + len(page.entries)} of {page.total}")
        return None

    def health(self, report: HealthReport) -> None:
        if self.json_mode:
            return self._json({"status": report.status, "components": [asdict(c) for c in report.components]})
        self.info(f"status: {report.status}")
        for component in report.components:
            latency = f" ({component.latency_ms:.1f} ms)" if component.latency_ms is not None else ""
            self.info(f"  {component.name}: {component.status}{latency} {component.detail}".rstrip())
        return None

    def index(self, info: IndexInfo) -> None:
        if self.json_mode:
            return self._json(asdict(info))
        identity = info.identity.describe() if info.identity else "none recorded"
        self.info(
            f"index {info.name} ({info.store}): {info.documents} documents, {info.algorithm} {info.metric}"
        )
        self.info(f"  embedder: {identity}")
        for key, value in info.parameters.items():
            self.info(f"  {key}: {value}")
        return None

    def demo(self, results: list[CheckResult], stats: CacheStats, settings: Any) -> None:
        if self.json_mode:
            return self._json({"checks": [check_dict(r) for r in results], "stats": stats_dict(stats)})
        for result in results:
            best = result.best
            if best is not None:
                how = "exact" if result.exact else f"distance {best.distance:.3f}"
                self.info(
                    f"HIT   {_short(result.prompt, 45):45}  ({how}) -> {_short(best.entry.response, 50)}"
                )
            else:
                self.info(f"MISS  {_short(result.prompt, 45):45}  (call your LLM, then store the answer)")
        self.stats(stats, settings)
        return None
