"""Which decode path serves a request: a pure function of its shape and the backend asked for.

``backend="auto"`` decodes with PyAV alone, on the path that suits the request's shape:

* only keyframes -> PyAV seeking to each keyframe and decoding just that frame, single-threaded;
* anything else -> PyAV sequential with frame threads, seeking over GOPs that hold no requested frame and
  converting only the requested frames.

PyAV is the backend that reports bitstream errors (``err_detect=explode``), so damaged data is left out and
said rather than drawn. decord conceals them: on damaged files its one-GOP batches served wrong pictures
without a word (``benchmarks/damaged_files.py``), and it was about half as fast as PyAV's sequential path for
such requests (docs/benchmarks.md), so ``auto`` no longer routes any request to it.  decord and torchcodec are
opened only when asked for by name and then serve every request themselves; containers without an index
(MPEG-TS/PS, raw streams), joined segments whose timestamps restart and streams with PTS-less frames refuse them
when they open (``StreamIndex.pyav_only``).  Adding a backend: one reader module, its name in
:data:`OPTIONAL_BACKENDS`, its path in :data:`PATH_BACKEND` and in the tables below.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BACKENDS",
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
# backends opened (and checked against the stream index) when the decoder opens, only when asked for by name;
# PyAV is always there
OPTIONAL_BACKENDS = ("decord", "torchcodec")
PATH_BACKEND = {PATH_DECORD: "decord", PATH_SEQUENTIAL: "pyav", PATH_KEYFRAMES: "pyav", PATH_TORCHCODEC: "torchcodec"}

KEYFRAMES_ONLY = "keyframes-only"
MANY_GOPS = "many-gops"
ONE_GOP = "one-gop"

# each backend's path for each shape (``auto`` takes PyAV's)
_PATHS = {
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


def choose_path(indices: np.ndarray, keyframes: np.ndarray, *, requested: str) -> str:
    """The decode path for ``indices`` with the backend ``requested`` (``"auto"`` or a backend's name)."""
    shape = request_shape(indices, keyframes)
    return _PATHS["pyav" if requested == "auto" else requested][shape]
