"""The ``semcache-tui`` parser, and what runs: the panel, the server, or one subcommand."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from semcache_tui import __version__
from semcache_tui.cli import backup, cache, migrate
from semcache_tui.cli.common import Handler
from semcache_tui.cli.options import add_global_options, settings_from_args
from semcache_tui.cli.output import Printer

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.service import CacheService

COMMANDS: dict[str, Handler] = cache.COMMANDS | {"backup": backup.handle, "migrate": migrate.handle}


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
    serve.add_argument(
        "--upstream",
        metavar="URL",
        help="serve an OpenAI-compatible caching proxy in front of this base URL (SEMCACHE_UPSTREAM_URL)",
    )
    serve.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (SEMCACHE_SSL_CERTFILE)")
    serve.add_argument("--ssl-keyfile", help="the certificate's private key (SEMCACHE_SSL_KEYFILE)")
    serve.add_argument(
        "--ssl-ca-certs", help="require client certificates signed by this CA (SEMCACHE_SSL_CA_CERTS)"
    )
    add_global_options(parser, suppress=False)

    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    cache.register(subparsers)
    backup.register(subparsers)
    migrate.register(subparsers)
    return parser


def make_service(args: argparse.Namespace, settings: Settings) -> CacheService:
    """A cache opened here, or a client of a running server when ``--server`` is given."""
    if args.server:
        from engine.client import RemoteCache

        return RemoteCache(
            args.server,
            api_key=args.api_key or settings.api_key,
            ca_file=settings.ca_file,
            client_cert=(settings.client_cert, settings.client_key or settings.client_cert)
            if settings.client_cert
            else None,
        )
    from engine.assembly import build_cache

    return build_cache(settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    printer = Printer(json_mode=bool(args.json), quiet=bool(args.quiet))
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
    if args.command == "eval":  # no cache: the verifier and the bundled model only
        return asyncio.run(cache.evaluate(args, printer, settings))
    handler = COMMANDS[args.command]
    service = make_service(args, settings)
    return asyncio.run(_with_service(service, handler, args, printer, settings))


async def _with_service(
    service: CacheService, handler: Handler, args: argparse.Namespace, printer: Printer, settings: Settings
) -> int:
    try:
        return await handler(service, args, printer, settings)
    finally:
        await service.close()


def _run_panel(args: argparse.Namespace, settings: Settings) -> int:
    from semcache_tui.app import SemcacheApp

    service = make_service(args, settings)
    app = SemcacheApp(service, settings, read_only=bool(args.read_only))
    app.run()
    return int(app.return_code or 0)
