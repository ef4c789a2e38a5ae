"""Build the :class:`StreamIndex` of a file with PyAV: demux the packets once (no decoding), decode frame 0."""

from __future__ import annotations

from dataclasses import dataclass
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


_MIN_BYTE_GAP = 64
"""Bytes no packet covers between two packets that count as a hole: Matroska's block and cluster headers take
a few dozen; its demuxer skips damaged data without a word, however little."""
_REORDER = 8  # frames a decoder may reorder: the frames a hole took lie this close to the packets around it


class _Packets:
    """Every packet of any stream as the probe saw it, one list per field (the demux loop runs once per packet
    of an hour-long file, so it appends plain values rather than building an object per packet)."""

    def __init__(self) -> None:
        self.pos: list[int] = []
        self.size: list[int] = []
        self.video: list[bool] = []
        self.pts: list[int | None] = []  # frames of the video stream only (not packets an edit list hides)
        self.key: list[bool] = []
        self.dts: list[int | None] = []
        self.corrupt: list[bool] = []
        self.segment: list[int] = []  # the unwrapper's offset: joined segments differ


@dataclass(frozen=True)
class _Holes:
    """Where the video stream lost packets, with its packets in byte (decode) order around them."""

    gaps: list[tuple[int, int]]
    """``(bytes, k)``: a hole after the first ``k`` video packets in byte order (0 bytes: not known)."""
    corrupt: list[int]
    """Video packets (positions in byte order) the demuxer flagged as missing data (MPEG-TS)."""
    pts: np.ndarray
    """Video packets' pts in byte order (-1: hidden by an edit list, not a frame)."""
    keys: np.ndarray
    """Video packets' keyframe flags in byte order."""


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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, _Holes, int, Unwrapper]:
    """(pts, durations, keyframe flags, decode timestamps) of the stream's packets in presentation order
    (unique pts, on one rising timeline), the byte holes, the count of packets without a timestamp, and the
    unwrapper that placed them.

    Byte holes are the stretches of the file that no packet of any stream covers, between two video packets
    (a demuxer skips damaged data in Matroska without a word).
    Packets an MP4 edit list hides (flagged *discard*) are not frames of the video.
    """
    import av  # noqa: PLC0415

    pts_list: list[int] = []
    dts_list: list[int] = []
    durations: list[int] = []
    keys: list[bool] = []
    untimed = 0
    unwrap = Unwrapper(float(stream.time_base), enabled=not indexed)
    spans = _Packets()
    ours_index = stream.index
    try:
        for packet in container.demux():
            ours = packet.stream.index == ours_index
            if ours:
                unwrap.feed(packet)
            raw_pts, raw_dts, size = packet.pts, packet.dts, packet.size
            ts = raw_pts if raw_pts is not None else raw_dts
            ts = None if ts is None else int(ts) + unwrap.offset
            dts = int(raw_dts) + unwrap.offset if raw_dts is not None else ts
            frame = ours and size > 0 and not getattr(packet, "is_discard", False)
            key = packet.is_keyframe
            pos = packet.pos
            if size and pos is not None and pos >= 0:
                spans.pos.append(pos)
                spans.size.append(size)
                spans.video.append(ours)
                spans.pts.append(ts if frame else None)
                spans.key.append(key)
                spans.dts.append(dts)
                spans.corrupt.append(packet.is_corrupt)
                spans.segment.append(unwrap.offset)
            if not frame:
                continue
            if ts is None:
                untimed += 1
                continue
            pts_list.append(ts)
            dts_list.append(dts)
            durations.append(packet.duration or 0)
            keys.append(key)
    except av.error.FFmpegError:
        pass  # a damaged tail: keep the packets read so far
    pts = np.asarray(pts_list, dtype=np.int64)
    order = np.argsort(pts, kind="stable")
    # identical pts would make indices ambiguous; keep the first (decord does the same lookup)
    pts, first = np.unique(pts[order], return_index=True)
    durs = np.asarray(durations, dtype=np.int64)[order][first]
    keyflags = np.asarray(keys, dtype=bool)[order][first]
    dts = np.asarray(dts_list, dtype=np.int64)[order][first]
    return pts, durs, keyflags, dts, _holes(spans, indexed), untimed, unwrap


def _holes(spans: _Packets, indexed: bool) -> _Holes:
    """Where the video stream lost packets.  In a container with an index, packets cover the file's bytes, so
    a stretch no packet covers is a hole.  MPEG-TS adds its own headers to every 188 bytes but times every
    packet: there a jump of the decode time by over 1.5 frame intervals is one (0 bytes: not known), and the
    demuxer flags a packet that lost data."""
    pos = np.asarray(spans.pos, dtype=np.int64)
    order = np.argsort(pos, kind="stable")
    pos = pos[order]
    is_video = np.asarray(spans.video, dtype=bool)[order]
    video = order[is_video]  # the video packets in byte order, as indices into the lists
    found: list[tuple[int, int]] = []
    if indexed:
        # laced frames (Matroska audio) share their block's position: the block spans their sizes together
        starts, block = np.unique(pos, return_inverse=True)
        extent = np.bincount(block, weights=np.asarray(spans.size, dtype=np.float64)[order]).astype(np.int64)
        seen = np.cumsum(np.bincount(block, weights=is_video).astype(np.int64))  # video packets up to each block
        gaps = starts[1:] - (starts[:-1] + extent[:-1])
        for j in np.flatnonzero((gaps > _MIN_BYTE_GAP) & (seen[:-1] > 0) & (seen[:-1] < len(video))):
            found.append((int(gaps[j]), int(seen[j])))
    else:
        timed = [(k, spans.dts[i]) for k, i in enumerate(video) if spans.dts[i] is not None]
        steps = np.diff(np.asarray([d for _, d in timed], dtype=np.int64))
        step = float(np.median(steps)) if len(steps) else 0.0
        found = [(0, timed[int(j) + 1][0]) for j in np.flatnonzero(steps > 1.5 * step)] if step > 0 else []
    # the counters restart where segments were joined: the demuxer flags one of the last packets before
    segments = [spans.segment[i] for i in video]
    corrupt = [
        k
        for k, i in enumerate(video)
        if spans.corrupt[i] and all(seg == segments[k] for seg in segments[k : k + 3])
    ]
    return _Holes(
        gaps=found,
        corrupt=corrupt,
        pts=np.asarray([-1 if (t := spans.pts[i]) is None else t for i in video], dtype=np.int64),
        keys=np.asarray(spans.key, dtype=bool)[video],
    )


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


