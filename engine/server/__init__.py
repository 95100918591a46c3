"""The headless HTTP cache server (``semcache-tui --serve``): a drop-in for the seed service.

    create_app(settings, cache) -> FastAPI     app.py: routes, middleware, background start and purge
    serve(settings, host, port, workers, json_logs)   runner.py: uvicorn, graceful shutdown

Modules: schemas (wire shapes), routes, auth (API key), limits (body size, rate), metrics (Prometheus),
errors (engine errors -> JSON), logs (one line per request), state (what the routes share).
"""

from __future__ import annotations

from engine.server.app import create_app
from engine.server.runner import serve

__all__ = ["create_app", "serve"]
