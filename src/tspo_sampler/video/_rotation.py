"""The display rotation of a video stream on every PyAV the project allows.

PyAV >= 13 reports it on decoded frames (``frame.rotation``, the display matrix's counter-clockwise angle).
PyAV 12 does not, so for MP4/MOV files the matrix is read from the track header (``tkhd``) directly.
"""

from __future__ import annotations

import math
import os
import struct
from typing import Any, BinaryIO

__all__ = ["clockwise_rotation", "mp4_track_rotation"]

_CONTAINERS = ("mov", "mp4", "m4a", "3gp", "3g2", "mj2")
_MAX_BOX_DEPTH = 4


def clockwise_rotation(frame: Any, path: str, container: Any, stream: Any) -> int:
    """Clockwise turn (0/90/180/270) that makes ``stream``'s stored pixels upright."""
    ccw = getattr(frame, "rotation", None)
    if ccw is not None:
        turn = (-int(round(ccw or 0))) % 360
    elif any(name in _CONTAINERS for name in (container.format.name or "").split(",")):
        turn = mp4_track_rotation(path, stream.index) or 0
    else:
        turn = 0
    if turn not in (0, 90, 180, 270):
        turn = int(round(turn / 90.0)) * 90 % 360
    return turn


def _boxes(f: BinaryIO, start: int, end: int) -> Any:
    """(type, payload start, payload end) of the ISO-BMFF boxes between ``start`` and ``end``."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(16)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head[:8])
        body = pos + 8
        if size == 1 and len(head) == 16:
            size, body = struct.unpack(">Q", head[8:16])[0], pos + 16
        elif size == 0:
            size = end - pos
        if size < body - pos:
            return
        yield kind, body, min(pos + size, end)
        pos += size


def mp4_track_rotation(path: str, track: int) -> int | None:
    """Clockwise rotation from the ``tkhd`` matrix of the ``track``-th track of an MP4/MOV file (None: not found)."""
    try:
        with open(path, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            moov = next(((b, e) for k, b, e in _boxes(f, 0, end) if k == b"moov"), None)
            if moov is None:
                return None
            traks = [(b, e) for k, b, e in _boxes(f, *moov) if k == b"trak"]
            if track >= len(traks):
                return None
            tkhd = next(((b, e) for k, b, e in _boxes(f, *traks[track]) if k == b"tkhd"), None)
            if tkhd is None:
                return None
            f.seek(tkhd[0])
            body = f.read(min(tkhd[1] - tkhd[0], 128))
    except OSError:
        return None
    offset = 4 + (32 if body[:1] == b"\x01" else 20) + 16  # version/flags, times and ids, then layer..volume
    if len(body) < offset + 36:
        return None
    a, b, _u, c, d, _v, _x, _y, _w = struct.unpack(">9i", body[offset : offset + 36])
    sx, sy = math.hypot(a, c), math.hypot(b, d)
    if not sx or not sy:
        return None
    return int(round(math.degrees(math.atan2(b / sy, a / sx)))) % 360
