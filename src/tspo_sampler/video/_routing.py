"""Which decode path serves a request: a pure function of its shape, the backend asked for and those open.

Measured with ``benchmarks/decode_speed.py`` (tables in ``docs/benchmarks.md``):

* only keyframes -> PyAV seeking to each keyframe and decoding just that frame, single-threaded;
* frames in more than one GOP -> PyAV sequential with frame threads, seeking over GOPs that hold no
  requested frame and converting only the requested frames;
* frames within one GOP -> decord's batch, when decord is open.

Containers without an index (MPEG-TS/PS, raw streams), joined segments whose timestamps restart and streams
with PTS-less frames never reach decord or torchcodec: their frame counts and seeks there are estimates, so
they refuse such a file when they open (``StreamIndex.pyav_only``) and ``auto`` serves it with PyAV alone.
A forced backend always uses its own paths.  Adding a backend: one reader module, its name in
:data:`OPTIONAL_BACKENDS`, its path in :data:`PATH_BACKEND` and the shapes it serves in the tables below.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

__all__ = [
    "BACKENDS",
    "FORCED_ONLY",
    "OPTIONAL_BACKENDS",
    "PATH_BACKEND",
    "PATH_DECORD",
    "PATH_KEYFRAMES",
    "PATH_SEQUENTIAL",
    "PATH_TORCHCODEC",
    "choose_path",
    "request_shape",
]

PATH_DECORD = "decord"
PATH_SEQUENTIAL = "pyav-sequential"
PATH_KEYFRAMES = "pyav-keyframes"
PATH_TORCHCODEC = "torchcodec"

BACKENDS = ("auto", "decord", "pyav", "torchcodec")
# backends opened (and checked against the stream index) when the decoder opens, in preference order;
# PyAV is always there
OPTIONAL_BACKENDS = ("decord", "torchcodec")
# optional backends opened only when asked for by name (torchcodec: not yet measured faster for auto)
FORCED_ONLY = ("torchcodec",)
PATH_BACKEND = {PATH_DECORD: "decord", PATH_SEQUENTIAL: "pyav", PATH_KEYFRAMES: "pyav", PATH_TORCHCODEC: "torchcodec"}

KEYFRAMES_ONLY = "keyframes-only"
MANY_GOPS = "many-gops"
ONE_GOP = "one-gop"

# backend=auto: the first path of the list whose backend is open
_AUTO = {
    KEYFRAMES_ONLY: (PATH_KEYFRAMES,),
    MANY_GOPS: (PATH_SEQUENTIAL,),
    ONE_GOP: (PATH_DECORD, PATH_SEQUENTIAL),
}
# a forced backend: its own path for each shape
_FORCED = {
    "pyav": {KEYFRAMES_ONLY: PATH_KEYFRAMES, MANY_GOPS: PATH_SEQUENTIAL, ONE_GOP: PATH_SEQUENTIAL},
    "decord": {KEYFRAMES_ONLY: PATH_DECORD, MANY_GOPS: PATH_DECORD, ONE_GOP: PATH_DECORD},
    "torchcodec": {KEYFRAMES_ONLY: PATH_TORCHCODEC, MANY_GOPS: PATH_TORCHCODEC, ONE_GOP: PATH_TORCHCODEC},
}


def request_shape(indices: np.ndarray, keyframes: np.ndarray) -> str:
    """Shape of a request of sorted unique ``indices`` against the stream's ``keyframes``."""
    if len(indices) and bool(np.isin(indices, keyframes, assume_unique=True).all()) and (
        len(indices) == 1 or int(np.diff(indices).min()) > 1
    ):
        return KEYFRAMES_ONLY  # a run of adjacent keyframes (all-intra) is decoded in order instead
    if len(indices):
        gops = np.searchsorted(keyframes, indices, side="right")
        if gops[0] != gops[-1]:
            return MANY_GOPS
    return ONE_GOP


def choose_path(indices: np.ndarray, keyframes: np.ndarray, *, requested: str, available: Collection[str]) -> str:
    """The decode path for ``indices``; ``available`` names the backends open now ("pyav" always is)."""
    shape = request_shape(indices, keyframes)
    if requested != "auto":
        return _FORCED[requested][shape]
    for path in _AUTO[shape]:
        if PATH_BACKEND[path] == "pyav" or PATH_BACKEND[path] in available:
            return path
    raise AssertionError(f"no decode path for {shape}")  # every list ends with a PyAV path
