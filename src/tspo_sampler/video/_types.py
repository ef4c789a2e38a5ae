"""The decoder's data: public metadata and frame batches, and the stream index handed to every backend."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "RESIZE_METHOD",
    "Decoded",
    "FrameBatch",
    "StreamIndex",
    "VideoMetadata",
    "resize_frames",
    "scaled_size",
    "upright",
]


@dataclass(frozen=True)
class VideoMetadata:
    """What the decoder knows about the video stream (sizes are upright, after rotation)."""

    source: str
    duration: float
    fps: float
    num_frames: int
    width: int
    height: int
    rotation: int
    codec: str
    backend: str


@dataclass
class FrameBatch:
    """Decoded frames: ``data`` is ``N x H x W x 3`` uint8 RGB, upright."""

    data: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.shape[0])


@dataclass(frozen=True)
class StreamIndex:
    """The video stream's frame table, built once by demuxing (no decoding) and shared by the backends.

    Frame ``i`` is the ``i``-th smallest packet timestamp of the stream.  Backends read frames through
    this table only, so every backend reports the same indices and timestamps.
    """

    path: str
    """File the backends open (a spooled copy for in-memory input)."""
    label: str
    """How messages name the video (the user's path, ``<bytes>``, ``<file object ...>``)."""
    timestamps: np.ndarray
    """``N`` float64: presentation time of each frame in seconds from the stream start, ascending."""
    keyframes: np.ndarray
    """int64 indices of the keyframes, ascending, always starting with 0."""
    pts: np.ndarray
    """``N`` int64: each frame's pts in ``time_base`` units."""
    time_base: float
    start: int
    """Stream start time in ``time_base`` units (timestamps are relative to it)."""
    rotation: int
    """Clockwise turn (0/90/180/270) that makes stored pixels upright."""
    stored_size: tuple[int, int]
    """(width, height) of the stored, unrotated pixels."""
    first_frame: np.ndarray = field(repr=False)
    """Frame 0, upright and full size (proves the stream decodes; orients decord)."""
    duration: float
    fps: float
    codec: str
    declared_duration: float | None = None
    """The stream's duration as the container states it (``None`` when it does not)."""
    declared_frames: int = 0
    """The stream's frame count as the container states it (0 when it does not)."""
    missing_spans: tuple[tuple[float, float, int], ...] = ()
    """``(first time, last time, bytes)`` around each stretch of unreadable bytes that took frames with it
    (found while demuxing: Matroska skips damaged data silently)."""
    suspect: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    """Indices of frames a decoder may draw from damaged data next to those stretches: never served."""
    indexed: bool = True
    """The container has an index (MP4, Matroska, ...): False for MPEG-TS/PS and raw streams, where frame
    counts and seeks are estimates, so only PyAV's checked seeking and sequential decoding serve them."""
    container: str = ""
    """The demuxer's name (``mpegts``, ``matroska,webm``, ...)."""
    untimed: int = 0
    """Frames without a presentation time (Matroska may start with some): never candidates, never served."""
    resets: tuple[float, ...] = ()
    """Times (s) where the stream's timestamps restarted (MPEG-TS segments joined with ``cat``); frames after
    a reset are placed after the frames before it, so times keep rising."""
    seek_ts: np.ndarray | None = field(default=None, repr=False)
    """Per keyframe: the timestamp to seek to (the keyframe's dts in containers without an index, whose
    demuxer seeks by dts; its pts elsewhere)."""
    pts_to_index: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        if n == 0 or len(self.pts) != n:
            raise ValueError(f"stream index needs matching non-empty timestamps and pts, got {n} and {len(self.pts)}")
        if len(self.keyframes) == 0 or int(self.keyframes[0]) != 0:
            raise ValueError("stream index keyframes must start with frame 0")
        object.__setattr__(self, "pts_to_index", {int(p): i for i, p in enumerate(self.pts)})

    @property
    def num_frames(self) -> int:
        return int(len(self.timestamps))

    @property
    def upright_size(self) -> tuple[int, int]:
        w, h = self.stored_size
        return (h, w) if self.rotation in (90, 270) else (w, h)

    def ends_early(self) -> bool:
        """Fewer frames than the container states, ending over half a second before its stated duration:
        the file was cut short (a fast-start MP4 keeps its index of the whole video at the front)."""
        if self.declared_duration is None:
            return False
        if not self.declared_frames:  # Matroska states a duration, not a frame count
            return self.duration < self.declared_duration - 0.5
        return self.num_frames < self.declared_frames and self.duration < self.declared_duration - 0.5

    def pyav_only(self, backend: str) -> str | None:
        """Why ``backend`` (decord, torchcodec) cannot place this stream's frames, or None when it can."""
        if not self.indexed:
            return (f"{backend} cannot place frames in {self.container or 'this container'} files (no index: frame "
                    "counts and seeks are estimates); use decoder='pyav' or 'auto'")
        if self.resets:
            return f"{backend} cannot follow timestamps that restart; use decoder='pyav' or 'auto'"
        if self.untimed:
            return (f"{backend} would count the {self.untimed} frames without a presentation time; "
                    "use decoder='pyav' or 'auto'")
        return None

    def pts_of(self, i: int) -> int:
        return int(self.pts[i])

    def seek_target(self, key: int) -> int:
        """Timestamp to seek to for keyframe ``key`` (see :attr:`seek_ts`)."""
        if self.seek_ts is None:
            return self.pts_of(key)
        return int(self.seek_ts[self.gop_of(key)])

    def gop_of(self, i: int) -> int:
        """Position in :attr:`keyframes` of the keyframe that starts frame ``i``'s GOP."""
        return int(np.searchsorted(self.keyframes, i, side="right") - 1)

    def is_keyframe(self, i: int) -> bool:
        return int(self.keyframes[self.gop_of(i)]) == i

    def keyframe_before(self, i: int) -> int:
        """The last keyframe at or before frame ``i``."""
        keys = self.keyframes
        return int(keys[np.searchsorted(keys, i, side="right") - 1])

    def index_of(self, pts: int | None, time_base: float | None) -> int | None:
        """Frame index of a decoded frame's pts: exact, else the frame on screen at its time."""
        if pts is None:
            return None
        i = self.pts_to_index.get(int(pts))
        if i is not None:
            return i
        if time_base is None:
            return None
        t = (int(pts) - self.start) * float(time_base)
        return max(int(np.searchsorted(self.timestamps, t + 1e-6, side="right") - 1), 0)


@dataclass
class Decoded:
    """What a backend returns for ``n`` requested frames (sorted, unique).

    ``data[k]`` and ``used[k]`` (the frame actually shown, a neighbour at most one frame away when the decoder
    skipped the requested one) are valid only where ``served[k]``; a frame not served was lost to damage.
    """

    data: np.ndarray
    used: np.ndarray
    served: np.ndarray

    @classmethod
    def complete(cls, data: np.ndarray, used: np.ndarray) -> Decoded:
        return cls(data, used, np.ones(len(used), dtype=bool))


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Upright output size for ``short_side``: aspect kept, never upscaled, at least 1 px."""
    if short_side is None:
        return width, height
    if isinstance(short_side, bool) or not isinstance(short_side, (int, np.integer)) or short_side <= 0:
        raise ValueError(f"short_side must be a positive integer, got {short_side!r}")
    short = min(width, height)
    if short_side >= short:
        return width, height
    scale = short_side / short
    if width <= height:
        return short_side, max(1, int(round(height * scale)))
    return max(1, int(round(width * scale))), short_side


RESIZE_METHOD = "torch-uint8-bilinear-antialias"
"""Names :func:`resize_frames` in feature-cache keys: features made with another resize are not served."""


def resize_frames(data: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``N x H x W x 3`` uint8 frames resized to upright ``size`` ``(width, height)``: antialiased bilinear, on
    ``uint8`` in torch (the fast channels-last path torchvision's resize uses).

    Every backend decodes full-size RGB frames (identical across backends) and resizes them here, so the frames
    handed to the encoder, and so the features and the cache entries, do not depend on the backend.
    """
    w, h = size
    if data.shape[1:3] == (h, w):
        return data
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    x = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2)  # a channels-last view, no copy
    y = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return np.ascontiguousarray(y.permute(0, 2, 3, 1).numpy())


def upright(img: np.ndarray, rotation: int) -> np.ndarray:
    """Turn stored pixels clockwise by ``rotation`` degrees (np.rot90 turns counter-clockwise)."""
    if rotation % 360 == 0:
        return img
    return np.rot90(img, k=-(rotation // 90), axes=(-3, -2))
