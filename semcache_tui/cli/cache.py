"""The subcommands on the cache itself: check, store, stats, clear, entries, delete, health, index, demo.

Each works the same on a cache opened here and through ``--server``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from semcache_tui import __version__
from semcache_tui.cli.common import Handler, Subcommands, confirm, refuse_if_read_only
from semcache_tui.cli.options import add_subcommand_options
from semcache_tui.cli.output import Printer
from semcache_tui.formatting import one_line

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.models import CheckResult
    from engine.service import CacheService

EXIT_MISS = 1
EXIT_UNHEALTHY = 4
#: Up but not fully: a component is loading (the model) or degraded (Redis near maxmemory).
EXIT_DEGRADED = 8


def register(subparsers: Subcommands) -> None:
    """Add these subcommands to the main parser's."""

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text, description=help_text)
        add_subcommand_options(p)
        return p

    p = command("check", "look a prompt up; exit 0 on a hit, 1 on a miss")
    p.add_argument("prompt")
    p.add_argument("--scope", default=None)
    p.add_argument("-k", type=int, default=5, help="how many matches to show (default 5)")

    p = command("store", "store a response for a prompt")
    p.add_argument("prompt")
    p.add_argument("response")
    p.add_argument("--scope", default=None)
    p.add_argument("--metadata", default=None, help="a JSON object")
    p.add_argument(
        "--entry-ttl", type=int, default=None, help="this entry's TTL in seconds (0: never expires)"
    )

    command("stats", "entries, hits, misses, hit rate and lookup latency")

    p = command("clear", "delete every entry (asks unless --yes)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = command("entries", "list entries, newest first")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--scope", default=None)
    p.add_argument("--contains", default=None, help="only prompts containing this text")

    p = command("delete", "delete one entry by key")
    p.add_argument("key")

    p = command("feedback", "report a served answer as wrong (never served again for that prompt) or right")
    p.add_argument("key", help="the key of the entry that was served")
    p.add_argument("--prompt", required=True, help="the prompt it was served for")
    p.add_argument("--scope", default=None)
    verdict = p.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--wrong", action="store_true", help="the answer was wrong for this prompt")
    verdict.add_argument("--right", action="store_true", help="the answer was right for this prompt")

    p = command(
        "eval",
        "precision, served and wrong rates of the verifier on labeled pairs (JSON lines, gzip or plain)",
    )
    p.add_argument("pairs", metavar="PAIRS.jsonl[.gz]")
    p.add_argument("--target", type=float, default=None, help="target precision (default: the verifier's)")
    p.add_argument("--limit", type=int, default=None, help="evaluate a seeded sample of this many pairs")

    command("health", "store and embedder health; exit 4 when something is down, 8 when degraded")
    command("index", "the index: capacity, eviction policy, evictions, memory per entry, algorithm, embedder")
    command("demo", "store sample answers, look up paraphrases, print what happened")


async def check(service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings) -> int:
    result = await service.check(args.prompt, scope=args.scope, threshold=args.threshold, k=args.k)
    printer.check_result(result)
    return 0 if result.is_hit else EXIT_MISS


async def store(service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings) -> int:
    refuse_if_read_only(args, "store")
    metadata = parse_metadata(args.metadata)
    entry = await service.store(
        args.prompt, args.response, scope=args.scope, metadata=metadata, ttl=args.entry_ttl
    )
    printer.stored(entry)
    return 0


def parse_metadata(raw: str | None) -> dict[str, Any] | None:
    from engine.errors import InvalidInputError

    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"--metadata is not valid JSON ({exc.msg})", 'pass an object, e.g. \'{"model": "x"}\''
        ) from None
    if not isinstance(value, dict):
        raise InvalidInputError("--metadata must be a JSON object", 'pass an object, e.g. \'{"model": "x"}\'')
    return value


async def stats(service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings) -> int:
    printer.stats(await service.stats(), settings)
    return 0


async def clear(service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings) -> int:
    refuse_if_read_only(args, "clear")
    name = settings.index_name
    if not confirm(args, f"Delete every entry of index {name}?", name, subject="clear", verb="clear"):
        printer.info("not cleared")
        return 1
    deleted = await service.clear()
    printer.cleared(deleted)
    return 0


