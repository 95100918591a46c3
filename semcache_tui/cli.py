"""The `semcache-tui` command: the control panel, the server, and scriptable subcommands.

    semcache-tui                      open the control panel
    semcache-tui --serve              run the headless HTTP cache server
    semcache-tui check|store|stats|clear|entries|delete|health|index|demo ...

Every subcommand prints one line on error (no traceback), exits non-zero, and takes ``--json``.
Exit codes: 0 success (for ``check``: a hit), 1 a miss for ``check``, 2 bad input or configuration,
3 not found, 4 store unavailable, 5 index mismatch or missing, 6 embedder failure, 7 refused (read-only),
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from semcache_tui import __version__, backup_cli, migrate_cli
from semcache_tui.output import Printer

EXIT_MISS = 1


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options accepted before or after the subcommand (``suppress`` keeps a subparser from resetting them)."""
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("configuration (overrides the environment and .env)")
    group.add_argument("--store", choices=("local", "redis"), default=default, help="SEMCACHE_STORE")
    group.add_argument("--redis-url", default=default, help="REDIS_URL")
    group.add_argument("--data-dir", default=default, help="SEMCACHE_DATA_DIR")
    group.add_argument("--index-name", default=default, help="CACHE_INDEX_NAME")
    group.add_argument("--threshold", type=float, default=default, help="CACHE_DISTANCE_THRESHOLD (0-2)")
    group.add_argument("--ttl", type=int, default=default, help="CACHE_TTL in seconds")
    group.add_argument("--provider", default=default, help="EMBEDDING_PROVIDER")
    group.add_argument("--model", default=default, help="EMBEDDING_MODEL")
    group.add_argument("--dimension", type=int, default=default, help="EMBEDDING_OUTPUT_DIMENSION")
    group.add_argument("--ollama-url", default=default, help="OLLAMA_BASE_URL")
    group.add_argument(
        "--server", default=default, metavar="URL", help="attach to a running --serve instance"
    )
    group.add_argument("--api-key", default=default, help="API key for --server (or SEMCACHE_API_KEY)")
    group.add_argument("--read-only", action="store_true", default=default, help="refuse destructive actions")
    group.add_argument("--json", action="store_true", default=default, help="machine-readable output")
    group.add_argument("-q", "--quiet", action="store_true", default=default, help="print only errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semcache-tui",
        description="semcache: a semantic cache for LLM responses, with a terminal control panel.",
    )
    parser.add_argument("--version", action="version", version=f"semcache-tui {__version__}")
    serve = parser.add_argument_group("server")
    serve.add_argument("--serve", action="store_true", help="run the headless HTTP cache server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    serve.add_argument("--json-logs", action="store_true", help="log one JSON object per line")
    _global_options(parser, suppress=False)

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _global_options(p, suppress=True)
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

    command("health", "store and embedder health; exit 4 when something is down")
    command("index", "the index: documents, dimension, algorithm, recorded embedder")
    command("demo", "store sample answers, look up paraphrases, print what happened")
    backup_cli.register(sub, _global_options)
    migrate_cli.register(sub, _global_options)
    return parser


def settings_from_args(args: argparse.Namespace) -> Any:
    from engine.config import Settings

    return Settings.load(
        store=getattr(args, "store", None),
        redis_url=getattr(args, "redis_url", None),
        data_dir=getattr(args, "data_dir", None),
        index_name=getattr(args, "index_name", None),
        distance_threshold=getattr(args, "threshold", None),
        ttl=getattr(args, "ttl", None),
        embedding_provider=getattr(args, "provider", None),
        embedding_model=getattr(args, "model", None),
        embedding_output_dimension=getattr(args, "dimension", None),
        ollama_base_url=getattr(args, "ollama_url", None),
        api_key=getattr(args, "api_key", None),
    )


def make_service(args: argparse.Namespace, settings: Any) -> Any:
    """A cache opened here, or a client of a running server when ``--server`` is given."""
    server = getattr(args, "server", None)
    if server:
        from engine.client import RemoteCache

        return RemoteCache(server, api_key=getattr(args, "api_key", None) or settings.api_key)
    from engine.assembly import build_cache

    return build_cache(settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    printer = Printer(json_mode=bool(getattr(args, "json", False)), quiet=bool(getattr(args, "quiet", False)))
    from engine.errors import SemcacheError

    try:
        return _dispatch(args, printer)
    except SemcacheError as exc:
        printer.error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, printer: Printer) -> int:
    settings = settings_from_args(args)
    if args.serve:
        from engine.server import serve

        serve(settings, host=args.host, port=args.port, workers=args.workers, json_logs=args.json_logs)
        return 0
    if args.command is None:
        return _run_panel(args, settings)
    handler = COMMANDS[args.command]
    service = make_service(args, settings)
    return asyncio.run(_with_service(service, handler, args, printer, settings))


async def _with_service(
    service: Any,
    handler: Callable[..., Coroutine[Any, Any, int]],
    args: argparse.Namespace,
    printer: Printer,
    settings: Any,
) -> int:
    try:
        return await handler(service, args, printer, settings)
    finally:
        await service.close()


def _run_panel(args: argparse.Namespace, settings: Any) -> int:
    from semcache_tui.app import SemcacheApp

    service = make_service(args, settings)
    app = SemcacheApp(service, settings, read_only=bool(args.read_only))
    app.run()
    return int(app.return_code or 0)


# -- subcommands ---------------------------------------------------------------------------------------


def _refuse_if_read_only(args: argparse.Namespace, action: str) -> None:
    if getattr(args, "read_only", False):
        from engine.errors import ReadOnlyError

        raise ReadOnlyError(
            f"{action} refused: --read-only is set", "run without --read-only to change the cache"
        )


async def cmd_check(service: Any, args: argparse.Namespace, printer: Printer, settings: Any) -> int:
    result = await service.check(
        args.prompt, scope=args.scope, threshold=getattr(args, "threshold", None), k=args.k
    )
    printer.check_result(result)
    return 0 if result.is_hit else EXIT_MISS


async def cmd_store(service: Any, args: argparse.Namespace, printer: Printer, settings: Any) -> int:
    _refuse_if_read_only(args, "store")
    metadata = _parse_metadata(args.metadata)
    entry = await service.store(
        args.prompt, args.response, scope=args.scope, metadata=metadata, ttl=args.entry_ttl
    )
    printer.stored(entry)
    return 0


def _parse_metadata(raw: str | None) -> dict[str, Any] | None:
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


async def cmd_stats(service: Any, args: argparse.Namespace, printer: Printer, settings: Any) -> int:
    printer.stats(await service.stats(), settings)
    return 0


async def cmd_clear(service: Any, args: argparse.Namespace, printer: Printer, settings: Any) -> int:
    _refuse_if_read_only(args, "clear")
    if not args.yes:
        if not sys.stdin.isatty():
            from engine.errors import InvalidInputError

            raise InvalidInputError("clear needs confirmation", "pass --yes to clear without a terminal")
        answer = input(f"Delete every entry of index {settings.index_name}? Type its name to confirm: ")
        if answer.strip() != settings.index_name:
            printer.info("not cleared")
            return 1
    deleted = await service.clear()
    printer.cleared(deleted)
    return 0


async def cmd_entries(service: Any, args: argparse.Namespace, printer: Printer, settings: Any) -> int:
    page = await service.list_entries(
        offset=args.offset, limit=args.limit, scope=args.scope, contains=args.contains
    )
    printer.entries(page)
    return 0


async def cmd_delete(service: Any, args: argparse.Namespace, printer: Printer, settings: Any) -> int:
    _refuse_if_read_only(args, "delete")
    from engine.errors import NotFoundError

    if not await service.delete(args.key):
        raise NotFoundError(f"no entry with key {args.key}", "list keys with `semcache-tui entries`")
    printer.deleted(args.key)
    return 0


async def cmd_health(service: Any, args: argparse.Namespace, printer: Printer, settings: Any) -> int:
    report = await service.health()
    printer.health(report)
    return 0 if report.status != "unhealthy" else 4


async def cmd_index(service: Any, args: argparse.Namespace, printer: Printer, settings: Any) -> int:
    printer.index(await service.index_info())
    return 0


async def cmd_demo(service: Any, args: argparse.Namespace, printer: Printer, settings: Any) -> int:
    """The main job in one command: fill the cache with samples, look up paraphrases, show the numbers."""
    from engine.cache import StoreRequest
    from engine.samples import SAMPLE_PAIRS, SAMPLE_QUERIES

    printer.info(f"semcache {__version__}: store={settings.store_kind} model={settings.model_name}")
    printer.info("loading the embedding model...")
    identity = await service.start()
    printer.info(f"embedder {identity.describe()}")
    if hasattr(service, "store_many"):
        await service.store_many([StoreRequest(p, r) for p, r in SAMPLE_PAIRS])
    else:
        for prompt, response in SAMPLE_PAIRS:
            await service.store(prompt, response)
    printer.info(f"stored {len(SAMPLE_PAIRS)} sample answers")
    results = [await service.check(query) for query in SAMPLE_QUERIES]
    printer.demo(results, await service.stats(), settings)
    return 0


COMMANDS: dict[str, Callable[..., Coroutine[Any, Any, int]]] = {
    "check": cmd_check,
    "store": cmd_store,
    "stats": cmd_stats,
    "clear": cmd_clear,
    "entries": cmd_entries,
    "delete": cmd_delete,
    "health": cmd_health,
    "index": cmd_index,
    "demo": cmd_demo,
    "backup": backup_cli.cmd_backup,
    "migrate": migrate_cli.cmd_migrate,
}


if __name__ == "__main__":
    sys.exit(main())
