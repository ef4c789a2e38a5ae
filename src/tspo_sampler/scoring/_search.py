"""Coarse-to-fine search: find the agent's top-k candidates while encoding a small share of them.

Why it can be exact: the agent's score of candidate ``j`` depends only on the CLIP features of
candidates ``j - w//2 .. j + w - w//2 - 1`` (clamped to the video) and on ``j / T``
(:func:`~tspo_sampler.scoring._agent.window_halo`). A region whose features are known together with that halo
is scored by :meth:`~tspo_sampler.scoring._agent.TemporalAgent.score_span` bit for bit as the exhaustive pass
scores it; only *which* regions get refined is a heuristic.

The policy:

1. **Coarse pass.** Encode one candidate in the middle of every block of ``coarse_step`` candidates
   (a few seconds apart at 1 fps). Give every candidate the feature of its block's coarse frame and run
   the agent once over that piecewise-constant video: an estimated score for every candidate.
2. **Bounds.** A block's optimistic bound is its best estimate plus a margin. The margin is learnt on
   the way: the largest amount by which a refined block's true best score exceeded its estimated best
   (before the first refinement it is infinite, so the first round takes the ``k`` best-estimated blocks).
3. **Refinement.** Each round refines, best bound first, up to ``k`` of the unrefined blocks whose bound
   beats the current k-th best exact score: encode their candidates plus the halo, and score every
   candidate whose whole window is known, at its true position on the full grid.
4. **Stop** when no unrefined block's bound beats the k-th best exact score (``stopped="bounds"``), when
   every block is refined (``"complete"``) or when the next block would take the encoded candidates past
   ``max_encoded`` (a fraction of all candidates; ``"budget"``).

Everything here works on candidate positions and a callback that returns features for them, so the same
policy runs on a video file, on frames in memory, and replayed on saved features.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ._agent import TemporalAgent, positional_encoding, window_halo

SEARCH_MODES = ("exhaustive", "coarse-to-fine")
SEARCH_METHODS = ("topk",)
DEFAULT_COARSE_STEP = 8
DEFAULT_MAX_ENCODED = 0.2

FeatureFn = Callable[[np.ndarray], torch.Tensor]


def check_search(search: object, method: str | None = None) -> str:
    """Validate a search mode (and that ``method`` can run with it); returns the mode."""
    if search not in SEARCH_MODES:
        raise ValueError(f"search must be one of {', '.join(SEARCH_MODES)}, got {search!r}")
    if search == "coarse-to-fine" and method is not None and method not in SEARCH_METHODS:
        raise ValueError(
            f"method={method!r} needs the score of every candidate, which search='coarse-to-fine' does not "
            f"compute; use method='topk' with it, or search='exhaustive'"
        )
    return str(search)


def check_search_settings(coarse_step: object, max_encoded: object) -> tuple[int, float]:
    """Validate ``coarse_step`` (candidates between coarse frames) and ``max_encoded`` (a fraction)."""
    if isinstance(coarse_step, bool) or not isinstance(coarse_step, (int, np.integer)) or coarse_step < 1:
        raise ValueError(f"coarse_step must be a positive integer, got {coarse_step!r}")
    if isinstance(max_encoded, bool) or not isinstance(max_encoded, (int, float)) or not 0 < max_encoded <= 1:
        raise ValueError(f"max_encoded must be a fraction of the candidates in (0, 1], got {max_encoded!r}")
    return int(coarse_step), float(max_encoded)


class SpanScorer:
    """Exact scores of candidate spans of a ``total``-candidate video, from features of the span plus halo.

    With an agent this is :meth:`TemporalAgent.score_span`; without one (raw CLIP similarity) a score
    needs only its own frame's feature.
    """

    def __init__(
        self, agent: TemporalAgent | None, text: torch.Tensor, total: int, *, window_size: int, tau: float
    ) -> None:
        self.agent = agent
        self.total = int(total)
        self.window_size = int(window_size)
        self.tau = float(tau)
        self.device = next(agent.parameters()).device if agent is not None else torch.device("cpu")
        self.text = text.float().reshape(1, -1).to(self.device)
        self.halo = window_halo(self.window_size) if agent is not None else (0, 0)
        self._pe: torch.Tensor | None = None

    def score(self, features: torch.Tensor, offset: int, start: int, stop: int) -> torch.Tensor:
        """Scores of candidates ``start .. stop-1`` given the features of candidates ``offset ..``."""
        feats = features.float().to(self.device)
        clip = F.cosine_similarity(self.text, feats, dim=-1)
        if self.agent is None:
            return (clip[start - offset : stop - offset] / self.tau).cpu()
        if self._pe is None:
            self._pe = positional_encoding(self.total, feats.shape[1], device=self.device)
        with torch.inference_mode():
            return self.agent.score_span(
                feats, self.text, clip, offset=offset, total=self.total, start=start, stop=stop,
                window_size=self.window_size, tau=self.tau, position_encoding=self._pe,
            ).cpu()


@dataclass
class SearchResult:
    """What a coarse-to-fine search found.

    Attributes:
        positions: the chosen candidate positions, ascending.
        scores: exact agent score of every candidate that was scored, NaN for the others.
        encoded: which candidates' features were computed (or read).
        estimates: the coarse pass's estimated score of every candidate.
        rounds: refinement rounds run.
        stopped: ``"bounds"`` (the bounds prove the top-k), ``"complete"`` (every block refined),
            ``"budget"`` (``max_encoded`` reached) or ``"exhaustive"`` (too few candidates to search).
        margin: the learnt optimism margin at the end.
    """

    positions: list[int]
    scores: np.ndarray
    encoded: np.ndarray
    estimates: np.ndarray
    rounds: int
    stopped: str
    margin: float

    @property
    def encoded_frames(self) -> int:
        return int(self.encoded.sum())


def known_runs(known: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs ``[a, b)`` of ``True`` in a boolean array."""
    padded = np.concatenate([[False], known, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2], strict=True)]


