"""The decoder's data: public metadata and frame batches, and the stream index handed to every backend."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Decoded", "FrameBatch", "StreamIndex", "VideoMetadata", "scaled_size", "upright"]


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
    """``(last time before, first time after, bytes)`` of each stretch of unreadable bytes that took frames
    with it (found while demuxing: Matroska skips damaged data silently)."""
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
        if self.declared_duration is None or not self.declared_frames:
            return False
        return self.num_frames < self.declared_frames and self.duration < self.declared_duration - 0.5

    def pts_of(self, i: int) -> int:
        return int(self.pts[i])

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


def upright(img: np.ndarray, rotation: int) -> np.ndarray:
    """Turn stored pixels clockwise by ``rotation`` degrees (np.rot90 turns counter-clockwise)."""
    if rotation % 360 == 0:
        return img
    return np.rot90(img, k=-(rotation // 90), axes=(-3, -2))
