"""The server's options (:class:`ServeOptions`), checked once when the app is built."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .._errors import ArgumentTypeError, InvalidArgumentError
from ..scoring._settings import SelectionSettings, check_positive_int
from ._rewrite import UPSTREAM_FORMATS

__all__ = ["UPSTREAM_KEY_ENV", "ServeOptions", "upstream_base"]

#: The environment variable whose value the proxy sends to the upstream as ``Authorization: Bearer ...``.
UPSTREAM_KEY_ENV = "TSPO_UPSTREAM_API_KEY"


def upstream_base(url: object) -> str:
    """The upstream's OpenAI base URL (``http://host:8000/v1``); a URL with no path gets ``/v1``."""
    if not isinstance(url, str):
        raise ArgumentTypeError(f"upstream must be a URL string, got {type(url).__name__}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"upstream must be an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}")
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path or '/v1'}"


def _positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ServeOptions:
    """How ``tspo serve`` (and :func:`~tspo_sampler.serving.create_app`) runs.

    Attributes:
        upstream: the OpenAI-compatible server's base URL (``http://127.0.0.1:8000/v1``).
        selection: the default selection settings; a request's ``tspo`` field overrides ``k``, ``method`` and
            ``search``.
        upstream_format: ``images`` (timed JPEG image parts, any VLM server) or ``vllm`` (one ``video_url``
            of frames plus ``media_io_kwargs``).
        allow_local: directories whose files a request may name by path; none by default.
        allow_private_urls: fetch http(s) URLs on loopback, private and link-local addresses too.
        max_concurrency: selections running at once.
        max_queue: selections waiting for a slot before the server answers 429.
        max_video_mb: largest video accepted, in MiB.
        api_key: the key clients must send (``Authorization: Bearer ...``); ``None``: no key needed.
        upstream_api_key: the key sent to the upstream; ``None``: the client's own header when the proxy
            needs no key, else nothing.
        upstream_timeout: seconds the upstream may take to answer (between chunks when streaming).
        fetch_timeout: seconds an http(s) video may take to download.
        jpeg_quality: quality of the forwarded JPEG frames (1-100).
        log_content: log the questions too (the request log has no content by default).
    """

    upstream: str
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    upstream_format: str = "images"
    allow_local: tuple[str, ...] = ()
    allow_private_urls: bool = False
    max_concurrency: int = 4
    max_queue: int = 16
    max_video_mb: float = 2048.0
    api_key: str | None = None
    upstream_api_key: str | None = None
    upstream_timeout: float = 600.0
    fetch_timeout: float = 60.0
    jpeg_quality: int = 90
    log_content: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "upstream", upstream_base(self.upstream))
        if not isinstance(self.selection, SelectionSettings):
            raise ArgumentTypeError(f"selection must be a SelectionSettings, got {type(self.selection).__name__}")
        if self.upstream_format not in UPSTREAM_FORMATS:
            raise InvalidArgumentError(
                f"upstream_format must be one of {', '.join(UPSTREAM_FORMATS)}, got {self.upstream_format!r}")
        if isinstance(self.allow_local, (str, os.PathLike)):
            raise ArgumentTypeError("allow_local must be a list of directories, not one string")
        set_(self, "allow_local", tuple(os.fspath(p) for p in self.allow_local))
        set_(self, "max_concurrency", check_positive_int(self.max_concurrency, "max_concurrency"))
        queue = self.max_queue
        if isinstance(queue, bool) or not isinstance(queue, int) or queue < 0:
            raise InvalidArgumentError(f"max_queue must be an integer >= 0, got {queue!r}")
        for name in ("max_video_mb", "upstream_timeout", "fetch_timeout"):
            set_(self, name, _positive(getattr(self, name), name))
        quality = self.jpeg_quality
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise InvalidArgumentError(f"jpeg_quality must be an integer in 1..100, got {quality!r}")
        for name in ("api_key", "upstream_api_key"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidArgumentError(f"{name} must be a non-empty string or None")

    def __repr__(self) -> str:  # never print the keys
        hidden = {"api_key", "upstream_api_key"}
        shown = ", ".join(f"{k}={'***' if k in hidden and v else v!r}" for k, v in self.__dict__.items())
        return f"ServeOptions({shown})"
