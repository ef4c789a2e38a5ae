"""Where a requested video may come from, and the limits on each source.

* ``data:`` URLs (base64): decoded in memory, at most ``max_bytes``.
* ``http(s)`` URLs: fetched in memory with a size and a time limit. Redirects are refused (the client sends the
  final URL). The host is resolved first and loopback, private, link-local, multicast and reserved addresses
  are refused unless private URLs are allowed; the connection then goes to the address that was checked
  (no second lookup that a rebinding DNS server could answer differently).
* local paths and ``file://`` URLs: absolute, and after resolving ``..`` and symlinks, inside one of the
  allowed directories. With none allowed, every local path is refused.

Downloaded and uploaded videos stay in memory and reach the sampler as bytes: the feature cache knows bytes by
their content, so a second request with the same video (even a fresh upload) is a cache hit, and the
sampler's own temporary copy is deleted when decoding ends. Nothing is written that outlives the request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ._errors import BadRequestError

__all__ = ["MediaRules", "VideoSource", "load_video"]

_MiB = 1 << 20


@dataclass(frozen=True)
class MediaRules:
    """The limits every video source is checked against (built from the server's options)."""

    allow_local: tuple[Path, ...] = ()
    allow_private_urls: bool = False
    max_bytes: int = 2048 * _MiB
    fetch_timeout: float = 60.0

    @classmethod
    def build(cls, allow_local: Sequence[str | os.PathLike[str]], **kwargs: Any) -> MediaRules:
        """The rules with every allowed directory checked and resolved (symlinks followed) once, at start."""
        roots = []
        for entry in allow_local:
            root = Path(os.path.realpath(os.fspath(entry)))
            if not root.is_dir():
                raise ValueError(f"allow_local: {os.fspath(entry)} is not a directory")
            roots.append(root)
        return cls(allow_local=tuple(roots), **kwargs)


@dataclass(frozen=True)
class VideoSource:
    """A requested video, ready for the sampler.

    Attributes:
        video: what ``select_frames`` gets: ``bytes`` (data and http URLs) or a resolved path.
        key: its identity, for sharing one encoding between concurrent requests.
        label: how messages name it (the client's own words, shortened; never a server path).
        size: its size in bytes.
    """

    video: bytes | str
    key: str
    label: str
    size: int


async def load_video(url: object, rules: MediaRules, *, param: str) -> VideoSource:
    """The video a ``video_url`` names, checked against ``rules``; ``param`` names the field in errors."""
    if not isinstance(url, str) or not url.strip():
        raise BadRequestError("video_url.url must be a non-empty string", param=param)
    scheme = url.split(":", 1)[0].lower() if ":" in url[:12] else ""
    if scheme == "data":
        return await asyncio.to_thread(_from_data_url, url, rules, param)
    if scheme in ("http", "https"):
        return await _fetch(url, rules, param)
    if scheme == "file" or url.startswith("/"):
        return _from_local(url, rules, param)
    shown = f"{scheme}:" if scheme else "a relative path"
    raise BadRequestError(
        f"unsupported video URL ({shown}); use a data: URL, an http(s) URL, or an absolute local path under "
        "an --allow-local directory", param=param)


def _too_big(size: int, rules: MediaRules, param: str) -> BadRequestError:
    return BadRequestError(
        f"the video is {size / _MiB:.1f} MiB, over the limit of {rules.max_bytes / _MiB:.0f} MiB (--max-video-mb)",
        param=param, code="video_too_large")


def _from_bytes(data: bytes, label: str) -> VideoSource:
    return VideoSource(data, "sha256:" + hashlib.sha256(data).hexdigest(), label, len(data))


def _from_data_url(url: str, rules: MediaRules, param: str) -> VideoSource:
    header, sep, payload = url.partition(",")
    if not sep or not header.lower().endswith(";base64"):
        raise BadRequestError("a data: URL video must be base64 (data:video/mp4;base64,...)", param=param)
    if len(payload) * 3 // 4 > rules.max_bytes + 2:
        raise _too_big(len(payload) * 3 // 4, rules, param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError("the data: URL is not valid base64", param=param) from None
    if not data:
        raise BadRequestError("the data: URL holds no data (0 bytes)", param=param)
    if len(data) > rules.max_bytes:
        raise _too_big(len(data), rules, param)
    return _from_bytes(data, f"data: URL ({len(data)} bytes)")


# ----------------------------------------------------------------------------------------------- local files


def _from_local(url: str, rules: MediaRules, param: str) -> VideoSource:
    if url.lower().startswith("file:"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise BadRequestError("file:// URLs must name this machine (file:///path)", param=param)
        text = unquote(parts.path)
    else:
        text = url
    if not rules.allow_local:
        raise BadRequestError("local video paths are refused: the server allows none (tspo serve --allow-local DIR)",
                              param=param, code="path_not_allowed")
    if not os.path.isabs(text) or "\0" in text:
        raise BadRequestError("a local video path must be absolute", param=param)
    real = Path(os.path.realpath(text))
    if not any(real == root or root in real.parents for root in rules.allow_local):
        raise BadRequestError(f"{text} is outside the directories this server allows (--allow-local); symlinks "
                              "and '..' are resolved first", param=param, code="path_not_allowed")
    try:
        st = real.stat()
    except OSError:
        raise BadRequestError(f"cannot read video {text}: file does not exist", param=param) from None
    if not real.is_file():
        raise BadRequestError(f"cannot read video {text}: not a regular file", param=param)
    if st.st_size > rules.max_bytes:
        raise _too_big(st.st_size, rules, param)
    key = f"file:{real}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    return VideoSource(str(real), key, text, st.st_size)


# ----------------------------------------------------------------------------------------------- http(s)


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def _checked_address(host: str, port: int, rules: MediaRules, param: str) -> str:
    """The address to connect to: the host's first address, after every address it has was checked."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise BadRequestError(f"cannot resolve the video URL's host {host!r}", param=param) from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise BadRequestError(f"cannot resolve the video URL's host {host!r}", param=param)
    if not rules.allow_private_urls and any(_refused_address(a) for a in addresses):
        raise BadRequestError(
            f"the video URL's host {host!r} is a loopback, private or link-local address; such URLs are refused "
            "(tspo serve --allow-private-urls allows them)", param=param, code="url_not_allowed")
    return addresses[0]


async def _fetch(url: str, rules: MediaRules, param: str) -> VideoSource:
    import httpx

    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise BadRequestError("the video URL has no host", param=param)
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        raise BadRequestError("the video URL has an invalid port", param=param) from None
    label = url if len(url) <= 200 else url[:197] + "..."
    try:
        return await asyncio.wait_for(_download(httpx, url, host, port, rules, param, label), rules.fetch_timeout)
    except (asyncio.TimeoutError, httpx.TimeoutException):
        raise BadRequestError(f"fetching the video URL took longer than {rules.fetch_timeout:g} s", param=param,
                              code="fetch_timeout") from None
    except httpx.HTTPError as exc:
        raise BadRequestError(f"cannot fetch the video URL ({type(exc).__name__})", param=param) from None


async def _download(httpx: Any, url: str, host: str, port: int, rules: MediaRules, param: str,
                    label: str) -> VideoSource:
    address = await _checked_address(host, port, rules, param)
    target = httpx.URL(url).copy_with(host=address)
    headers = {"Host": host if port in (80, 443) else f"{host}:{port}", "Accept": "*/*"}
    extensions = {"sni_hostname": host} if target.scheme == "https" else {}
    async with httpx.AsyncClient(follow_redirects=False, timeout=rules.fetch_timeout, trust_env=False) as client:
        request = client.build_request("GET", target, headers=headers, extensions=extensions)
        response = await client.send(request, stream=True)
        try:
            if response.is_redirect:
                raise BadRequestError("the video URL redirects; redirects are not followed (send the final URL)",
                                      param=param, code="url_redirect")
            if response.status_code != 200:
                raise BadRequestError(f"fetching the video URL failed: HTTP {response.status_code}", param=param)
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > rules.max_bytes:
                raise _too_big(int(length), rules, param)
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > rules.max_bytes:
                    raise _too_big(size, rules, param)
                chunks.append(chunk)
        finally:
            await response.aclose()
    if not size:
        raise BadRequestError("the video URL returned no data (0 bytes)", param=param)
    return await asyncio.to_thread(_from_bytes, b"".join(chunks), label)
