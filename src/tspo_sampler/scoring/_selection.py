"""Turning per-candidate scores into k chosen positions.

Every method returns ascending candidate positions and reproduces the TSPO reference on ties: the
earlier candidate wins.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

import numpy as np
import torch

ScoresLike = torch.Tensor | np.ndarray | Sequence[float]

AKS_THRESHOLD = 0.2
AKS_MAX_DEPTH = 3
BOLT_POWER = 3.0


def _as_array(scores: ScoresLike, name: str = "scores") -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        arr = scores.detach().float().cpu().numpy()
    else:
        arr = np.asarray(scores)
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per candidate), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: there are no candidates to select from")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _top(scores: np.ndarray, n: int) -> list[int]:
    """Positions of the ``n`` highest scores, ties to the earlier position (like ``heapq.nlargest``)."""
    order = np.argsort(-scores, kind="stable")
    return sorted(int(i) for i in order[:n])


def uniform_anchors(num_candidates: int, k: int) -> list[int]:
    """``k`` evenly spread positions ``round(i (T-1)/(k-1))`` (the last position when ``k == 1``)."""
    if k == 1:
        return [num_candidates - 1]
    step = (num_candidates - 1) / (k - 1)
    return [round(i * step) for i in range(k)]


def select_topk(scores: np.ndarray, k: int) -> list[int]:
    """The ``k`` highest-scoring candidates."""
    return _top(scores, k)


def select_uniform(scores: np.ndarray, k: int) -> list[int]:
    """Evenly spaced candidates, ignoring the scores: what MLLMs do today."""
    return sorted(set(uniform_anchors(len(scores), k)))


def select_bin_max(scores: np.ndarray, k: int) -> list[int]:
    """Split the candidates into ``k`` bins around uniform anchors and take the best of each bin.

    Each candidate belongs to its nearest anchor (a tie goes to the earlier anchor), which keeps temporal
    coverage while still following the scores.
    """
    anchors = np.asarray(uniform_anchors(len(scores), k))
    positions = np.arange(len(scores))
    owner = np.abs(positions[:, None] - anchors[None, :]).argmin(axis=1)  # argmin: first (earlier) on ties
    chosen = []
    for bin_id in np.unique(owner):
        members = positions[owner == bin_id]
        chosen.append(int(members[np.argmax(scores[members])]))
    return sorted(chosen)


def select_aks(
    scores: np.ndarray, k: int, *, threshold: float = AKS_THRESHOLD, max_depth: int = AKS_MAX_DEPTH
) -> list[int]:
    """Adaptive Keyframe Sampling (Tang et al., CVPR 2025) with the TSPO reference's settings.

    Scores are min-max normalised. A segment whose ``k`` best exceed its mean by more than ``threshold`` is
    kept whole; otherwise it is halved, down to ``max_depth``. A kept segment at depth ``d`` gives its
    ``int(k / 2**d)`` best candidates. The result can hold fewer than ``k`` positions.
    """
    span = float(scores.max() - scores.min())
    norm = (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)
    kept: list[tuple[np.ndarray, int]] = []  # (positions, depth), in the reference's output order
    pending = [(np.arange(len(scores)), 0)]
    while pending:
        to_split = []
        for pos, depth in pending:
            seg = norm[pos]
            best = heapq.nlargest(k, seg.tolist())
            if float(np.mean(best)) - float(np.mean(seg)) > threshold or depth >= max_depth:
                kept.append((pos, depth))
            else:
                half = len(pos) // 2
                to_split += [(pos[:half], depth + 1), (pos[half:], depth + 1)]
        pending = to_split
    out: list[int] = []
    for pos, depth in kept:
        n = int(k / 2**depth)
        out.extend(int(pos[i]) for i in _top(norm[pos], n))
    return sorted(out)


def select_clip(scores: np.ndarray, k: int) -> list[int]:
    """Top-k of the raw CLIP similarity (pass CLIP scores, not agent scores)."""
    return _top(scores, k)


def select_bolt(scores: np.ndarray, k: int, *, power: float = BOLT_POWER) -> list[int]:
    """Inverse transform sampling (BOLT, CVPR 2025): ``k`` evenly spaced quantiles of the score CDF.

    Scores are min-max normalised and raised to ``power``; dense high-score regions get more frames, yet
    every region keeps some chance. Repeated positions are replaced by their nearest unused neighbours so
    exactly ``k`` distinct candidates come back.
    """
    span = float(scores.max() - scores.min())
    weights = ((scores - scores.min()) / span) ** power if span > 0 else np.ones_like(scores)
    weights = weights + 1e-12
    cdf = np.cumsum(weights) / weights.sum()
    quantiles = (np.arange(k) + 0.5) / k
    picks = np.searchsorted(cdf, quantiles, side="left").clip(0, len(scores) - 1)
    used: set[int] = set()
    for p in picks.tolist():
        for d in range(len(scores)):
            for cand in (p + d, p - d):
                if 0 <= cand < len(scores) and cand not in used:
                    used.add(cand)
                    break
            else:
                continue
            break
    return sorted(used)


SELECTION_METHODS: dict[str, Callable[[np.ndarray, int], list[int]]] = {
    "topk": select_topk,
    "bin-max": select_bin_max,
    "aks": select_aks,
    "uniform": select_uniform,
    "clip": select_clip,
    "bolt": select_bolt,
}


def check_k(k: object) -> int:
    """Validate ``k`` (a positive integer) and return it as ``int`` (the rule of :class:`SelectionSettings`)."""
    from ._settings import check_positive_int

    return int(check_positive_int(k, "k") or 0)


def check_method(method: object) -> str:
    """Validate a selection method name and return it (the rule of :class:`SelectionSettings`)."""
    from ._settings import check_method as check

    return check(method)


def select_indices(scores: ScoresLike, k: int, method: str = "topk") -> list[int]:
    """Choose ``k`` candidates from their scores.

    Args:
        scores: one score per candidate (agent logits, or CLIP similarities for ``"clip"``).
        k: how many to choose. When there are no more than ``k`` candidates, every one is returned.
        method: one of ``topk``, ``bin-max``, ``aks``, ``uniform``, ``clip``, ``bolt``.

    Returns:
        Ascending candidate positions.
    """
    k = check_k(k)
    method = check_method(method)
    arr = _as_array(scores)
    if len(arr) <= k:
        return list(range(len(arr)))
    return SELECTION_METHODS[method](arr, k)
