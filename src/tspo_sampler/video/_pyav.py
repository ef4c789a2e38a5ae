"""PyAV backend: forward decoding with frame threads, seeking over GOPs that hold no requested frame.

Decoded frames are matched to indices through their pts (:meth:`StreamIndex.index_of`), so the index space
is the packet table's even when the decoder drops or merges frames; a requested frame that never comes out
of the decoder is replaced by the nearest decodable one (reported in ``indices``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .._errors import VideoReadError
from ._probe import open_container, video_stream
from ._types import StreamIndex, upright

__all__ = ["PyAVReader"]


class PyAVReader:
    """Forward-only reader over one file, reopened or seeked when a request goes backwards.

    ``threaded=False`` decodes with slice threads only: for keyframe-only requests, where frame threads
    would decode frames past each keyframe too.
    """

    def __init__(self, index: StreamIndex, *, num_threads: int = 0, threaded: bool = True) -> None:
        self._index = index
        self._num_threads = int(num_threads)
        self._threaded = threaded
        self._container: Any = None
        self._stream: Any = None
        self._frames: Iterator[Any] | None = None
        self._pos = -1  # index of the last frame pulled from the decoder
        self._seek_ok = True

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
        self._container = self._stream = self._frames = None
        self._pos = -1

    def _open(self) -> None:
        self.close()
        self._container = open_container(self._index.path)
        self._stream = video_stream(self._container)
        if self._threaded:
            self._stream.thread_type = "AUTO"
            self._stream.codec_context.thread_count = self._num_threads
        else:
            self._stream.thread_type = "SLICE"
        self._frames = self._container.decode(self._stream)
        self._pos = -1

    def _seek_to(self, key: int) -> None:
        """Seek to keyframe ``key``; the demuxer may land on an earlier keyframe (checked later)."""
        self._container.seek(self._index.pts_of(key), stream=self._stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._stream)
        self._pos = key - 1

    def _index_of(self, frame: Any) -> int:
        i = self._index.index_of(frame.pts, frame.time_base)
        return self._pos + 1 if i is None else i

    def _next(self) -> tuple[int, Any] | None:
        import av  # noqa: PLC0415

        assert self._frames is not None
        errors = 0
        while True:
            try:
                frame = next(self._frames)
            except StopIteration:
                return None
            except av.error.EOFError:
                return None
            except av.error.FFmpegError:
                # a damaged packet: skip it, the decoder resynchronises on the next keyframe
                errors += 1
                if errors > 1000:
                    return None
                continue
            i = self._index_of(frame)
            if i <= self._pos:
                continue  # already passed (e.g. a seek landed early)
            self._pos = i
            return i, frame

    def decode(self, indices: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Frames at sorted unique ``indices``, upright at ``size``; returns (frames, indices actually used)."""
        index = self._index
        rotation = index.rotation
        out_w, out_h = size
        stored_w, stored_h = (out_h, out_w) if rotation in (90, 270) else (out_w, out_h)
        full = (out_w, out_h) == index.upright_size
        n = len(indices)
        data = np.empty((n, out_h, out_w, 3), dtype=np.uint8)
        used = np.asarray(indices, dtype=np.int64).copy()
        filled = np.zeros(n, dtype=bool)
        converted: dict[int, np.ndarray] = {}

        def convert(item: tuple[int, Any]) -> np.ndarray:
            i, frame = item
            img = converted.get(i)
            if img is None:
                if full:
                    img = frame.to_ndarray(format="rgb24")
                else:
                    img = frame.reformat(
                        width=stored_w, height=stored_h, format="rgb24", interpolation="AREA"
                    ).to_ndarray()
                img = upright(img, rotation)
                converted.clear()
                converted[i] = img
            return img

        if self._container is None or int(indices[0]) <= self._pos:
            self._open()
        prev: tuple[int, Any] | None = None  # last decoded frame, stands in for undecodable ones
        seek_target: int | None = None
        k = 0
        while k < n:
            target = int(indices[k])
            if self._seek_ok:
                key = index.keyframe_before(target)
                if key > self._pos + 1:
                    self._seek_to(key)
                    prev, seek_target = None, target
            item = self._next()
            if item is None:
                break
            i, frame = item
            if seek_target is not None:
                if i > seek_target:  # the seek overshot: this file's index is unreliable
                    self._seek_ok = False
                    self._open()
                    prev, seek_target = None, None
                    continue
                seek_target = None
            if i < target:
                prev = item
                continue
            # frame i >= target serves every request <= i (the previous frame if it is nearer)
            while k < n and int(indices[k]) <= i:
                t = int(indices[k])
                src = item
                if t != i and prev is not None and (t - prev[0]) <= (i - t):
                    src = prev
                data[k], used[k], filled[k] = convert(src), src[0], True
                k += 1
            prev = item
        if not filled.all():
            if prev is None and not filled.any():
                raise VideoReadError(index.label, f"frames {indices[~filled][:5].tolist()} could not be decoded")
            if prev is not None:
                data[~filled], used[~filled] = convert(prev), prev[0]
            else:
                j = int(np.flatnonzero(filled)[-1])
                data[~filled], used[~filled] = data[j], used[j]
        return data, used
