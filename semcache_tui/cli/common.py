"""What the subcommands share: a handler's signature, the read-only refusal, confirmation at a terminal,
and the guard of the commands that work on the store itself (backups, migrations)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

from semcache_tui.cli.output import Printer

if TYPE_CHECKING:
    from engine.cache import SemanticCache
    from engine.config import Settings
    from engine.service import CacheService

#: A subcommand: the cache (opened here, or a client of ``--server``), the parsed arguments, where to print
#: and the settings; returns the exit status.
Handler = Callable[["CacheService", argparse.Namespace, Printer, "Settings"], Awaitable[int]]
#: The subparsers of the ``semcache-tui`` parser, to which each group of subcommands adds its own.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

CHANGE_HINT = "run without --read-only to change the cache"


def refuse_if_read_only(args: argparse.Namespace, action: str, hint: str = CHANGE_HINT) -> None:
    """Every action that changes the cache or its backups starts with this."""
    if args.read_only:
        from engine.errors import ReadOnlyError

        raise ReadOnlyError(f"{action} refused: --read-only is set", hint)


def confirm(
    args: argparse.Namespace, question: str, word: str, *, subject: str = "this", verb: str = "confirm"
) -> bool:
    """Yes with ``--yes``; else whether the operator typed ``word`` at the terminal. Without a terminal
    (cron, scripts) nobody can answer: an error that says to pass ``--yes``."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        from engine.errors import InvalidInputError

        raise InvalidInputError(f"{subject} needs confirmation", f"pass --yes to {verb} without a terminal")
    return input(f"{question} Type '{word}' to confirm: ").strip() == word


def local_cache(service: CacheService, work: str, hint: str) -> SemanticCache:
    """The cache opened in this process: ``work`` (backups, migrations) is refused through ``--server``."""
    from engine.cache import SemanticCache
    from engine.errors import InvalidInputError

    if not isinstance(service, SemanticCache):
        raise InvalidInputError(f"{work} work on the store itself, not through --server", hint)
    return service
