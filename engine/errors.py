"""The one hierarchy of errors the engine raises.

Every error carries an operator-readable message and, where there is one, a hint that says what to do.
The CLI prints ``str(error)`` on one line, the server maps ``status`` to an HTTP status, and the panel
shows it in place. Nothing here may contain a secret: URLs are redacted before they reach a message.
"""

from __future__ import annotations


class SemcacheError(Exception):
    """Base of every error the engine raises on purpose."""

    #: HTTP status the server answers with; 4xx for the caller's mistake, 503 for a dependency down.
    status: int = 500
    #: A short, stable machine-readable code for JSON errors and exit codes.
    code: str = "error"
    #: Process exit status for the command line.
    exit_code: int = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, str]:
        body = {"error": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body


class ConfigError(SemcacheError):
    """A configuration value is not allowed. Names the variable, the value and what is allowed."""

    status = 500
    code = "config_error"
    exit_code = 2

    def __init__(self, variable: str, value: object, allowed: str) -> None:
        super().__init__(f"{variable}={value!s}: {allowed}")
        self.variable = variable
        self.value = value
        self.allowed = allowed


class InvalidInputError(SemcacheError):
    """The caller sent something we cannot use (an empty prompt, a threshold out of range...)."""

    status = 422
    code = "invalid_input"
    exit_code = 2


class AuthenticationError(SemcacheError):
    """The server wants an API key and the request's is missing or wrong."""

    status = 401
    code = "unauthorized"
    exit_code = 8


class NotFoundError(SemcacheError):
    status = 404
    code = "not_found"
    exit_code = 3


class BackendUnavailableError(SemcacheError):
    """The store (Redis, the data folder) cannot be reached or used right now."""

    status = 503
    code = "backend_unavailable"
    exit_code = 4


class IndexMismatchError(SemcacheError):
    """The index was filled by another embedder (provider, model or dimension) than the configured one."""

    status = 503
    code = "index_mismatch"
    exit_code = 5


class IndexMissingError(SemcacheError):
    status = 503
    code = "index_missing"
    exit_code = 5


class EmbedderError(SemcacheError):
    """The embedder cannot produce vectors (model missing, server down, bad dimension...)."""

    status = 503
    code = "embedder_error"
    exit_code = 6


class ReadOnlyError(SemcacheError):
    status = 403
    code = "read_only"
    exit_code = 7