_FIRST_FRAME_TRIES = 256  # packets that may fail to decode before the first picture (a damaged first GOP)


def _first_frame(path: str, label: str) -> tuple[Any, int, str]:
    """(the first picture, clockwise rotation, codec name); demuxing consumed the file, so this reopens it.

    A damaged first GOP does not refuse the file: the first picture that comes out gives the size and the
    orientation (its pixels are only compared, by decord's orientation check); the frames that fail to decode
    are lost when they are asked for, and said then."""
    import av  # noqa: PLC0415

    container = open_container(path)
    try:
        stream = video_stream(container)
        first = None
        failure: Exception | None = None
        tries = 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = stream.decode(packet)
                except av.error.FFmpegError as exc:
                    failure, tries = failure or exc, tries + 1
                    if tries > _FIRST_FRAME_TRIES:
                        break
                    continue
                if frames:
                    first = frames[0]
                    break
            else:  # the end: pictures still in the decoder (a short video) come out now
                frames = stream.decode(None)
                first = frames[0] if frames else None
        except av.error.FFmpegError as exc:  # the demuxer or the last decode gave up
            failure = failure or exc
        if first is None and failure is not None:
            raise VideoReadError(label, f"cannot decode the video stream ({describe(failure)})") from failure
        if first is None:
            raise VideoReadError(label, "zero decodable frames")
        rotation = clockwise_rotation(first, path, container, stream)
        image = upright(first.to_ndarray(format="rgb24"), rotation)
        codec = stream.codec_context.name or "unknown"
        return (first.width, first.height, np.ascontiguousarray(image)), rotation, codec
    finally:
        container.close()


def _lost_frames(
    holes: _Holes, pts: np.ndarray, timestamps: np.ndarray
) -> tuple[tuple[tuple[float, float, int], ...], np.ndarray]:
    """The holes that took video frames with them, as ``(first time, last time, bytes)`` around each, and the
    indices of the frames a decoder may draw from damaged data.

    A hole took frames when the frame times near it (the reordering depth either side of the packets around
    it) leave a gap of over 1.5 frame intervals; bytes of other streams or container junk take none.  Suspect
    are the packet before the hole (the hole may cut it: a half-decoded picture) and the packets after it in
    decode order up to the next keyframe (they refer to pictures the hole took); a packet the demuxer flagged
    and those after it up to the next keyframe; and, when the first packet is not a keyframe (the stream lost
    its start), the packets before the first keyframe.
    """
    index = np.where(holes.pts >= 0, np.searchsorted(pts, holes.pts), -1)  # -1: not a frame (edit list)
    spans: list[tuple[float, float, int]] = []
    suspect = [np.zeros(0, dtype=np.int64)]

    def to_keyframe(first: int, after: int) -> np.ndarray:
        """Packets ``first ..`` up to the first keyframe from ``after`` on (exclusive)."""
        nxt = np.flatnonzero(holes.keys[after:])
        return index[first : after + int(nxt[0]) if len(nxt) else len(index)]

    if len(holes.keys) and not holes.keys[0]:
        suspect.append(to_keyframe(0, 0))
        if timestamps[0] > 0:
            spans.append((0.0, float(timestamps[0]), 0))
    for k in holes.corrupt:
        suspect.append(to_keyframe(k, k + 1))
    step = float(np.median(np.diff(timestamps))) if len(timestamps) > 1 else 0.0
    for gap, k in holes.gaps if len(timestamps) > 1 else ():
        around = index[max(k - 1 - _REORDER, 0) : k + 1 + _REORDER]
        around = np.sort(around[around >= 0])
        if not len(around) or not (np.diff(timestamps[around[0] : around[-1] + 1]) > 1.5 * step).any():
            continue  # bytes of another stream or container junk: no frame lost
        near = [int(i) for i in index[k - 1 : k + 1] if i >= 0]
        spans.append((float(timestamps[min(near)]), float(timestamps[max(near)]), int(gap)))
        suspect.append(index[k - 1 : k])  # the hole may cut the packet before it
        suspect.append(to_keyframe(k, k))
    taken = np.unique(np.concatenate(suspect)).astype(np.int64)
    return tuple(spans), taken[taken >= 0]


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
        if "matroska" in fmt and len(holes.keys) and not holes.keys[0] and start > 0:
            start = 0  # Matroska counts time from its segment's start: the frames before the first one left are lost
        time_base = float(tb)
        timestamps = (pts - start).astype(np.float64) * time_base
        duration, fps = _duration_and_fps(timestamps, durs, time_base, stream)
        declared = _declared_duration(container, stream, time_base, fmt) if indexed else None
        missing, suspect = _lost_frames(holes, pts, timestamps)
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
        suspect=suspect,
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
