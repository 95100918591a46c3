"""TLS for the HTTP server: the files are checked before uvicorn starts, so a wrong one is one line.

``SEMCACHE_SSL_CERTFILE`` and ``SEMCACHE_SSL_KEYFILE`` turn HTTPS on; ``SEMCACHE_SSL_CA_CERTS`` adds
mutual TLS (every client must present a certificate that CA signed). uvicorn would find the same faults,
but as a traceback from deep inside ``ssl`` after the app was built.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from engine.config import ALLOWED, Settings
from engine.errors import ConfigError


def _readable(variable: str, path: Path) -> None:
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(variable, path, f"cannot be read ({reason}); {ALLOWED[variable]}") from None


def server_ssl_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options for ``settings`` (empty for plain HTTP); raises ``ConfigError`` on a bad file."""
    cert, key, ca = settings.ssl_certfile, settings.ssl_keyfile, settings.ssl_ca_certs
    if cert is None and key is None:
        if ca is not None:
            raise ConfigError(
                "SEMCACHE_SSL_CA_CERTS",
                ca,
                "needs SEMCACHE_SSL_CERTFILE and SEMCACHE_SSL_KEYFILE (HTTPS) too",
            )
        return {}
    if cert is None or key is None:
        missing = "SEMCACHE_SSL_CERTFILE" if cert is None else "SEMCACHE_SSL_KEYFILE"
        raise ConfigError(missing, "(unset)", ALLOWED[missing] + "; HTTPS needs both files")
    _readable("SEMCACHE_SSL_CERTFILE", cert)
    _readable("SEMCACHE_SSL_KEYFILE", key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ConfigError(
                "SEMCACHE_SSL_KEYFILE", key, f"is not the private key of the certificate in {cert}"
            ) from None
        raise ConfigError(
            "SEMCACHE_SSL_CERTFILE",
            cert,
            f"cannot be loaded with {key} ({reason}); {ALLOWED['SEMCACHE_SSL_CERTFILE']}",
        ) from None
    options: dict[str, Any] = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    if ca is not None:
        _readable("SEMCACHE_SSL_CA_CERTS", ca)
        try:
            context.load_verify_locations(cafile=str(ca))
        except ssl.SSLError as exc:
            raise ConfigError(
                "SEMCACHE_SSL_CA_CERTS", ca, f"holds no usable certificate ({exc.reason or exc})"
            ) from None
        options.update(ssl_ca_certs=str(ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options
