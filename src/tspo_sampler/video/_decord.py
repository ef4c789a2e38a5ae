"""decord backend: random access with ``get_batch`` at full size (resized by the function every backend shares).

decord 0.6 is old: it hangs on some files and misreads some containers, so every call runs under the
watchdog, its frame count must match the stream index, and its orientation is checked against PyAV's
upright frame 0 before it is trusted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from .._errors import VideoReadError
from ._optional import import_optional, unavailable
from ._types import Decoded, StreamIndex, resize_frames, upright
from ._watchdog import guarded

_CHUNK = 16  # full-size frames per decord call

__all__ = ["DecordReader", "import_decord", "match_orientation"]

# Projects that use decord raise this to survive spurious EOF errors on long files; it must be set
# before decord is imported, and a caller's own setting wins.
os.environ.setdefault("DECORD_EOF_RETRY_MAX", "20480")

_T = TypeVar("_T")
_silenced = False


def import_decord() -> Any | None:
    """decord is optional (no ARM wheels): import it lazily; ``None`` when it cannot be (see :mod:`._optional`:
    a broken install is logged once with its cause, and ``backend="decord"`` raises with it).

    decord loads its bundled FFmpeg 4 / libvpx with ``RTLD_GLOBAL``; importing PyAV first keeps
    PyAV's own libraries bound to PyAV (otherwise e.g. its libvpx-vp9 encoder fails to open).

    decord's FFmpeg prints straight to stderr (hundreds of ``Invalid NAL unit size`` lines on a damaged
    file): it is silenced once, at first import; its failures still raise, and the decoder reports damage
    as one warning.  Call ``decord.logging.set_level`` afterwards to see its messages again.
    """
    try:
        import av  # noqa: F401, PLC0415
    except Exception:
        pass
    global _silenced
    decord = import_optional("decord")
    if decord is None:
        return None
    if not _silenced:
        _silenced = True
        try:
            decord.logging.set_level(decord.logging.QUIET)
        except Exception:
            pass
    return decord


def match_orientation(candidate: np.ndarray, reference: np.ndarray) -> int | None:
    """Clockwise turn (0/90/180/270) that makes ``candidate`` match upright ``reference``; None if unclear.

    Symmetric content (a black first frame) cannot tell the turns apart: then decord is not used.
    """
    ref = reference.astype(np.float32)
    errs: list[tuple[float, int]] = []
    for turn in (0, 90, 180, 270):
        img = upright(candidate, turn)
        if img.shape == reference.shape:
            errs.append((float(np.abs(img.astype(np.float32) - ref).mean()), turn))
    if not errs:
        return None
    errs.sort()
    if errs[0][0] > 8.0 or (len(errs) > 1 and errs[1][0] - errs[0][0] < 8.0):
        return None
    return errs[0][1]


def batch(reader: Any, indices: list[int]) -> np.ndarray:
    """``reader.get_batch(indices)`` as an array, then ``seek(0)``.

    After a ``get_batch`` decord's reader goes on decoding the frames that follow in a background thread,
    without bound, while the caller does anything else (dmlc/decord issues 157, 197, 208): at 720p that is a
    core and about 0.7 GB per second until the end of the video, what took a coarse-to-fine search with a
    ViT-L/14 encoder to 9 GB. Seeking back to the first frame parks it (about 15 ms).
    """
    try:
        return reader.get_batch(indices).asnumpy()
    finally:
        reader.seek(0)


class DecordReader:
    """A full-size decord reader of one file; opening validates decord against the index."""

    def __init__(self, index: StreamIndex, *, num_threads: int = 0, timeout: float | None = 60.0) -> None:
        self._index = index
        self._num_threads = int(num_threads)
        self._timeout = timeout
        self._readers: dict[tuple[int, int], Any] = {}
        self.fix = 0  # extra clockwise turn needed on decord's output
        decord = import_decord()
        if decord is None:
            raise unavailable("decord", index.label)
        why = index.pyav_only("decord")
        if why:
            raise VideoReadError(index.label, why)
        self._decord = decord
        vr = self._make(-1, -1)
        n = self._call(lambda: len(vr), "reading the frame count")
        if n != index.num_frames:
            raise VideoReadError(index.label, f"decord sees {n} frames, the container index {index.num_frames}"
                                  "; use decoder='pyav' or 'auto'")
        # decord 0.6 applies the rotation only when its bundled FFmpeg exposes it (MP4 yes, MKV
        # no): find out what it did by matching its first frame against PyAV's upright one.
        if index.rotation:
            first = self._call(lambda: batch(vr, [0])[0], "decoding frame 0")
            fix = match_orientation(first, index.first_frame)
            if fix is None:
                raise VideoReadError(index.label, "cannot tell how decord oriented the rotated frames")
            self.fix = fix
        self._readers[index.upright_size] = vr

    def _call(self, fn: Callable[[], _T], what: str) -> _T:
        return guarded(fn, label=self._index.label, timeout=self._timeout, what=what, failure="decord failed")

    def _make(self, width: int, height: int) -> Any:
        decord, path, threads = self._decord, self._index.path, self._num_threads

        def make() -> Any:
            return decord.VideoReader(path, ctx=decord.cpu(0), width=width, height=height, num_threads=threads)

        return self._call(make, "opening with decord")

    def decode(self, indices: np.ndarray, size: tuple[int, int]) -> Decoded:
        """Frames at sorted unique ``indices``: full size from decord (a few at a time, to bound memory), upright,
        then resized to ``size`` by :func:`resize_frames`, as every backend's frames are."""
        vr = self._readers[self._index.upright_size]
        full_w, full_h = self._index.upright_size
        w, h = size
        out = np.empty((len(indices), h, w, 3), dtype=np.uint8)
        for start in range(0, len(indices), _CHUNK):
            chunk = indices[start : start + _CHUNK]
            data = upright(batch(vr, chunk.tolist()), self.fix)  # under the decoder's watchdog
            if data.shape[1:3] != (full_h, full_w):
                raise VideoReadError(self._index.label, f"decord returned frames of shape {data.shape[1:3]}")
            out[start : start + len(chunk)] = resize_frames(data, size)
        return Decoded.complete(out, indices)

    def close(self) -> None:
        self._readers.clear()
