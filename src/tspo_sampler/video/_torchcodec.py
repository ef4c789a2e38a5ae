"""torchcodec backend (``backend="torchcodec"``, the ``torchcodec`` extra): decodes only the requested frames.

torchcodec seeks to the keyframe before each requested frame and decodes forward to it, releasing the GIL;
on CUDA (``device="cuda"``) it decodes with NVDEC. It is trusted only after checks against the stream
index, like decord: the same frame count, presentation times that match the packet table for every
request, and an orientation matching PyAV's upright frame 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from .._errors import VideoReadError
from ._decord import match_orientation
from ._optional import import_optional, unavailable
from ._types import Decoded, StreamIndex, resize_frames, upright
from ._watchdog import guarded

__all__ = ["TorchcodecReader", "import_torchcodec"]

_T = TypeVar("_T")
PTS_TOLERANCE_S = 1e-3


def import_torchcodec() -> Any | None:
    """torchcodec is optional and needs the system FFmpeg and a matching torch: ``None`` when it cannot be
    imported (see :mod:`._optional`: a broken install is logged once with its cause)."""
    return import_optional("torchcodec.decoders", extra="torchcodec")


class TorchcodecReader:
    """One torchcodec decoder per file; full-size frames are resized by :func:`resize_frames`, as every backend's."""

    def __init__(
        self, index: StreamIndex, *, num_threads: int = 0, timeout: float | None = 60.0, device: str = "cpu"
    ) -> None:
        self._index = index
        self._timeout = timeout
        why = index.pyav_only("torchcodec")
        if why:
            raise VideoReadError(index.label, why)
        decoders = import_torchcodec()
        if decoders is None:
            raise unavailable("torchcodec", index.label, extra="torchcodec")

        def make() -> Any:
            return decoders.VideoDecoder(
                index.path, seek_mode="exact", num_ffmpeg_threads=int(num_threads), device=device
            )

        self._dec = self._call(make, "opening with torchcodec")
        n = self._call(lambda: len(self._dec), "reading the frame count")
        if n != index.num_frames:
            raise VideoReadError(index.label, f"torchcodec sees {n} frames, the container index {index.num_frames}"
                                  "; use decoder='pyav' or 'auto'")
        self.fix = 0  # extra clockwise turn needed on torchcodec's output (0.17 applies the rotation itself)
        if index.rotation:
            first = self._call(lambda: self._frames(np.array([0], dtype=np.int64))[0], "decoding frame 0")
            fix = match_orientation(first, index.first_frame)
            if fix is None:
                raise VideoReadError(index.label, "cannot tell how torchcodec oriented the rotated frames")
            self.fix = fix

    def _call(self, fn: Callable[[], _T], what: str) -> _T:
        return guarded(fn, label=self._index.label, timeout=self._timeout, what=what, failure="torchcodec failed")

    def _frames(self, indices: np.ndarray) -> np.ndarray:
        """``N x H x W x 3`` frames as torchcodec returns them, after checking their presentation times."""
        batch = self._dec.get_frames_at(indices=indices.tolist())
        start = self._index.start * self._index.time_base
        got = batch.pts_seconds.double().cpu().numpy() - start
        if not np.allclose(got, self._index.timestamps[indices], atol=PTS_TOLERANCE_S, rtol=0):
            raise VideoReadError(self._index.label, "torchcodec's frame times disagree with the container index")
        return batch.data.permute(0, 2, 3, 1).cpu().numpy()

    def decode(self, indices: np.ndarray, size: tuple[int, int]) -> Decoded:
        """Frames at sorted unique ``indices``, upright at ``size`` (``(width, height)``)."""
        data = resize_frames(upright(self._frames(indices), self.fix), size)
        return Decoded.complete(np.ascontiguousarray(data), indices)

    def close(self) -> None:
        self._dec = None
