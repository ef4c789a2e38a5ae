"""PyAV backend: packet-by-packet decoding with frame threads, seeking over GOPs that hold no requested frame.

The reader demuxes the stream and decodes each packet on its own (``stream.decode(packet)``), so a damaged
packet costs only its GOP: the decoder resynchronises on the next keyframe. The decoder reports every
bitstream error (``err_detect=explode``; by default it conceals them and hands out wrong pictures). Frame
threads report a packet's failure some packets late, so a request that meets any failure is decoded again in
*careful* mode (one thread: slice threads drop their errors; for the rest of the reader's life): each frame
waits until its whole GOP is decoded and is dropped if any packet of the GOP failed (its pixels may be drawn
from missing references); keyframes, which depend on nothing, pass at once unless their own packet failed.
Damaged data that starts in the packet before a failed one may decode without an error, so that packet counts
as failed too. A requested frame that never comes out clean is reported as lost, never replaced by a distant
frame; a frame the decoder silently skips in an undamaged stretch is served by its neighbour at most one frame
away (decoders merge or drop an odd frame).

Decoded frames are matched to indices through their pts (:meth:`StreamIndex.index_of`), so the index space
is the packet table's.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._probe import Unwrapper, open_container, video_stream
from ._types import Decoded, StreamIndex, resize_frames, upright

__all__ = ["PyAVReader"]

log = logging.getLogger("tspo_sampler.video")

MAX_STAND_IN = 1
"""How far (in frames) a decoded neighbour may stand in for a frame the decoder skipped without damage."""
_MAX_ERRORS = 10_000  # decode errors per request before the rest of the stream counts as unreadable
_MAX_RESYNCS = 1_000  # demuxer failures (each resynchronised at the next keyframe) per request


class PyAVReader:
    """Forward-only reader over one file, reopened or seeked when a request goes backwards.

    ``threaded=False`` decodes on one thread: for keyframe-only requests, where frame threads would decode
    frames past each keyframe too (and slice threads drop their errors). ``damaged_gops`` collects the GOPs
    (numbered by their keyframe's position in :attr:`StreamIndex.keyframes`) where a packet failed.
    """

    def __init__(self, index: StreamIndex, *, num_threads: int = 0, threaded: bool = True) -> None:
        self._index = index
        self._num_threads = int(num_threads)
        self._threaded = threaded
        self._container: Any = None
        self._stream: Any = None
        self._packets: Iterator[Any] | None = None
        self._ready: deque[tuple[int, Any]] = deque()
        self._pending: list[tuple[int, Any]] = []  # careful mode: frames of the GOP being decoded
        self._careful = False
        self._pos = -1  # index of the last frame handed out
        self._last_packet = -1  # index of the last packet demuxed (for resynchronising)
        self._eof = False
        # joined segments restart their timestamps: only reading from the start places every frame
        self._seek_ok = not index.resets
        self._unwrap = Unwrapper(index.time_base, enabled=not index.indexed)
        self._await_key = False  # after a seek: skip packets up to the first keyframe (TS seeks land anywhere)
        self._errors = 0
        self._resyncs = 0
        self.damaged_gops: set[int] = set()
        self._failed: set[int] = set()  # packets that failed to decode or came damaged out of the demuxer
        self._previous = -1  # the packet demuxed before the current one

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
        self._container = self._stream = self._packets = None
        self._ready.clear()
        self._pending.clear()
        self._pos = -1

    def _open(self) -> None:
        self.close()
        self._container = open_container(self._index.path)
        self._stream = video_stream(self._container)
        # report every bitstream error: by default the decoder conceals them and hands out wrong pictures
        self._stream.codec_context.options = {"err_detect": "explode"}
        if self._threaded and not self._careful:
            self._stream.thread_type = "AUTO"
            self._stream.codec_context.thread_count = self._num_threads
        else:  # slice threads drop their errors (a damaged picture comes out without one): decode on one thread
            self._stream.codec_context.thread_count = 1
        self._restart(-1)

    def _restart(self, pos: int) -> None:
        self._packets = self._container.demux(self._stream)
        self._ready.clear()
        self._pending.clear()
        self._pos = pos
        self._last_packet = pos
        self._eof = False
        self._previous = -1
        self._unwrap = Unwrapper(self._index.time_base, enabled=not self._index.indexed)
        self._await_key = False

    def _seek_to(self, key: int) -> None:
        """Seek to keyframe ``key``; the demuxer may land on an earlier keyframe (checked later)."""
        self._container.seek(self._index.seek_target(key), stream=self._stream, backward=True, any_frame=False)
        self._restart(key - 1)
        self._await_key = True

    # ------------------------------------------------------------------ packets in, trusted frames out

    def _mark_damaged(self, first: int, last: int) -> None:
        """Frames ``first .. last`` sit in damaged data: their GOPs are no longer trusted."""
        ix = self._index
        lo, hi = ix.gop_of(max(first, 0)), ix.gop_of(min(max(last, first, 0), ix.num_frames - 1))
        self.damaged_gops.update(range(lo, hi + 1))

    def _packet_index(self, packet: Any) -> int:
        ts = packet.pts if packet.pts is not None else packet.dts
        i = self._index.index_of(None if ts is None else int(ts) + self._unwrap.offset, packet.time_base)
        return self._last_packet if i is None else i

    def _resync(self) -> bool:
        """After a demuxer failure, continue at the next keyframe; False when there is none."""
        import av  # noqa: PLC0415

        ix = self._index
        self._resyncs += 1
        nxt = np.searchsorted(ix.keyframes, self._last_packet, side="right")
        if self._resyncs > _MAX_RESYNCS or nxt >= len(ix.keyframes):
            self._mark_damaged(self._last_packet, ix.num_frames - 1)
            return False
        key = int(ix.keyframes[nxt])
        self._mark_damaged(self._last_packet, key - 1)
        try:
            self._container.seek(ix.seek_target(key), stream=self._stream, backward=False, any_frame=False)
        except av.error.FFmpegError:
            self._mark_damaged(key, ix.num_frames - 1)
            return False
        pos = self._pos
        self._restart(pos)
        self._last_packet = key
        self._await_key = not self._index.indexed  # an estimated seek lands on any packet
        return True

    def _pull(self) -> None:
        """Demux and decode one packet, queueing the trusted frames it yields; sets ``_eof`` at the end."""
        import av  # noqa: PLC0415

        assert self._packets is not None
        try:
            packet = next(self._packets)
        except StopIteration:
            self._eof = True
            return
        except av.error.FFmpegError as exc:
            log.debug("%s: demuxing failed after frame %d: %s", self._index.label, self._last_packet, exc)
            if not self._resync():
                self._eof = True
            return
        self._unwrap.feed(packet)
        if self._await_key:
            if not (packet.size and packet.is_keyframe):
                return  # a seek in a container without an index lands on any packet: wait for a keyframe
            self._await_key = False
        i = self._packet_index(packet) if packet.size else self._last_packet
        self._last_packet = max(self._last_packet, i)
        previous, self._previous = self._previous, i
        try:
            frames = self._stream.decode(packet)
        except av.error.EOFError:
            self._eof = True
            return
        except av.error.FFmpegError as exc:
            self._fail(i, f"failed to decode: {exc}")
            if previous >= 0:  # damaged data that starts in the packet before may decode without an error
                self._failed.add(previous)
            return
        for frame in frames:
            self._accept(frame)

    def _fail(self, i: int, why: str) -> None:
        self._errors += 1
        log.debug("%s: packet of frame %d %s", self._index.label, i, why)
        self._failed.add(i)
        self._mark_damaged(i, i)
        if self._errors > _MAX_ERRORS:
            self._mark_damaged(i, self._index.num_frames - 1)
            self._eof = True

    def _frame_index(self, frame: Any, last: int) -> int | None:
        """Index of a decoded frame: its pts on the unwrapped timeline (a frame still in the decoder when
        the timestamps restarted carries the offset before the reset)."""
        ix = self._index
        if frame.pts is None:
            return None if ix.untimed else last + 1  # frames without a pts are not frames of the index
        # frames leave the decoder in presentation order: the nearest placement after the last frame wins
        found = [ix.pts_to_index.get(int(frame.pts) + off) for off in (self._unwrap.offset, self._unwrap.previous)]
        later = [i for i in found if i is not None and i > last]
        if later:
            return min(later)
        return ix.index_of(int(frame.pts) + self._unwrap.offset, frame.time_base)

    def _accept(self, frame: Any) -> None:
        ix = self._index
        queue = self._pending or self._ready
        last = queue[-1][0] if queue else self._pos
        i = self._frame_index(frame, last)
        if i is None:
            return
        if i <= last or i >= ix.num_frames:
            return  # already passed (e.g. a seek landed early)
        if not self._careful or ix.is_keyframe(i):
            self._commit(ix.gop_of(i))
            if self._trusted(i, pending=False):
                self._ready.append((i, frame))
            return
        self._commit(ix.gop_of(i))
        self._pending.append((i, frame))

    def _commit(self, gop: int | None) -> None:
        """Careful mode: frames of GOPs before ``gop`` (all, for None) are complete; keep the undamaged ones."""
        ix = self._index
        while self._pending and (gop is None or ix.gop_of(self._pending[0][0]) < gop):
            i, frame = self._pending.pop(0)
            if self._trusted(i, pending=True):
                self._ready.append((i, frame))

    def _trusted(self, i: int, *, pending: bool) -> bool:
        """A frame is served when its own packet did not fail and it depends on nothing damaged: a keyframe on
        nothing, any other frame on its GOP (checked when the GOP is complete, in careful mode)."""
        if i in self._failed:
            return False
        return (not pending and self._index.is_keyframe(i)) or self._index.gop_of(i) not in self.damaged_gops

    def _next(self) -> tuple[int, Any] | None:
        """The next trusted frame after the last one handed out, or None at the end of the stream."""
        while not self._ready:
            if self._eof:
                self._commit(None)
                if not self._ready:
                    return None
                break
            self._pull()
        item = self._ready.popleft()
        self._pos = item[0]
        return item

    # ------------------------------------------------------------------ requests

    def decode(self, indices: np.ndarray, size: tuple[int, int]) -> Decoded:
        """Frames at sorted unique ``indices``, upright at ``size``; lost frames are marked, not replaced."""
        out = self._decode_pass(indices, size)
        if (self._errors or self._resyncs) and not self._careful:
            log.debug("%s: damaged data met; decoding the request again, carefully", self._index.label)
            self._careful = True
            # frame threads blame later packets (and, once one failed, may fail every packet after it)
            self.damaged_gops.clear()
            self._failed.clear()
            self.close()
            out = self._decode_pass(indices, size)
        return out

    def _decode_pass(self, indices: np.ndarray, size: tuple[int, int]) -> Decoded:
        index = self._index
        rotation = index.rotation
        out_w, out_h = size
        n = len(indices)
        data = np.empty((n, out_h, out_w, 3), dtype=np.uint8)
        used = np.asarray(indices, dtype=np.int64).copy()
        served = np.zeros(n, dtype=bool)

        def convert(frame: Any) -> np.ndarray:
            # full-size RGB, resized by the function every backend shares: the same pixels whatever decodes
            return resize_frames(upright(frame.to_ndarray(format="rgb24"), rotation)[None], size)[0]

        def serve(k: int, item: tuple[int, Any]) -> None:
            data[k], used[k], served[k] = convert(item[1]), item[0], True

        self._errors = self._resyncs = 0
        if self._container is None or int(indices[0]) <= self._pos:
            self._open()
        prev: tuple[int, Any] | None = None  # last frame out of the decoder, a possible stand-in
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
            i = item[0]
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
            # frame i >= target: serves its own request, and stands in for skipped ones next to it
            while k < n and int(indices[k]) <= i:
                t = int(indices[k])
                if t == i:
                    serve(k, item)
                elif not self._damaged(t):
                    near = [c for c in (prev, item) if c is not None and abs(c[0] - t) <= MAX_STAND_IN]
                    if near:
                        serve(k, min(near, key=lambda c: (abs(c[0] - t), c[0])))
                k += 1
            prev = item
        while k < n:  # the stream ended first
            t = int(indices[k])
            if prev is not None and not self._damaged(t) and t - prev[0] <= MAX_STAND_IN:
                serve(k, prev)
            k += 1
        if not served.all():
            lost = indices[~served]
            log.debug("%s: %d of %d requested frames lost: %s", index.label, len(lost), n, lost[:10].tolist())
        return Decoded(data, used, served)

    def _damaged(self, i: int) -> bool:
        return self._index.gop_of(i) in self.damaged_gops
