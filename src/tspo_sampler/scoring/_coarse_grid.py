"""The coarse-to-fine search's coarse grid: where the content may change (scene-cut keyframes) and the fill
between, so every scene gets a coarse frame however short it is (:mod:`tspo_sampler.scoring._search`)."""

from __future__ import annotations

import numpy as np


def scene_anchors(candidates: np.ndarray, keyframes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(anchors, cheap)`` candidate positions from a stream's keyframes (frame indices).

    ``cheap``: the first candidate at or after each keyframe (decoding it costs little). ``anchors``: those of
    them whose keyframe does not follow the stream's regular keyframe interval (its most common one, when it
    repeats): encoders add such keyframes at scene cuts, and joined clips start with one.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    keys = np.unique(np.asarray(keyframes, dtype=np.int64))
    first = np.searchsorted(candidates, keys)
    inside = first < len(candidates)
    keys, first = keys[inside], first[inside]
    if len(keys) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    gaps = np.diff(keys)
    values, counts = np.unique(gaps, return_counts=True) if len(gaps) else (np.zeros(0, np.int64), np.zeros(0))
    regular = int(values[np.argmax(counts)]) if len(counts) and counts.max() > 1 else -1
    irregular = np.concatenate([[True], gaps != regular])
    return np.unique(first[irregular]), np.unique(first)


def coarse_grid(n: int, step: int, anchors: np.ndarray | None, cheap: np.ndarray | None = None) -> np.ndarray:
    """Coarse positions of an ``n``-candidate video: every anchor (a candidate where the content may change,
    e.g. after a scene-cut keyframe) plus fill, so no two neighbours are more than ``step`` apart. Position 0
    is always one, so every scene that starts at an anchor has its own coarse frame however short it is.
    A fill position moves to the nearest ``cheap`` one (quick to decode) when that is at most ``step // 3`` away.
    """
    points = np.asarray([] if anchors is None else anchors, dtype=np.int64).reshape(-1)
    points = np.unique(np.concatenate([[0], points[(points >= 0) & (points < n)]]))
    ends = np.concatenate([points[1:], [n]])
    fill = [np.zeros(0, dtype=np.int64)]
    for a, b in zip(points, ends, strict=True):
        pieces = -(-(int(b) - int(a)) // step)
        if pieces > 1:
            fill.append(a + np.round(np.arange(1, pieces) * (b - a) / pieces).astype(np.int64))
    extra = np.concatenate(fill)
    if cheap is not None and len(cheap) and len(extra):
        cheap = np.unique(np.asarray(cheap, dtype=np.int64))
        after = np.clip(np.searchsorted(cheap, extra), 1, len(cheap) - 1) if len(cheap) > 1 else np.zeros_like(extra)
        before = np.maximum(after - 1, 0)
        near = np.where(np.abs(cheap[after] - extra) < np.abs(cheap[before] - extra), cheap[after], cheap[before])
        extra = np.where(np.abs(near - extra) <= step // 3, near, extra)
    return np.unique(np.concatenate([points, extra]))
