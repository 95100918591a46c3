"""`semcache-tui migrate ...`: move the cache to another embedder (provider, model or dimension).

    semcache-tui migrate plan [--to-model M] [--to-dimension D] [--to-provider P]   what would change; changes nothing
    semcache-tui migrate run [--strategy reembed|recreate] [--to-...] [--yes]        migrate (run again to resume)
    semcache-tui migrate status                                                      the active index and progress
    semcache-tui migrate finalize [--yes]                                            delete the old index's entries
    semcache-tui migrate rollback                                                    serve from the old index again

The target defaults to the configured embedder (EMBEDDING_PROVIDER / EMBEDDING_MODEL /
EMBEDDING_OUTPUT_DIMENSION), so after changing the configuration `migrate plan` is enough. Errors are one
line with the exit codes of ``semcache_tui.cli``; everything but ``plan`` and ``status`` is refused with
``--read-only``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from semcache_tui.cli.common import Subcommands, confirm, local_cache, refuse_if_read_only
from semcache_tui.cli.options import add_subcommand_options
from semcache_tui.cli.output import Printer
from semcache_tui.formatting import duration, size

if TYPE_CHECKING:
    from engine.cache import SemanticCache
    from engine.config import Settings
    from engine.migration import MigrationProgress, MigrationState, MigrationTarget
    from engine.service import CacheService
    from engine.stores.base import VectorStore

#: An action of ``migrate``: it works on the cache opened here, never through ``--server``.
Action = Callable[["SemanticCache", argparse.Namespace, Printer, "Settings"], Awaitable[int]]


def register(subparsers: Subcommands) -> None:
    """Add the ``migrate`` command and its actions to the main parser's subcommands."""
    migrate = subparsers.add_parser(
        "migrate", help="move the cache to another embedder", description=__doc__.splitlines()[0]
    )
    actions = migrate.add_subparsers(dest="migrate_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str, *, target: bool = False) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help_text, description=help_text)
        add_subcommand_options(p)
        if target:
            p.add_argument("--to-model", default=None, help="target model (default: EMBEDDING_MODEL)")
            p.add_argument("--to-dimension", type=int, default=None, help="target output dimension")
            p.add_argument("--to-provider", default=None, help="sentence-transformers or ollama")
        return p

    action("plan", "what a migration would change, how long it would take; changes nothing", target=True)
    p = action(
        "run", "migrate (reembed keeps the cache; recreate empties it); run again to resume", target=True
    )
    p.add_argument("--strategy", choices=("reembed", "recreate"), default="reembed")
    p.add_argument("--batch", type=int, default=64, help="prompts embedded per batch (default 64)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (recreate)")
    action("status", "the active index and the last migration's progress")
    p = action("finalize", "delete the old index's entries after a switch (asks unless --yes)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    action("rollback", "serve from the old index again (before finalize)")


# -- helpers -----------------------------------------------------------------------------------------------


def _refuse_if_read_only(args: argparse.Namespace, action: str) -> None:
    refuse_if_read_only(args, f"migrate {action}")


def _target(args: argparse.Namespace, settings: Settings) -> MigrationTarget:
    from engine.migration import MigrationTarget

    model = args.to_model or settings.model_name
    dimension = args.to_dimension
    if dimension is None and args.to_model is None:
        dimension = settings.embedding_output_dimension
    return MigrationTarget(
        model=model,
        dimension=dimension,
        provider=args.to_provider or settings.embedding_provider,
        ollama_base_url=settings.ollama_base_url,
        backend=settings.embedding_backend,
        settings=settings,
    )


def _stores(settings: Settings) -> Callable[[str], VectorStore]:
    from engine.stores import create_store

    return lambda name: create_store(settings, name)


def _progress(printer: Printer) -> Callable[[MigrationProgress], None] | None:
    if printer.quiet or printer.json_mode:
        return None

    def report(p: MigrationProgress) -> None:
        printer.progress(f"{p.phase} {p.done}/{p.total} eta {duration(p.eta_seconds)}")

    return report


def _state_line(state: MigrationState) -> str:
    return (
        f"{state.strategy} {state.source_index} -> {state.target_index} "
        f"({_describe(state.target)}): {state.phase.replace('_', ' ')}, "
        f"{state.done}/{state.total} entries"
    )


def _describe(data: dict[str, Any]) -> str:
    from engine.models import EmbedderIdentity

    return EmbedderIdentity.from_dict(data).describe()


# -- actions -----------------------------------------------------------------------------------------------


async def _plan(cache: SemanticCache, args: argparse.Namespace, printer: Printer, settings: Settings) -> int:
    from engine.migration import plan_migration

    plan = await plan_migration(cache, _target(args, settings))
    if printer.json_mode:
        printer.emit(plan.to_dict())
        return 0
    source = plan.source.describe() if plan.source else "nothing yet (an empty, unbound index)"
    lines = [
        f"index {plan.index} (physical {plan.source_index}): {plan.entries} entries",
        f"  from {source}",
        f"  to   {plan.target.describe()}",
    ]
    if not plan.needed:
        lines.append("  nothing changes: the index already matches the target")
    else:
        lines += [
            f"  changes: {'; '.join(plan.changes)}",
            f"  re-embedding: about {duration(plan.estimated_seconds)} at {plan.embed_rate:.0f} prompts/s "
            f"into {plan.target_index}",
            f"  storage: {size(plan.bytes_before)} -> {size(plan.bytes_after)} (vectors + text, estimated)",
            "  run `semcache-tui migrate run` (keeps the cache) or `--strategy recreate` (empties it)",
        ]
    for line in lines:
        print(line)
    return 0


async def _run(cache: SemanticCache, args: argparse.Namespace, printer: Printer, settings: Settings) -> int:
    from engine.migration import MigrationTarget, migration_status, run_migration

    _refuse_if_read_only(args, "run")
    _, state = await migration_status(cache)
    target = _target(args, settings)
    if state is not None and state.in_progress and args.to_model is None and args.to_dimension is None:
        # Resuming: the recorded target, whatever the configuration says.
        target = MigrationTarget.resuming(state.target_identity, settings)
    if args.strategy == "recreate" and not confirm(
        args,
        f"Delete every entry of index {settings.index_name} and rebind it to {target.model}?",
        settings.index_name,
    ):
        printer.info("nothing changed")
        return 1
    result = await run_migration(
        cache,
        target,
        _stores(settings),
        strategy=args.strategy,
        progress=_progress(printer),
        batch=args.batch,
    )
    if printer.json_mode:
        printer.emit(result.to_dict())
    else:
        printer.info(_state_line(result))
        if result.phase == "switched":
            printer.info(
                "now serving from the new index; running servers follow within SEMCACHE_FOLLOW_INTERVAL "
                "(5 s by default) and open panels at their next refresh; set EMBEDDING_* to the new embedder, then "
                "`semcache-tui migrate finalize` (or `rollback`)"
            )
    return 0


async def _status(
    cache: SemanticCache, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    from engine.migration import migration_status

    active, state = await migration_status(cache)
    if printer.json_mode:
        printer.emit({"index": settings.index_name, "active": active, "migration": state and state.to_dict()})
        return 0
    print(f"index {settings.index_name}: serving from {active}")
    print(f"  {_state_line(state)}" if state else "  no migration")
    return 0


async def _finalize(
    cache: SemanticCache, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    from engine.migration import finalize_migration, migration_status

    _refuse_if_read_only(args, "finalize")
    _, state = await migration_status(cache)
    if state is not None and state.phase == "switched":
        question = f"Delete every entry of the old index {state.source_index}? No rollback after this."
        if not confirm(args, question, "finalize"):
            printer.info("nothing changed")
            return 1
    deleted = await finalize_migration(cache, _stores(settings), settings=settings)
    printer.info(f"deleted {deleted} entries of the old index")
    if printer.json_mode:
        printer.emit({"deleted": deleted})
    return 0


async def _rollback(
    cache: SemanticCache, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    from engine.migration import rollback_migration

    _refuse_if_read_only(args, "rollback")
    state = await rollback_migration(cache, _stores(settings), settings=settings)
    printer.info(
        f"serving from {state.source_index} again; running servers follow within SEMCACHE_FOLLOW_INTERVAL, "
        "open panels at their next refresh"
    )
    if printer.json_mode:
        printer.emit(state.to_dict())
    return 0


ACTIONS: dict[str, Action] = {
    "plan": _plan,
    "run": _run,
    "status": _status,
    "finalize": _finalize,
    "rollback": _rollback,
}


async def handle(
    service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    cache = local_cache(service, "migrations", "drop --server and pass --store/--redis-url")
    return await ACTIONS[args.migrate_command](cache, args, printer, settings)
