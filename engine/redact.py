"""Keep secrets out of anything a person or a log can read."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_URL_IN_TEXT = re.compile(r"\b([a-z][a-z0-9+.-]*://)([^/\s:@]*)(:[^@\s/]*)?@")


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (the user name is kept: it helps debugging)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    credentials = f"{user}:***@" if parts.password is not None else f"{user}@"
    return urlunsplit((parts.scheme, credentials + host, parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """Redact every ``scheme://user:password@`` found inside free text (error messages from libraries)."""
    return _URL_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}{':***' if m.group(3) else ''}@", text)


def redact_secret(text: str, *secrets: str | None) -> str:
    """Remove the literal values of known secrets (a password, an API key) from ``text``."""
    out = redact_text(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return out