async def entries(
    service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    page = await service.list_entries(
        offset=args.offset, limit=args.limit, scope=args.scope, contains=args.contains
    )
    printer.entries(page)
    return 0


async def delete(
    service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    refuse_if_read_only(args, "delete")
    from engine.errors import NotFoundError

    if not await service.delete(args.key):
        raise NotFoundError(f"no entry with key {args.key}", "list keys with `semcache-tui entries`")
    printer.deleted(args.key)
    return 0


async def feedback(
    service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    refuse_if_read_only(args, "feedback")
    correct = bool(args.right)
    result = await service.feedback(args.prompt, args.key, correct, scope=args.scope)
    printer.feedback(args.key, correct, result)
    return 0


async def evaluate(args: argparse.Namespace, printer: Printer, settings: Settings) -> int:
    """``eval``: needs no cache, only the verifier and the bundled model (the simulation of
    engine/verification/evaluate.py: every text_a cached, every text_b a query)."""
    import numpy as np

    from engine.cache import bundled_embedder
    from engine.errors import InvalidInputError
    from engine.evaluation import read_eval_pairs
    from engine.verification.evaluate import evaluate_pairs
    from engine.verification.model import Verifier

    target = args.target
    if target is not None and not 0.0 < target <= 1.0:
        raise InvalidInputError(f"--target {target} is out of range", "use a precision above 0 and at most 1")
    pairs = read_eval_pairs(args.pairs, limit=args.limit)
    verifier = Verifier.load(settings.verifier_path, settings.resolved_model_cache_dir)
    if target is None:
        target = settings.target_precision
    model = bundled_embedder()
    await model.load()
    texts = sorted({t for p in pairs for t in (p.text_a, p.text_b)})
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(texts), 256):
        chunk = texts[start : start + 256]
        vectors.update(zip(chunk, await model.embed(chunk), strict=True))

    def embed(batch: Sequence[str]) -> np.ndarray:
        return np.stack([vectors[text] for text in batch])

    report = evaluate_pairs(pairs, verifier, embed, target)
    printer.evaluation(report, args.pairs)
    return 0


async def health(
    service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    from engine.cache import SemanticCache
    from engine.errors import SemcacheError

    if isinstance(service, SemanticCache):
        # In this process the model is only "loading" because nothing loaded it yet: load it, so the
        # report (and the exit status) is about the cache, not about this command. A failure shows below.
        with contextlib.suppress(SemcacheError):
            await service.start()
    report = await service.health()
    printer.health(report)
    if report.status == "unhealthy":
        return EXIT_UNHEALTHY
    return EXIT_DEGRADED if report.status == "degraded" else 0


async def index(service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings) -> int:
    printer.index(await service.index_info())
    return 0


#: The demo's own near miss: stored, then asked with another number. A static distance would serve the
#: stored answer (the two are very close); the verifier refuses it and says why.
DEMO_NEAR_MISS = ("How do I convert 5 km to miles?", "Multiply by 0.621: 5 km is about 3.1 miles.")
DEMO_NEAR_MISS_QUERY = "How do I convert 50 km to miles?"


def demo_line(result: CheckResult) -> str:
    """One check as the demo prints it: HIT with the verifier's score, REFUSED with the reason, or MISS."""
    prompt = f"{one_line(result.prompt, 45):45}"
    served = next((c for c in result.candidates if c.served), None)
    if served is not None:
        how = "exact repeat" if result.exact else f"distance {served.match.distance:.3f}"
        if served.score is not None:
            how = f"score {served.score:.2f}, {how}"
        return f"HIT      {prompt}  ({how}) -> {one_line(served.match.entry.response, 40)}"
    if result.rejected:
        match, reason = result.rejected[0]
        return f"REFUSED  {prompt}  ({reason}; nearest: {one_line(match.entry.prompt, 40)})"
    return f"MISS     {prompt}  (call your LLM, then store the answer)"


async def demo(service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings) -> int:
    """The main job in one command: fill the cache with samples, look up paraphrases and a near miss, show
    what was served, what was refused and why, and the numbers."""
    from engine.cache import StoreRequest
    from engine.samples import SAMPLE_PAIRS, SAMPLE_QUERIES

    printer.info(f"semcache {__version__}: store={settings.store_kind} model={settings.model_name}")
    printer.info("loading the embedding model...")
    identity = await service.start()
    printer.info(f"embedder {identity.describe()}")
    pairs = [*SAMPLE_PAIRS, DEMO_NEAR_MISS]
    await service.store_many([StoreRequest(p, r) for p, r in pairs])
    printer.info(f"stored {len(pairs)} sample answers")
    results = [await service.check(query) for query in [*SAMPLE_QUERIES, DEMO_NEAR_MISS_QUERY]]
    if printer.json_mode:
        printer.demo(results, await service.stats(), settings)
        return 0
    for result in results:
        printer.info(demo_line(result))
    printer.stats(await service.stats(), settings)
    return 0


COMMANDS: dict[str, Handler] = {
    "check": check,
    "store": store,
    "stats": stats,
    "clear": clear,
    "entries": entries,
    "delete": delete,
    "feedback": feedback,
    "health": health,
    "index": index,
    "demo": demo,
}
