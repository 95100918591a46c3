"""``python -m engine.server``: the headless server without the control panel's command line."""

from __future__ import annotations

import argparse
import sys

from engine.config import Settings
from engine.errors import SemcacheError
from engine.server.runner import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.server", description="semcache HTTP server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json-logs", action="store_true")
    parser.add_argument(
        "--upstream", metavar="URL", help="OpenAI-compatible base URL (SEMCACHE_UPSTREAM_URL)"
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.load(upstream_url=args.upstream)
        serve(settings, host=args.host, port=args.port, workers=args.workers, json_logs=args.json_logs)
    except SemcacheError as exc:
        print(f"semcache: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
