"""``serve``: run the app under uvicorn, one process or several workers.

uvicorn answers SIGTERM and SIGINT gracefully: it stops accepting connections, lets in-flight requests
finish (up to ``SEMCACHE_SHUTDOWN_GRACE`` seconds; a request still running then gets a JSON 503
``shutting_down``, see ``shutdown.py``), then runs the app's shutdown (background tasks stop, the cache
closes). With ``workers > 1`` each worker builds its own app through ``app_from_env``; the settings,
command-line flags included, travel to them in one environment variable.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import uvicorn

from engine.config import Settings
from engine.server.app import SETTINGS_ENV, create_app
from engine.server.logs import log_config
from engine.server.metrics import MULTIPROCESS_ENV
from engine.server.tls import server_ssl_options

log = logging.getLogger("semcache.server")


def serve(
    settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, json_logs: bool = False
) -> None:
    """Serve until SIGTERM or SIGINT. Blocks. A TLS file that cannot be used raises ``ConfigError`` first."""
    ssl_options = server_ssl_options(settings)
    logging_config = log_config(json_logs)
    logging.config.dictConfig(logging_config)
    scheme = "https" if ssl_options else "http"
    log.info(
        "semcache server on %s://%s:%d%s: %s store%s, %s:%s, %d worker(s), API key %s",
        scheme,
        host,
        port,
        " (client certificates required)" if "ssl_ca_certs" in ssl_options else "",
        settings.store_kind,
        f" at {settings.safe_redis_url}"
        if settings.store_kind == "redis"
        else f" in {settings.resolved_data_dir}",
        settings.embedding_provider,
        settings.model_name,
        workers,
        "required" if settings.api_key else "not required",
    )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": logging_config,
        "access_log": False,  # our RequestLog writes one line per request instead
        "timeout_graceful_shutdown": settings.shutdown_grace,
        "server_header": False,
        **ssl_options,
    }
    if workers > 1:
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        with _shared_metrics_dir():
            uvicorn.run("engine.server.app:app_from_env", factory=True, workers=workers, **options)
        return
    config = uvicorn.Config(create_app(settings), **options)
    uvicorn.Server(config).run()


@contextlib.contextmanager
def _shared_metrics_dir() -> Iterator[None]:
    """A folder where the workers' metrics meet (see metrics.py), empty at start so no old run is counted.

    An operator's own PROMETHEUS_MULTIPROC_DIR is used (its old files removed, as prometheus_client asks);
    otherwise a temporary folder is made and removed at exit.
    """
    configured = os.environ.get(MULTIPROCESS_ENV)
    folder = configured or tempfile.mkdtemp(prefix="semcache-metrics-")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
    os.environ[MULTIPROCESS_ENV] = folder
    try:
        yield
    finally:
        if not configured:
            shutil.rmtree(folder, ignore_errors=True)
            os.environ.pop(MULTIPROCESS_ENV, None)
