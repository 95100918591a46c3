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
from engine.models import CacheEntry, CacheStats, CheckResult, EntryPage, HealthReport, IndexInfo
from semcache_tui.formatting import ms, one_line, percent

if TYPE_CHECKING:
    from engine.config import Settings


def stats_dict(stats: CacheStats) -> dict[str, Any]:
    return {
        "total_entries": stats.entries,
        "hits": stats.hits,
        "misses": stats.misses,
        "hit_rate": round(stats.hit_rate, 4),
        "latency_p50_ms": stats.latency_p50_ms,
        "latency_p95_ms": stats.latency_p95_ms,
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
        limits = [f"{info.max_entries} entries" if info.max_entries else "no limit"]
        if info.max_entries_per_scope:
            limits.append(f"{info.max_entries_per_scope} per scope")
        self.info(f"  capacity: {', '.join(limits)} (eviction policy {info.eviction_policy or 'none'})")
        self.info(f"  evictions: {info.evictions}")
        per_entry = info.memory_per_entry
        self.info(f"  memory per entry: {f'{per_entry:,.0f} bytes' if per_entry is not None else 'unknown'}")
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
