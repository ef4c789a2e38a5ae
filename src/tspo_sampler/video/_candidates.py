"""Candidate rules: which frames of a video the agent scores, as pure functions over its frame table.

Every rule takes the table the decoder builds (``timestamps``: presentation time of each frame, ascending;
``keyframes``: indices of the keyframes, starting with 0; ``duration``) and returns frame indices, so the
decoder, the sampler and the trainer share one definition:

* target instants ``k / fps`` (``k = 0, 1, ...``, below the duration), at least one;
* ``mode="fps"``: each target maps to the frame on screen at that instant, the latest frame whose
  timestamp is ``<=`` the target (frame 0 before the first frame);
* ``mode="keyframes"``: each target maps to the nearest keyframe (the earlier one on a tie); a stream
  with a single keyframe falls back to ``"fps"``;
* duplicates are dropped, and ``max_candidates`` keeps that many spread evenly over the list.
"""

from __future__ import annotations

import math
import warnings
from numbers import Real

import numpy as np

__all__ = [
    "CANDIDATE_MODES",
    "candidate_error",
    "candidate_indices",
    "check_finite",
    "check_max_candidates",
    "check_mode",
    "even_positions",
    "nearest_keyframes",
    "on_screen",
    "targets",
]

CANDIDATE_MODES = ("fps", "keyframes")
_EPS = 1e-9


def check_finite(value: object, name: str, *, positive: bool = False, minimum: float | None = None) -> float:
    """``value`` as a finite float, or a ``ValueError`` naming the argument (bools are refused)."""
    kind = "a positive number" if positive else "a number"
    if isinstance(value, bool) or not isinstance(value, (Real, np.integer, np.floating)):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and out <= 0:
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
    return out


def check_mode(mode: object, name: str = "mode") -> str:
    if mode not in CANDIDATE_MODES:
        raise ValueError(f"{name} must be one of {', '.join(CANDIDATE_MODES)}, got {mode!r}")
    return str(mode)


def check_max_candidates(max_candidates: object) -> int | None:
    if max_candidates is None:
        return None
    if isinstance(max_candidates, bool) or not isinstance(max_candidates, (int, np.integer)) or max_candidates < 1:
        raise ValueError(f"max_candidates must be a positive integer or None, got {max_candidates!r}")
    return int(max_candidates)


def targets(duration: float, fps: float) -> np.ndarray:
    """Target instants ``0, 1/fps, ...`` below ``duration`` (at least the instant 0)."""
    fps = check_finite(fps, "fps", positive=True)
    n = max(1, int(np.ceil(float(duration) * fps - _EPS)))
    return np.arange(n, dtype=np.float64) / fps


def on_screen(timestamps: np.ndarray, instants: np.ndarray) -> np.ndarray:
    """Index of the frame on screen at each instant: the latest timestamp ``<=`` it (0 before the first)."""
    idx = np.searchsorted(timestamps, instants + _EPS, side="right") - 1
    return np.clip(idx, 0, len(timestamps) - 1).astype(np.int64)


def nearest_keyframes(timestamps: np.ndarray, keyframes: np.ndarray, instants: np.ndarray) -> np.ndarray:
    """Index of the keyframe nearest each instant (the earlier one on a tie); needs two keyframes or more."""
    kt = timestamps[keyframes]
    after = np.clip(np.searchsorted(kt, instants + _EPS, side="right"), 1, len(keyframes) - 1)
    before = after - 1
    later = (kt[after] - instants) < (instants - kt[before]) - _EPS
    return keyframes[np.where(later, after, before)].astype(np.int64)


def _standing_frames(
    timestamps: np.ndarray, keyframes: np.ndarray, duration: float, fps: float, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """(target instants, the frame that stands for each one) under ``mode``."""
    check_mode(mode)
    if float(duration) * check_finite(fps, "fps", positive=True) > 2 * max(len(timestamps), 1):
        # more instants than frames would only repeat frames (fps=1e9 would fill memory with them): every
        # frame stands for itself, as it does at any fps above the frame rate
        warnings.warn(
            f"fps={fps:g} asks for more candidates than the video has frames ({len(timestamps)}); every frame is a "
            "candidate instead (candidates never exceed the source frames)", UserWarning, stacklevel=4,
        )
        instants = np.asarray(timestamps, dtype=np.float64)
        instants = np.maximum(instants, 0.0)[instants < float(duration)] if len(instants) else instants
        if len(instants) == 0:
            instants = np.zeros(1)
    else:
        instants = targets(duration, fps)
    if mode == "keyframes" and len(keyframes) > 1:
        return instants, nearest_keyframes(timestamps, keyframes, instants)
    return instants, on_screen(timestamps, instants)


def even_positions(n: int, max_candidates: int | None) -> np.ndarray:
    """Positions ``0 .. n-1``, thinned evenly to at most ``max_candidates`` (first and last kept)."""
    if max_candidates is None or n <= max_candidates:
        return np.arange(n, dtype=np.int64)
    if max_candidates < 1:
        raise ValueError("max_candidates must be >= 1")
    return np.unique(np.round(np.linspace(0, n - 1, max_candidates)).astype(np.int64))


def candidate_indices(
    timestamps: np.ndarray,
    keyframes: np.ndarray,
    duration: float,
    fps: float = 1.0,
    mode: str = "fps",
    max_candidates: int | None = None,
) -> np.ndarray:
    """Sorted unique frame indices of the candidates (always at least frame 0)."""
    _, idx = _standing_frames(timestamps, keyframes, duration, fps, mode)
    idx = np.unique(idx)
    return idx[even_positions(len(idx), max_candidates)]


def candidate_error(
    timestamps: np.ndarray, keyframes: np.ndarray, duration: float, fps: float = 1.0, mode: str = "keyframes"
) -> np.ndarray:
    """Per target instant: seconds between it and the frame that stands for it (before any thinning)."""
    instants, idx = _standing_frames(timestamps, keyframes, duration, fps, mode)
    return np.abs(timestamps[idx] - instants)
