"""The result of a frame selection: what was picked, where it lies in time, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def _ms(seconds: float) -> float:
    """Seconds (or a rate) rounded to three decimals: no float noise such as ``45.00000000000001``."""
    return round(float(seconds), 3)


@dataclass
class Selection:
    """Frames chosen for one (video, question) pair.

    Attributes:
        indices: source frame indices of the chosen frames (ascending). For in-memory inputs these are
            positions in the given frame sequence.
        timestamps: presentation time of each chosen frame, in seconds.
        frames: the chosen frames, ``uint8`` array ``k x H x W x 3`` (RGB, upright), or ``None`` when
            selection ran with ``return_frames=False``.
        scores: the selector's score of every candidate (same order as ``candidate_indices``).
        candidate_indices: source frame index of every candidate.
        candidate_timestamps: presentation time of every candidate, in seconds.
        method: the selection method that produced ``indices``.
        duration: video duration in seconds (``None`` for in-memory frames without timing).
        fps: average frame rate of the source (``None`` when unknown).
        question: the question the frames were chosen for.
        positions: positions of the chosen frames among the candidates.
        video: the source path (``None`` for in-memory input).
        encoded_frames: candidates whose features were computed or read for this selection (all of them
            with ``search="exhaustive"``; ``None`` when unknown).
    """

    indices: list[int]
    timestamps: list[float]
    frames: np.ndarray | None
    scores: np.ndarray
    candidate_indices: list[int]
    candidate_timestamps: list[float]
    method: str
    duration: float | None = None
    fps: float | None = None
    question: str | None = None
    positions: list[int] = field(default_factory=list)
    video: str | None = None
    encoded_frames: int | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        """One line: the chosen frames and their times, never the pixel arrays or the score vector."""

        def short(values: list[str], limit: int = 8) -> str:
            shown = values if len(values) <= limit else values[: limit - 2] + ["...", values[-1]]
            return "[" + ", ".join(shown) + "]"

        parts = [
            f"k={len(self.indices)}",
            f"method={self.method!r}",
            f"indices={short([str(int(i)) for i in self.indices])}",
            f"timestamps={short([f'{float(t):.2f}s' for t in self.timestamps])}",
            f"candidates={len(self.candidate_indices)}",
        ]
        if self.duration is not None:
            parts.append(f"duration={float(self.duration):.2f}s")
        if self.frames is not None:
            parts.append(f"frames={'x'.join(str(d) for d in np.shape(self.frames))}")
        if self.video is not None:
            parts.append(f"video={Path(self.video).name!r}")
        if self.question is not None:
            q = self.question if len(self.question) <= 60 else self.question[:57] + "..."
            parts.append(f"question={q!r}")
        return f"Selection({', '.join(parts)})"

    @property
    def k(self) -> int:
        """Number of chosen frames."""
        return len(self.indices)

    @property
    def candidate_fps(self) -> float | None:
        """Candidates per second of video: the rate of the candidate grid (one over the median spacing of
        ``candidate_timestamps``), as opposed to :attr:`fps`, the source's frame rate. ``None`` with fewer than
        two candidates."""
        if len(self.candidate_timestamps) < 2:
            return None
        spacing = float(np.median(np.diff(np.asarray(self.candidate_timestamps, dtype=np.float64))))
        return 1.0 / spacing if spacing > 0 else None

    def to_dict(self, *, include_scores: bool = True) -> dict[str, Any]:
        """A JSON-serialisable dictionary (frames are left out: they are pixels, not metadata).

        Times and the duration are in seconds rounded to the millisecond; ``source_fps`` is the video's frame
        rate (:attr:`fps`) and ``candidate_fps`` the rate of the candidates (:attr:`candidate_fps`).
        """
        out: dict[str, Any] = {
            "video": self.video,
            "question": self.question,
            "method": self.method,
            "indices": [int(i) for i in self.indices],
            "timestamps": [_ms(t) for t in self.timestamps],
            "positions": [int(p) for p in self.positions],
            "duration": None if self.duration is None else _ms(self.duration),
            "source_fps": None if self.fps is None else _ms(self.fps),
            "candidate_fps": None if self.candidate_fps is None else _ms(self.candidate_fps),
            "num_candidates": len(self.candidate_indices),
            "encoded_frames": self.encoded_frames,
        }
        if include_scores:
            # search="coarse-to-fine" leaves never-scored candidates NaN: null in JSON
            out["scores"] = [float(s) if np.isfinite(s) else None for s in np.asarray(self.scores, dtype=np.float64)]
            out["candidate_indices"] = [int(i) for i in self.candidate_indices]
            out["candidate_timestamps"] = [_ms(t) for t in self.candidate_timestamps]
        return out
