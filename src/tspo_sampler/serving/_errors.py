"""The errors ``tspo serve`` answers with, in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Each class (defined with every other error in :mod:`tspo_sampler._errors`) carries its HTTP status, so the
routes raise and one handler writes the response. Messages are written for the client: they name the request
field at fault, never a server path or a traceback.
"""

from __future__ import annotations

import re
from typing import Any

from .._errors import (
    AuthenticationError,
    BadRequestError,
    ServeError,
    ServerBusyError,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
)

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


def error_body(exc: ServeError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}


# an absolute path in a message (after a start, a space, a quote, "(" or "="): the client must not see ours
_PATH = re.compile(r"(?<![\w.~/:])/(?:[^\s'\"():,;]+/)*[^\s'\"():,;]*")


def scrub(message: str) -> str:
    """``message`` with absolute file paths replaced by ``<path>`` (a decoder names its temporary files)."""
    return _PATH.sub("<path>", message)