def _top_positions(scores: np.ndarray, k: int) -> list[int]:
    """The ``k`` highest finite scores, ties to the earlier position, ascending."""
    finite = np.flatnonzero(np.isfinite(scores))
    order = finite[np.argsort(-scores[finite], kind="stable")]
    return sorted(int(i) for i in order[:k])


class CoarseToFineSearch:
    """The coarse-to-fine policy over ``num_candidates`` candidates (see the module docstring).

    Args:
        scorer: exact span scorer for this video and question.
        features: returns ``len(positions) x D`` features for ascending candidate positions.
        k: frames to select.
        coarse_step: candidates per block (one coarse frame each).
        cheap: candidate positions that are cheap to decode (right after a keyframe): a block's coarse frame
            is the first of them inside the block, else the block's middle candidate.
        max_encoded: most candidates to encode, as a fraction of all of them; never less than the coarse
            grid plus one refined block (with its halo) per pick. When that is the whole video, every
            candidate is encoded and scored.
    """

    margin_quantile = 1.0
    """Which quantile of the observed gaps (true best minus estimated best, per refined block) is the margin."""

    def __init__(
        self,
        scorer: SpanScorer,
        features: FeatureFn,
        k: int,
        *,
        coarse_step: int = DEFAULT_COARSE_STEP,
        max_encoded: float = DEFAULT_MAX_ENCODED,
        cheap: np.ndarray | None = None,
    ) -> None:
        self.scorer = scorer
        self.cheap = cheap
        self.features_fn = features
        self.n = scorer.total
        self.k = int(k)
        self.step, self.max_encoded = check_search_settings(coarse_step, max_encoded)
        left, right = scorer.halo
        self.num_blocks = -(-self.n // self.step)
        # Always room for the coarse grid plus one refined block (with its halo) per pick.
        floor = self.num_blocks + self.k * (self.step + left + right)
        self.budget = max(floor, int(math.floor(self.max_encoded * self.n)))
        self.known = np.zeros(self.n, dtype=bool)
        self.scores = np.full(self.n, np.nan, dtype=np.float32)
        self.feats: torch.Tensor | None = None

    # ------------------------------------------------------------------ helpers
    def _encode(self, positions: np.ndarray) -> None:
        positions = np.unique(positions[~self.known[positions]])
        if len(positions) == 0:
            return
        got = self.features_fn(positions).float().cpu()
        if got.ndim != 2 or got.shape[0] != len(positions):
            raise ValueError(f"the feature callback returned shape {tuple(got.shape)} for {len(positions)} positions")
        if self.feats is None:
            self.feats = torch.zeros(self.n, got.shape[1])
        self.feats[torch.from_numpy(positions)] = got
        self.known[positions] = True

    def _score_known(self) -> None:
        """Score every not yet scored candidate whose whole window has known features."""
        left, right = self.scorer.halo
        assert self.feats is not None
        for a, b in known_runs(self.known):
            start = a if a == 0 else a + left
            stop = b if b == self.n else b - right
            if start >= stop or not np.isnan(self.scores[start:stop]).any():
                continue
            self.scores[start:stop] = self.scorer.score(self.feats[a:b], a, start, stop).numpy()

    def _block(self, b: int) -> tuple[int, int]:
        return b * self.step, min(self.n, (b + 1) * self.step)

    def _needed(self, b: int) -> np.ndarray:
        left, right = self.scorer.halo
        start, stop = self._block(b)
        span = np.arange(max(0, start - left), min(self.n, stop + right))
        return span[~self.known[span]]

    def _exhaustive(self) -> SearchResult:
        self._encode(np.arange(self.n))
        self._score_known()
        positions = _top_positions(self.scores, self.k)
        return SearchResult(positions, self.scores, self.known, self.scores.copy(), 0, "exhaustive", 0.0)

    # ------------------------------------------------------------------ the search
    def run(self) -> SearchResult:
        n, step, k, num_blocks = self.n, self.step, self.k, self.num_blocks
        # Too few candidates for a coarse grid and k refined blocks to save anything: score them all.
        if self.budget >= n or num_blocks <= k:
            return self._exhaustive()
        coarse = np.minimum(np.arange(num_blocks) * step + step // 2, n - 1)
        if self.cheap is not None and len(self.cheap):
            cheap = np.unique(np.asarray(self.cheap, dtype=np.int64))
            starts = np.arange(num_blocks) * step
            first = np.searchsorted(cheap, starts)
            found = cheap[np.minimum(first, len(cheap) - 1)]
            inside = (first < len(cheap)) & (found >= starts) & (found < np.minimum(n, starts + step))
            coarse[inside] = found[inside]
        self._encode(coarse)
        assert self.feats is not None
        owner = np.minimum(np.arange(n) // step, num_blocks - 1)
        estimates = self.scorer.score(self.feats[torch.from_numpy(coarse[owner])], 0, 0, n).numpy()
        block_est = np.maximum.reduceat(estimates, np.arange(0, n, step))
        refined = np.zeros(num_blocks, dtype=bool)
        margin = math.inf
        gaps: list[float] = []
        rounds, stopped = 0, "complete"
        while not refined.all():
            exact = self.scores[np.isfinite(self.scores)]
            kth = -math.inf if len(exact) < k else float(np.sort(exact)[-k])
            bounds = np.where(refined, -math.inf, block_est + margin)
            todo = [int(b) for b in np.argsort(-bounds, kind="stable") if bounds[b] > kth and not refined[b]][:k]
            if not todo:
                stopped = "bounds"
                break
            chosen: list[int] = []
            spent = int(self.known.sum())
            for b in todo:
                need = len(self._needed(b))
                if spent + need > self.budget:
                    break
                chosen.append(b)
                spent += need
            if not chosen:
                stopped = "budget"
                break
            self._encode(np.concatenate([self._needed(b) for b in chosen]))
            refined[chosen] = True
            self._score_known()
            rounds += 1
            for b in chosen:
                start, stop = self._block(b)
                true_best = np.nanmax(self.scores[start:stop])
                gaps.append(float(true_best - block_est[b]))
            margin = max(0.0, float(np.quantile(gaps, self.margin_quantile)))
            if len(chosen) < len(todo):
                stopped = "budget"
                break
        positions = _top_positions(self.scores, k)
        if len(positions) < k:
            warnings.warn(
                f"search='coarse-to-fine' scored only {len(positions)} candidates within max_encoded="
                f"{self.max_encoded}; the other picks follow the coarse estimates (raise max_encoded)",
                stacklevel=3,
            )
            rest = np.where(np.isfinite(self.scores), -np.inf, estimates)
            positions = sorted(positions + _top_positions(rest, k - len(positions)))
        return SearchResult(positions, self.scores, self.known, estimates, rounds, stopped, margin)


def coarse_to_fine(
    agent: TemporalAgent | None,
    text: torch.Tensor,
    num_candidates: int,
    features: FeatureFn,
    k: int,
    *,
    window_size: int,
    tau: float,
    coarse_step: int = DEFAULT_COARSE_STEP,
    max_encoded: float = DEFAULT_MAX_ENCODED,
    cheap: np.ndarray | None = None,
) -> SearchResult:
    """Run the coarse-to-fine policy: ``features(positions)`` is called for the candidates it needs."""
    if num_candidates < 1:
        raise ValueError("there are no candidates to search")
    scorer = SpanScorer(agent, text, num_candidates, window_size=window_size, tau=tau)
    search = CoarseToFineSearch(
        scorer, features, k, coarse_step=coarse_step, max_encoded=max_encoded, cheap=cheap
    )
    return search.run()
