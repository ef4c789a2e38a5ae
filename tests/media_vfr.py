"""A variable-frame-rate video whose frame rate changes sharply (slow part, then fast part).

``tests/media.py``'s VFR files cycle through small gap changes, so ``index / average fps`` stays within a
few tenths of a second of the real time. Here the first half runs at a low rate and the second at a high
one, so ``index / average fps`` is off by seconds: the case where an adapter must not trust it.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from media import draw_frame

__all__ = ["make_cfr_and_vfr", "make_split_rate_video", "split_rate_times"]


def split_rate_times(slow: tuple[float, float] = (6.0, 2.0), fast: tuple[float, float] = (6.0, 25.0)) -> np.ndarray:
    """Presentation times: ``slow[0]`` seconds at ``slow[1]`` fps, then ``fast[0]`` s at ``fast[1]`` fps (ms grid)."""
    first = np.arange(0.0, slow[0] - 1e-9, 1.0 / slow[1])
    second = slow[0] + np.arange(0.0, fast[0] - 1e-9, 1.0 / fast[1])
    return np.round(np.concatenate([first, second]), 3)


def make_split_rate_video(
    path: str | os.PathLike, times: np.ndarray | None = None, size: tuple[int, int] = (160, 120)
) -> Path:
    """Write an H.264 MP4 with one stamped frame (see ``media.read_stamp``) at each of ``times`` (1 ms pts)."""
    path = Path(path)
    times = split_rate_times() if times is None else np.asarray(times, dtype=np.float64)
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20", "bf": "0"}
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.time_base = Fraction(1, 1000)
        for t in times:
            frame = av.VideoFrame.from_ndarray(draw_frame(float(t), size), format="rgb24")
            frame.pts = int(round(t * 1000))
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_cfr_and_vfr(directory: str | os.PathLike) -> dict[str, Path]:
    """``{"cfr": 8 s at 10 fps, "vfr": the split-rate file}``: the pair the adapter tests check times on."""
    from media import make_video

    directory = Path(directory)
    return {
        "cfr": make_video(directory / "cfr.mp4", duration=8.0, fps=10.0),
        "vfr": make_split_rate_video(directory / "vfr.mp4"),
    }
