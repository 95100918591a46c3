"""`semcache-tui backup ...`: logical exports, Redis snapshots, and restoring them. Made for cron.

    semcache-tui backup create [--vectors] [--snapshot]   an export (and a Redis RDB copy) into the backups folder
    semcache-tui backup list                               backups with size and age, newest first
    semcache-tui backup prune --keep-days N                delete backups older than N days
    semcache-tui backup export FILE [--vectors] [--force]  an export to an explicit path
    semcache-tui backup import FILE                        load an export (idempotent; expired entries skipped)
    semcache-tui backup restore NAME|latest [--replace]    import a named backup, after confirmation
    semcache-tui backup restore --rdb FILE [--target P]    the guided RDB procedure, after confirmation

Quiet on success unless ``-v`` (or ``--json``, or ``list``); errors are one line with the exit codes of
``semcache_tui.cli``. Every action but ``list`` is refused with ``--read-only``. The backups folder is
``--backup-dir``, else ``SEMCACHE_BACKUP_DIR``, else ``<data dir>/backups``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semcache_tui.cli.common import Handler, Subcommands, confirm, local_cache, refuse_if_read_only
from semcache_tui.cli.options import add_subcommand_options
from semcache_tui.cli.output import Printer
from semcache_tui.formatting import age, size

if TYPE_CHECKING:
    from engine.backup import ExportSummary, ImportSummary, SnapshotResult
    from engine.cache import SemanticCache
    from engine.config import Settings
    from engine.service import CacheService

CHANGE_HINT = "run without --read-only to change the cache or its backups"
VECTORS_HELP = "include each entry's vector: an import with the same embedder then embeds nothing"


def register(subparsers: Subcommands) -> None:
    """Add the ``backup`` command and its actions to the main parser's subcommands."""
    backup = subparsers.add_parser(
        "backup", help="logical exports, Redis snapshots, restore", description=__doc__.splitlines()[0]
    )
    actions = backup.add_subparsers(dest="backup_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help_text, description=help_text)
        add_subcommand_options(p)
        p.add_argument("-v", "--verbose", action="store_true", help="say what was done, with progress")
        p.add_argument("--backup-dir", default=None, help="SEMCACHE_BACKUP_DIR (default <data dir>/backups)")
        return p

    p = action("create", "write a logical export into the backups folder, named with a UTC timestamp")
    p.add_argument("--vectors", action="store_true", help=VECTORS_HELP)
    p.add_argument("--snapshot", action="store_true", help="Redis: also BGSAVE and copy the RDB file")

    action("list", "backups in the backups folder, with size and age, newest first")

    p = action("prune", "delete backups older than --keep-days days")
    p.add_argument("--keep-days", type=int, required=True, metavar="N")

    p = action("export", "write a logical export to FILE")
    p.add_argument("file")
    p.add_argument("--vectors", action="store_true", help=VECTORS_HELP)
    p.add_argument("--force", action="store_true", help="overwrite FILE when it exists")

    p = action("import", "load a logical export; importing twice changes nothing")
    p.add_argument("file")

    p = action("restore", "import a named backup, or print and follow the RDB procedure (asks unless --yes)")
    p.add_argument("name", nargs="?", help="a backup in the backups folder, a path, or 'latest'")
    p.add_argument("--rdb", default=None, metavar="FILE", help="restore this Redis RDB snapshot instead")
    p.add_argument(
        "--target", default=None, metavar="PATH", help="where Redis loads dump.rdb (when it is down)"
    )
    p.add_argument("--replace", action="store_true", help="clear the cache before importing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


# -- helpers -----------------------------------------------------------------------------------------------


def _backup_dir(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.backup_dir).expanduser() if args.backup_dir else settings.resolved_backup_dir


def _say(printer: Printer, args: argparse.Namespace, line: str) -> None:
    """Success chatter: only with -v, never with --json or -q."""
    if args.verbose:
        printer.info(line)


def _progress(printer: Printer, args: argparse.Namespace, verb: str) -> Callable[[int, int], None] | None:
    if not args.verbose or printer.quiet or printer.json_mode:
        return None

    def report(done: int, total: int) -> None:
        printer.progress(f"{verb} {done}/{total}")

    return report


def _cache(service: CacheService) -> SemanticCache:
    return local_cache(
        service, "backups", "drop --server and pass --store/--redis-url (a remote Redis works)"
    )


def _refuse_if_read_only(args: argparse.Namespace, action: str) -> None:
    refuse_if_read_only(args, f"backup {action}", CHANGE_HINT)


def _confirm(args: argparse.Namespace, question: str) -> bool:
    return confirm(args, question, "restore", subject="restore", verb="restore")


def _export_dict(summary: ExportSummary) -> dict[str, Any]:
    return {
        "path": str(summary.path),
        "count": summary.count,
        "vectors": summary.vectors,
        "bytes": summary.bytes,
        "embedder": summary.identity.to_dict() if summary.identity else None,
        "note": summary.note,
    }


def _import_dict(summary: ImportSummary) -> dict[str, Any]:
    return {
        "path": str(summary.path),
        "total": summary.total,
        "written": summary.written,
        "expired_skipped": summary.expired,
        "embedded": summary.embedded,
        "reused_vectors": summary.reused_vectors,
    }


def _snapshot_dict(result: SnapshotResult) -> dict[str, Any]:
    return {
        "saved_at": result.saved_at,
        "redis_dir": result.redis_dir,
        "dbfilename": result.dbfilename,
        "copied_to": str(result.copied_to) if result.copied_to else None,
        "bytes": result.size,
        "instructions": result.instructions,
    }


def _redis_url(settings: Settings) -> str | None:
    return settings.redis_url if settings.store_kind == "redis" else None


def _redis_source(settings: Settings) -> str | None:
    return settings.safe_redis_url if settings.store_kind == "redis" else None


# -- actions -----------------------------------------------------------------------------------------------


async def _create(
    service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    from engine.backup import RDB_SUFFIX, backup_name, create_backup, snapshot_rdb
    from engine.errors import InvalidInputError

    _refuse_if_read_only(args, "create")
    cache = _cache(service)
    snapshot_from = _redis_url(settings) if args.snapshot else None
    if args.snapshot and not snapshot_from:
        raise InvalidInputError("--snapshot is for the Redis store", "drop --snapshot for the local store")
    folder = _backup_dir(args, settings)
    summary = await create_backup(
        cache,
        folder,
        include_vectors=args.vectors,
        progress=_progress(printer, args, "exported"),
        source=_redis_source(settings),
    )
    data: dict[str, Any] = {"export": _export_dict(summary)}
    _say(printer, args, f"wrote {summary.path} ({summary.count} entries, {size(summary.bytes)})")
    if summary.note:
        _say(printer, args, f"note: {summary.note}")
    status = 0
    if snapshot_from:
        result = await snapshot_rdb(
            snapshot_from,
            folder,
            password=settings.redis_password,
            sentinel_password=settings.redis_sentinel_password,
            filename=backup_name(settings.index_name, time.time(), RDB_SUFFIX),
        )
        data["snapshot"] = _snapshot_dict(result)
        if result.copied_to is not None:
            _say(printer, args, f"copied the Redis snapshot to {result.copied_to} ({size(result.size or 0)})")
        else:
            # Not an error for the export, but cron must notice: the RDB copy it asked for is not here.
            status = 3
            if not printer.json_mode:
                print(f"semcache-tui: snapshot not copied: {result.instructions}", file=sys.stderr)
    printer.emit(data)
    return status


async def _list(service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings) -> int:
    from engine.backup import list_backups

    folder = _backup_dir(args, settings)
    backups = list_backups(folder)
    now = time.time()
    marker = await _import_marker(service)
    if printer.json_mode:
        printer.emit(
            {
                "directory": str(folder),
                "import_incomplete": marker,
                "backups": [
                    {
                        "name": b.path.name,
                        "path": str(b.path),
                        "kind": b.kind,
                        "bytes": b.size,
                        "modified": b.modified,
                        "age_seconds": round(b.age_seconds(now), 1),
                    }
                    for b in backups
                ],
            },
        )
        return 0
    if not backups:
        printer.info(f"no backups in {folder}")
    for b in backups:
        printer.info(f"{b.path.name}  {b.kind:6}  {size(b.size):>9}  {age(b.age_seconds(now)):>4} old")
    if marker is not None:
        from engine.backup import describe_import

        # Printed even with -q: a cache half-filled by a killed import serves a partial answer set.
        print(f"semcache-tui: {describe_import(marker)}", file=sys.stderr)
    return 0


async def _import_marker(service: CacheService) -> dict[str, Any] | None:
    """The marker of an import running or killed half-way in the configured store; ``None`` when there is
    none, or when the store cannot be read (listing backup files does not need it)."""
    from engine.cache import SemanticCache
    from engine.errors import SemcacheError
    from engine.stores.base import IMPORT_NOTE

    if not isinstance(service, SemanticCache):
        return None
    try:
        if not await service.vector_store.exists():  # opening would create it: listing must not
            return None
        await service.open_store()
        return (await service.vector_store.notes()).get(IMPORT_NOTE)
    except SemcacheError:
        return None


async def _prune(
    service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    from engine.backup import prune_backups

    _refuse_if_read_only(args, "prune")
    deleted = prune_backups(_backup_dir(args, settings), args.keep_days)
    for b in deleted:
        _say(printer, args, f"deleted {b.path.name}")
    _say(printer, args, f"deleted {len(deleted)} backups older than {args.keep_days} days")
    printer.emit({"deleted": [str(b.path) for b in deleted]})
    return 0


async def _export(
    service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    from engine.backup import export_entries
    from engine.errors import InvalidInputError

    _refuse_if_read_only(args, "export")
    path = Path(args.file).expanduser()
    if path.exists() and not args.force:
        raise InvalidInputError(f"{path} exists", "pass --force to overwrite it, or choose another name")
    summary = await export_entries(
        _cache(service),
        path,
        include_vectors=args.vectors,
        progress=_progress(printer, args, "exported"),
        source=_redis_source(settings),
    )
    _say(printer, args, f"wrote {summary.path} ({summary.count} entries, {size(summary.bytes)})")
    if summary.note:
        _say(printer, args, f"note: {summary.note}")
    printer.emit(_export_dict(summary))
    return 0


async def _import_file(
    service: CacheService, args: argparse.Namespace, printer: Printer, path: Path, *, replace: bool = False
) -> int:
    from engine.backup import import_entries

    summary = await import_entries(
        _cache(service), path, progress=_progress(printer, args, "imported"), replace=replace
    )
    how = "reusing its vectors" if summary.reused_vectors else f"embedding {summary.embedded} prompts"
    _say(
        printer,
        args,
        f"imported {summary.written} of {summary.total} entries from {path} ({how}); "
        f"{summary.expired} expired entries skipped",
    )
    printer.emit(_import_dict(summary))
    return 0


async def _import(
    service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    _refuse_if_read_only(args, "import")
    return await _import_file(service, args, printer, Path(args.file).expanduser())


async def _restore(
    service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    from engine.backup import read_header, resolve_backup
    from engine.errors import InvalidInputError

    _refuse_if_read_only(args, "restore")
    if args.rdb:
        if args.name:
            raise InvalidInputError("give a backup name or --rdb FILE, not both")
        return await _restore_rdb(args, printer, settings)
    if not args.name:
        raise InvalidInputError(
            "nothing to restore", "name a backup (see `semcache-tui backup list`), 'latest', or --rdb FILE"
        )
    path = resolve_backup(_backup_dir(args, settings), args.name)
    header = read_header(path)  # a bad file is refused before anyone is asked anything
    what = "replace every entry of" if args.replace else "merge into"
    question = (
        f"Restore {path.name} ({header['count']} entries from {header['created_at']}) and {what} "
        f"index {settings.index_name}?"
    )
    if not _confirm(args, question):
        printer.info("not restored")
        return 1
    return await _import_file(service, args, printer, path, replace=args.replace)


async def _restore_rdb(args: argparse.Namespace, printer: Printer, settings: Settings) -> int:
    from engine.backup import plan_rdb_restore, redis_answers, replace_rdb
    from engine.errors import InvalidInputError

    target = Path(args.target).expanduser() if args.target else None
    redis_url = _redis_url(settings)
    plan = await plan_rdb_restore(
        Path(args.rdb).expanduser(),
        redis_url,
        password=settings.redis_password,
        target=target,
        sentinel_password=settings.redis_sentinel_password,
    )
    steps = [f"{n}. {step}" for n, step in enumerate(plan.steps, start=1)]
    if printer.json_mode:
        printer.emit({"target": str(plan.target), "local": plan.local, "steps": plan.steps})
    else:
        # The steps are the point of this command: printed even with -q.
        print(f"Restoring {plan.rdb_file} into Redis ({plan.target}):")
        for line in steps:
            print(f"  {line}")
    if not plan.local:
        print(
            f"semcache-tui: {plan.target} is not on this machine; follow the steps on the Redis host",
            file=sys.stderr,
        )
        return 3
    if not _confirm(args, f"Replace {plan.target} with {plan.rdb_file}?"):
        printer.info("not restored")
        return 1
    while redis_url and await redis_answers(
        redis_url, password=settings.redis_password, sentinel_password=settings.redis_sentinel_password
    ):
        if args.yes or not sys.stdin.isatty():
            raise InvalidInputError(
                "Redis is still running, so its dump file was left alone",
                "stop it without saving (step 1), then run this again",
            )
        input("Redis still answers. Stop it without saving (step 1), then press Enter: ")
    kept = replace_rdb(plan)
    if kept is not None:
        printer.info(f"kept the previous dump as {kept}")
    printer.info(f"replaced {plan.target}; now start Redis (step 3 onwards)")
    return 0


ACTIONS: dict[str, Handler] = {
    "create": _create,
    "list": _list,
    "prune": _prune,
    "export": _export,
    "import": _import,
    "restore": _restore,
}


async def handle(
    service: CacheService, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    return await ACTIONS[args.backup_command](service, args, printer, settings)
