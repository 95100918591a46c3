"""The `semcache-tui` command: the control panel, the server, and scriptable subcommands.

    semcache-tui                      open the control panel
    semcache-tui --serve              run the headless HTTP cache server
    semcache-tui check|store|stats|clear|entries|delete|health|index|demo ...
    semcache-tui backup ...|migrate ...

Every subcommand prints one line on error (no traceback), exits non-zero, and takes ``--json`` (whose
fields are named as in the HTTP API's answer for the same result).
Exit codes: 0 success (for ``check``: a hit), 1 a miss for ``check``, 2 bad input or configuration,
3 not found, 4 store unavailable, 5 index mismatch or missing, 6 embedder failure, 7 refused (read-only),
130 interrupted.

Modules: main (the parser and what runs), options (the options every subcommand takes, the settings they
make), common (a handler's signature, the read-only refusal, confirmation, the local-store guard), output
(what is printed), cache, backup and migrate (the subcommands).
"""

from __future__ import annotations

from semcache_tui.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
