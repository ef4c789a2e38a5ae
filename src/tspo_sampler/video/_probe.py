"""Build the :class:`StreamIndex` of a file with PyAV: demux the packets once (no decoding), decode frame 0."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._errors import VideoReadError
from ._rotation import clockwise_rotation
from ._types import StreamIndex, upright
from ._watchdog import describe

__all__ = ["UNINDEXED_FORMATS", "Unwrapper", "open_container", "probe", "video_stream"]


def open_container(path: str) -> Any:
    import av  # noqa: PLC0415

    return av.open(path, mode="r", metadata_errors="ignore")


def _flag(value: Any) -> int:
    """A disposition as an int on every PyAV >= 12 (``int()`` of a plain ``enum.Flag`` fails on av 15)."""
    return int(getattr(value, "value", value))


# still-image codecs: without dispositions (PyAV 12), a one-frame stream of these is cover art
_IMAGE_CODECS = frozenset({"mjpeg", "png", "bmp", "gif", "webp", "tiff"})


def _is_still(stream: Any, still: int | None) -> bool:
    if still is not None and hasattr(stream, "disposition"):
        return bool(_flag(stream.disposition) & still)
    return stream.codec_context.name in _IMAGE_CODECS and (stream.frames or 0) <= 1


def video_stream(container: Any) -> Any | None:
    """First video stream that is a real video (not cover art / a thumbnail)."""
    import av  # noqa: PLC0415

    disposition = getattr(av.stream, "Disposition", None)  # PyAV >= 13
    still = None if disposition is None else _flag(disposition.attached_pic) | _flag(disposition.timed_thumbnails)
    for stream in container.streams.video:
        if not _is_still(stream, still):
            return stream
    return None


_MIN_BYTE_GAP = 4096  # unread bytes between two packets that count as a hole (container overhead is far less)


_Hole = tuple[int, int, int]

_RESET_S = 0.5  # decode timestamps going back further than this restart the timeline (joined MPEG-TS segments)

# demuxers without an index: frame counts and seeks are estimates (decord and torchcodec misplace frames), and
# seeking goes by dts
UNINDEXED_FORMATS = frozenset({"mpegts", "mpeg", "mpegvideo", "h264", "hevc", "m4v", "h263", "vc1"})


class Unwrapper:
    """Offsets that put a stream whose timestamps restart (``cat a.ts b.ts``) on one rising timeline.

    Fed every packet of the stream in demux order; a decode timestamp more than ``_RESET_S`` before the
    previous one starts a new segment, shifted to follow the last packet.  The probe and the PyAV reader feed
    the same packets, so they place every frame alike.
    """

    def __init__(self, time_base: float, enabled: bool = True) -> None:
        self.enabled = enabled  # only containers without an index restart (an MP4 or Matroska file cannot)
        self.offset = 0
        self.previous = 0  # the offset before the last reset (frames still in the decoder may carry it)
        self.resets: list[int] = []  # unwrapped timestamps where a segment starts
        self._last: int | None = None
        self._step = 1
        self._jump = max(1, int(_RESET_S / time_base))

    def feed(self, packet: Any) -> None:
        ts = packet.dts  # decode timestamps rise within a segment (presentation timestamps do not)
        if ts is None or not self.enabled:
            return
        ts = int(ts) + self.offset
        if self._last is not None:
            if ts < self._last - self._jump:
                self.previous = self.offset
                self.offset += self._last + self._step - ts
                ts = self._last + self._step
                self.resets.append(ts)
            elif ts > self._last:
                self._step = int(packet.duration or 0) or ts - self._last
        self._last = ts


def _packet_table(
    container: Any, stream: Any, indexed: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[_Hole], int, Unwrapper]:
    """(pts, durations, keyframe flags, decode timestamps) of the stream's packets in presentation order
    (unique pts, on one rising timeline), the byte holes, the count of packets without a timestamp, and the
    unwrapper that placed them.

    Byte holes are ``(bytes, pts before, pts after)`` for every stretch of the file that no packet of any
    stream covers, between two video packets (a demuxer skips damaged data in Matroska without a word).
    Packets an MP4 edit list hides (flagged *discard*) are not frames of the video.
    """
    import av  # noqa: PLC0415

    pts_list: list[int] = []
    dts_list: list[int] = []
    durations: list[int] = []
    keys: list[bool] = []
    untimed = 0
    unwrap = Unwrapper(float(stream.time_base), enabled=not indexed)
    spans: list[tuple[int, int, int | None]] = []  # (byte position, size, video pts or None) of every packet
    try:
        for packet in container.demux():
            ours = packet.stream.index == stream.index
            if ours:
                unwrap.feed(packet)
            ts = packet.pts if packet.pts is not None else packet.dts
            ts = None if ts is None else int(ts) + unwrap.offset
            if packet.size and packet.pos is not None and packet.pos >= 0:
                spans.append((int(packet.pos), int(packet.size), ts if ours else None))
            if not ours or packet.size == 0 or getattr(packet, "is_discard", False):
                continue
            if ts is None:
                untimed += 1
                continue
            pts_list.append(ts)
            dts_list.append(int(packet.dts) + unwrap.offset if packet.dts is not None else ts)
            durations.append(int(packet.duration or 0))
            keys.append(bool(packet.is_keyframe))
    except av.error.FFmpegError:
        pass  # a damaged tail: keep the packets read so far
    pts = np.asarray(pts_list, dtype=np.int64)
    order = np.argsort(pts, kind="stable")
    # identical pts would make indices ambiguous; keep the first (decord does the same lookup)
    pts, first = np.unique(pts[order], return_index=True)
    durs = np.asarray(durations, dtype=np.int64)[order][first]
    keyflags = np.asarray(keys, dtype=bool)[order][first]
    dts = np.asarray(dts_list, dtype=np.int64)[order][first]
    return pts, durs, keyflags, dts, _byte_holes(spans), untimed, unwrap


def _byte_holes(spans: list[tuple[int, int, int | None]]) -> list[_Hole]:
    spans.sort()
    holes = []
    before: int | None = None  # pts of the last video packet at a lower byte position
    for k, (pos, size, ts) in enumerate(spans[:-1]):
        before = ts if ts is not None else before
        gap = spans[k + 1][0] - (pos + size)
        if gap > _MIN_BYTE_GAP and before is not None:
            after = next((t for _, _, t in spans[k + 1 :] if t is not None), None)
            if after is not None:
                holes.append((gap, before, after))
    return holes


def _duration_and_fps(timestamps: np.ndarray, durs: np.ndarray, time_base: float, stream: Any) -> tuple[float, float]:
    n = len(timestamps)
    rate = stream.average_rate
    avg = float(rate) if rate else 0.0
    gaps = np.diff(timestamps)
    if durs[-1] > 0:
        last = durs[-1] * time_base
    elif len(gaps):
        last = float(np.median(gaps))
    else:
        last = 1.0 / avg if avg > 0 else 0.0
    duration = float(timestamps[-1] + last)
    if duration <= 0:
        duration = float(stream.duration * time_base) if stream.duration else 0.0
    fps = n / duration if duration > 0 else avg
    if avg > 0 and duration > 0 and abs(avg - fps) <= 0.01 * fps:
        fps = avg  # the container's exact rational rate (e.g. 30000/1001)
    return duration, float(fps)


def _first_frame(path: str, label: str) -> tuple[Any, int, str]:
    """(frame 0, clockwise rotation, codec name); demuxing consumed the file, so this reopens it."""
    import av  # noqa: PLC0415

    container = open_container(path)
    try:
        stream = video_stream(container)
        first = None
        rotation = 0
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except av.error.FFmpegError as exc:
            raise VideoReadError(label, f"cannot decode the video stream ({describe(exc)})") from exc
        if first is None:
            raise VideoReadError(label, "zero decodable frames")
        rotation = clockwise_rotation(first, path, container, stream)
        image = upright(first.to_ndarray(format="rgb24"), rotation)
        codec = stream.codec_context.name or "unknown"
        return (first.width, first.height, np.ascontiguousarray(image)), rotation, codec
    finally:
        container.close()


def _missing_spans(
    holes: list[_Hole], timestamps: np.ndarray, start: int, time_base: float
) -> tuple[tuple[float, float, int], ...]:
    """Byte holes that also leave a gap in the frame times (over 3 frame intervals and 0.5 s), as
    ``(last time before, first time after, bytes)``: the frames that were there are gone."""
    if len(timestamps) < 2:
        return ()
    step = float(np.median(np.diff(timestamps)))
    out = []
    for gap, before, after in holes:
        t0, t1 = (before - start) * time_base, (after - start) * time_base
        if t1 - t0 > max(3 * step, 0.5):
            out.append((float(t0), float(t1), int(gap)))
    return tuple(out)


def probe(path: str, label: str) -> StreamIndex:
    """The frame table of the first real video stream of ``path`` (``label`` names it in errors)."""
    import av  # noqa: PLC0415

    try:
        container = open_container(path)
    except av.error.FFmpegError as exc:
        raise VideoReadError(label, f"not a readable media file ({describe(exc)})") from exc
    try:
        stream = video_stream(container)
        if stream is None:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            extra = " besides cover art" if container.streams.video else ""
            raise VideoReadError(label, f"no video stream{extra} (streams: {', '.join(kinds)})")
        tb = stream.time_base
        if tb is None or tb == 0:
            raise VideoReadError(label, "video stream has no time base")
        fmt = str(container.format.name or "")
        indexed = not UNINDEXED_FORMATS.intersection(fmt.split(","))
        pts, durs, keyflags, dts, holes, untimed, unwrap = _packet_table(container, stream, indexed)
        if len(pts) == 0:
            what = f" ({untimed} frames without a presentation time)" if untimed else ""
            raise VideoReadError(label, f"the video stream has no frames with a presentation time{what}")
        start = int(pts[0]) if stream.start_time is None else min(int(stream.start_time), int(pts[0]))
        time_base = float(tb)
        timestamps = (pts - start).astype(np.float64) * time_base
        duration, fps = _duration_and_fps(timestamps, durs, time_base, stream)
        declared = _declared_duration(container, stream, time_base, fmt) if indexed else None
        missing = _missing_spans(holes, timestamps, int(start), time_base)
        declared_frames = int(stream.frames or 0)
    finally:
        container.close()
    (stored_w, stored_h, image), rotation, codec = _first_frame(path, label)

    key_idx = np.flatnonzero(keyflags).astype(np.int64)
    if len(key_idx) == 0 or key_idx[0] != 0:
        key_idx = np.concatenate([[0], key_idx]).astype(np.int64)
    seek_ts = (pts if indexed else np.minimum(dts, pts))[key_idx]
    return StreamIndex(
        path=path,
        label=label,
        timestamps=timestamps,
        keyframes=key_idx,
        pts=pts,
        time_base=time_base,
        start=int(start),
        rotation=rotation,
        stored_size=(int(stored_w), int(stored_h)),
        first_frame=image,
        duration=duration,
        fps=fps,
        codec=codec,
        declared_duration=declared,
        declared_frames=declared_frames,
        missing_spans=missing,
        indexed=indexed,
        container=fmt,
        untimed=untimed,
        resets=tuple(float((r - start) * time_base) for r in unwrap.resets),
        seek_ts=seek_ts,
    )


def _declared_duration(container: Any, stream: Any, time_base: float, fmt: str) -> float | None:
    """The video stream's duration as the container states it: MP4's track duration, Matroska's per-track
    ``DURATION`` tag (or the segment's duration); None where it is not stated."""
    if stream.duration:
        return float(stream.duration * time_base)
    if "matroska" not in fmt:
        return None
    tag = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    if tag:
        try:
            h, m, sec = str(tag).split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            pass
    return float(container.duration) / 1e6 if container.duration else None
