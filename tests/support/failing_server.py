"""``python -m tests.support.failing_server``: the real server with one extra route, ``GET /fail``, that
raises an error nobody named, so a test can see how an unexpected 500 leaves the connection. Takes the
same ``--port`` and ``--workers`` flags as ``python -m engine.server`` (``--workers`` is ignored)."""

from __future__ import annotations

import argparse
import logging.config

import uvicorn

from engine.config import Settings
from engine.server import create_app
from engine.server.logs import log_config


class Unexpected(RuntimeError):
    pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    logging_config = log_config(json_logs=False)
    logging.config.dictConfig(logging_config)
    app = create_app(Settings.load())

    async def fail() -> None:
        raise Unexpected("a failure no one named\nwith a second line")

    app.add_api_route("/fail", fail, methods=["GET"])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=logging_config, access_log=False)


if __name__ == "__main__":
    main()
