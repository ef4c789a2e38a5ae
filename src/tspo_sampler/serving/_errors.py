"""The errors ``tspo serve`` answers with, in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Each class carries its HTTP status, so the routes raise and one handler writes the response. Messages are
written for the client: they name the request field at fault, never a server path or a traceback.
"""

from __future__ import annotations

import re
from typing import Any

from .._errors import TSPOError

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ServeError",
    "ServerBusyError",
    "UpstreamTimeoutError",
    "UpstreamUnreachableError",
    "error_body",
    "scrub",
]


class ServeError(TSPOError, RuntimeError):
    """A request the proxy answers with an error; ``status`` and OpenAI's ``type`` say which kind."""

    status = 500
    type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class BadRequestError(ServeError, ValueError):
    """400: no question, a refused or unreadable video, a bad ``tspo`` field, a video over the size limit."""

    status = 400
    type = "invalid_request_error"


class AuthenticationError(ServeError, PermissionError):
    """401: the proxy was started with ``--api-key-env`` and the request has not got that key."""

    status = 401
    type = "authentication_error"


class ServerBusyError(ServeError):
    """429: every selection slot is busy and the waiting queue is full."""

    status = 429
    type = "rate_limit_error"


class UpstreamUnreachableError(ServeError, ConnectionError):
    """502: the upstream server did not answer (connection refused, reset, DNS)."""

    status = 502
    type = "upstream_error"


class UpstreamTimeoutError(ServeError, TimeoutError):
    """504: the upstream server did not answer in time."""

    status = 504
    type = "upstream_timeout"


def error_body(exc: ServeError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}


# an absolute path in a message (after a start, a space, a quote, "(" or "="): the client must not see ours
_PATH = re.compile(r"(?<![\w.~/])/(?:[^\s'\"():,;]+/)*[^\s'\"():,;]*")


def scrub(message: str) -> str:
    """``message`` with absolute file paths replaced by ``<path>`` (a decoder names its temporary files)."""
    return _PATH.sub("<path>", message)
