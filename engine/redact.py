"""Keep secrets out of anything a person or a log can read."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

_URL_IN_TEXT = re.compile(r"\b([a-z][a-z0-9+.-]*://)([^/\s:@]*)(:[^@\s/]*)?@")
#: Schemes whose URLs carry credentials and never an '@' after the host, so the last '@' ends them.
_CREDENTIAL_SCHEMES = ("redis://", "rediss://", "redis+sentinel://", "rediss+sentinel://")
_CREDENTIALS = re.compile(r"^([a-z][a-z0-9+.-]*://)(.*)@([^@]*)$", re.DOTALL)


def encode_credentials(url: str) -> str:
    """``url`` with its user name and password percent-encoded, for a Redis URL typed by hand.

    A password holding '/', '#', '?' or '@' unencoded ends the URL's host part early in every URL parser
    (redis-py's included: the rest of the password became a host or a port, quoted in a traceback). The
    credentials of a Redis URL run to its last '@', so they can be read whole and encoded; text already
    encoded stays as it is.
    """
    found = _CREDENTIALS.match(url) if url.startswith(_CREDENTIAL_SCHEMES) else None
    if found is None:
        return url
    scheme, credentials, rest = found.groups()
    user, colon, password = credentials.partition(":")
    safe = "!$&'()*+,;=-._~"  # RFC 3986 sub-delims and unreserved characters
    encoded = quote(unquote(user), safe=safe)
    if colon:
        encoded += ":" + quote(unquote(password), safe=safe)
    return f"{scheme}{encoded}@{rest}"


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (the user name is kept: it helps debugging)."""
    url = encode_credentials(url)
    if url.startswith(("redis+sentinel://", "rediss+sentinel://")):
        # Several host:port pairs in one netloc: urlsplit cannot read its port, so the credentials
        # (which run to the last '@') are replaced as text.
        found = _CREDENTIALS.match(url)
        if found is None:
            return url
        scheme, credentials, rest = found.groups()
        user, colon, _ = credentials.partition(":")
        return f"{scheme}{user}{':***' if colon else ''}@{rest}"
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
