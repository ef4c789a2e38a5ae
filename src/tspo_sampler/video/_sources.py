"""Video sources (paths, bytes, binary file objects): the checks and messages shared by the decoder and the sampler.

A path must name a non-empty regular file; bytes must be non-empty; a file object must be opened in binary
mode.  In-memory input is spooled to a private temporary file so every backend can reopen and seek it.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .._errors import VideoReadError

__all__ = [
    "BYTES_LABEL",
    "Spooled",
    "check_bytes",
    "check_path",
    "file_object_label",
    "is_file_source",
    "read_file_object",
    "remove_spool",
    "resolve_video",
    "spool",
    "sweep_spools",
]

BYTES_LABEL = "<bytes>"
_CHUNK = 1 << 20
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_BINARY_MODE = "video file object must be opened in binary mode"


def is_file_source(video: object) -> bool:
    """A path, bytes-like data or a readable object (as opposed to in-memory frames)."""
    return isinstance(video, (str, os.PathLike, bytes, bytearray, memoryview)) or (
        hasattr(video, "read") and callable(video.read)
    )


def check_path(path: str | os.PathLike[str]) -> str:
    """The path as ``str`` when it names a non-empty regular file, else a ``VideoReadError`` saying why."""
    p = os.fspath(path)
    if isinstance(p, str) and _URL.match(p) and not os.path.exists(p):
        raise VideoReadError(p, "URLs are not supported; download the video and pass the local file")
    if not os.path.exists(p):
        raise VideoReadError(p, "file does not exist")
    if os.path.isdir(p):
        raise VideoReadError(p, "is a directory, not a video file")
    if not os.path.isfile(p):  # a FIFO, socket or device: never opened (a FIFO would block)
        raise VideoReadError(p, "not a regular file")
    if os.path.getsize(p) == 0:
        raise VideoReadError(p, "file is empty (0 bytes)")
    return p


def file_object_label(obj: object) -> str:
    """``<file object NAME>`` (or ``<file object>``): how errors name a stream."""
    name = getattr(obj, "name", None)
    return f"<file object {name}>" if isinstance(name, str) and name else "<file object>"


def _chunks(obj: Any, label: str) -> Any:
    """Read a binary stream chunk by chunk; text streams raise the ``TypeError`` they deserve."""
    if isinstance(obj, io.TextIOBase):
        raise TypeError(_BINARY_MODE)
    while True:
        try:
            chunk = obj.read(_CHUNK)
        except UnicodeDecodeError:
            raise TypeError(_BINARY_MODE) from None
        except Exception as exc:
            raise VideoReadError(label, f"cannot read the file object: {exc}") from exc
        if not chunk:
            return
        if isinstance(chunk, str):
            raise TypeError(_BINARY_MODE)
        yield chunk


def read_file_object(obj: Any) -> bytes:
    """All bytes of a binary file object (non-empty)."""
    label = file_object_label(obj)
    data = b"".join(bytes(c) for c in _chunks(obj, label))
    if not data:
        raise VideoReadError(label, "empty input (0 bytes)")
    return data


def check_bytes(data: bytes | bytearray | memoryview) -> bytes:
    out = bytes(data)
    if not out:
        raise VideoReadError(BYTES_LABEL, "empty input (0 bytes)")
    return out


@dataclass(frozen=True)
class Spooled:
    """A source ready for the backends: ``path`` to open, ``label`` for messages, ``tmpdir`` to remove."""

    label: str
    path: str
    tmpdir: str | None = None


SPOOL_PREFIX = "tspo-video-"
_SPOOL_NAME = re.compile(re.escape(SPOOL_PREFIX) + r"(\d+)-")
_swept = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or a number no process can have: leave the directory alone)
    return True


def sweep_spools(root: str | None = None) -> list[str]:
    """Remove spool directories (``tspo-video-<pid>-*``) whose owner process is gone (killed before it could
    clean up); returns the removed paths.  Runs once per process, before its first spool."""
    root = root or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        m = _SPOOL_NAME.match(name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            path = os.path.join(root, name)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _spool_to_file(write: Callable[[BinaryIO], Any]) -> tuple[str, str]:
    global _swept
    if not _swept:
        _swept = True
        sweep_spools()
    # the owner's pid in the name lets a later process remove the spool if this one is killed
    tmpdir = tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-")
    path = os.path.join(tmpdir, "input")
    try:
        with open(path, "wb") as f:
            write(f)
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return tmpdir, path


def spool(source: object) -> Spooled:
    """Check ``source`` and give it a path: files as they are, bytes and streams copied to a temporary file."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = check_bytes(source)
        tmpdir, path = _spool_to_file(lambda f: f.write(data))
        return Spooled(BYTES_LABEL, path, tmpdir)
    if hasattr(source, "read"):
        label = file_object_label(source)

        def copy(f: BinaryIO) -> None:
            for chunk in _chunks(source, label):
                f.write(chunk)

        tmpdir, path = _spool_to_file(copy)
        if os.path.getsize(path) == 0:
            remove_spool(tmpdir)
            raise VideoReadError(label, "empty input (0 bytes)")
        return Spooled(label, path, tmpdir)
    if isinstance(source, (str, os.PathLike)):
        path = check_path(source)
        return Spooled(path, path)
    raise TypeError(f"unsupported video source type {type(source).__name__}")


def remove_spool(tmpdir: str | None) -> None:
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)


def resolve_video(video: str, roots: Sequence[str | os.PathLike[str]]) -> str:
    """The path to open for ``video``: absolute paths as they are; relative ones under the first root that
    holds them (the first root when none does, so the error names a sensible path)."""
    p = Path(video).expanduser()
    if p.is_absolute() or not roots:
        return str(p)
    for root in roots:
        candidate = Path(root) / p
        if candidate.exists():
            return str(candidate)
    return str(Path(roots[0]) / p)
