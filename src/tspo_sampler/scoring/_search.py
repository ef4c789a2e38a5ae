"""Coarse-to-fine search: find the agent's top-k candidates while encoding a small share of them.

Why it can be exact: the agent's score of candidate ``j`` depends only on the CLIP features of
candidates ``j - w//2 .. j + w - w//2 - 1`` (clamped to the video) and on ``j / T``
(:func:`~tspo_sampler.scoring._agent.window_halo`). A region whose features are known together with that halo
is scored by :meth:`~tspo_sampler.scoring._agent.TemporalAgent.score_span` bit for bit as the exhaustive pass
scores it; only *which* regions get refined is a heuristic.

The policy:

1. **Coarse pass.** Encode a coarse grid: on files, the first candidate after every keyframe that breaks the
   stream's regular keyframe interval (encoders put those at scene cuts; :func:`_coarse_grid.scene_anchors`),
   plus fill at most ``coarse_step`` apart (moved onto keyframes when close: cheap to decode), so every scene,
   however short, gets a coarse frame (:func:`_coarse_grid.coarse_grid`). Without keyframes, the middle of every
   ``coarse_step`` block. Estimate every candidate's score with one agent pass over a reconstructed video: features
   interpolated between neighbouring coarse frames of one scene, held up to a cut; where the cut's place is
   unknown, the optimistic estimate also tries the other side.
2. **Bounds.** The candidates are cut into refinement units of a few candidates; a unit's bound is its best
   optimistic estimate plus a margin learnt on the way from the refined units' errors (true best minus
   bound): a high quantile plus slack for their spread (their maximum while there are few). Before the first
   refinement the margin is infinite, so the first round takes the best-estimated units.
3. **Refinement.** Each round refines, best bound first, up to ``min(k, round_units)`` unrefined units (8; the
   first round, which has no margin yet, up to ``first_round_units``: 4) whose bound beats the current k-th best
   exact score:
   encode them plus the halo, and score every candidate whose whole window is known, at its true position on
   the full grid.
4. **Stop** when no unrefined unit's bound beats the k-th best exact score (``stopped="bounds"``), when every
   unit is refined (``"complete"``) or when no wanted unit fits in ``max_encoded`` (a fraction of all
   candidates; ``"budget"``).

The encoder runs fixed-size passes (8 frames on the CPU, the last one padded: see ``batch_rows`` in
:mod:`tspo_sampler.features._encoders`), so each request is filled up to whole passes (``pass_rows``) with the
frames the search would ask for next: extra coarse frames in the grid's widest gaps, then the next-best units'
frames. They count as encoded (and against ``max_encoded``) but cost no encoder time.

Everything here works on candidate positions and a callback that returns features for them, so the same
policy runs on a video file, on frames in memory, and replayed on saved features.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ._agent import ROW_BLOCK, TemporalAgent
from ._coarse_grid import coarse_grid
from ._span import SpanScorer

SEARCH_MODES = ("exhaustive", "coarse-to-fine")
SEARCH_METHODS = ("topk",)
DEFAULT_COARSE_STEP = 8
DEFAULT_MAX_ENCODED = 0.1

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


def check_search_settings(
    coarse_step: object, max_encoded: object, names: tuple[str, str] = ("coarse_step", "max_encoded")
) -> tuple[int, float]:
    """Validate ``coarse_step`` (candidates between coarse frames) and ``max_encoded`` (a fraction); messages
    name them as ``names`` says (the CLI passes its flags)."""
    step_name, share_name = names
    from .._errors import ArgumentTypeError, InvalidArgumentError  # the type rule of SelectionSettings

    if isinstance(coarse_step, bool) or not isinstance(coarse_step, (int, np.integer)):
        raise ArgumentTypeError(f"{step_name} must be a positive integer, got {type(coarse_step).__name__} "
                                f"{coarse_step!r}")
    if coarse_step < 1:
        raise InvalidArgumentError(f"{step_name} must be a positive integer, got {coarse_step!r}")
    what = "a fraction of the candidates in (0, 1]"
    if isinstance(max_encoded, bool) or not isinstance(max_encoded, (int, float, np.integer, np.floating)):
        raise ArgumentTypeError(f"{share_name} must be {what}, got {type(max_encoded).__name__} {max_encoded!r}")
    if not 0 < max_encoded <= 1:
        raise InvalidArgumentError(f"{share_name} must be {what}, got {max_encoded!r}")
    return int(coarse_step), float(max_encoded)


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
        policy_seconds: time the search spent on its own work (estimates, bounds, span scoring), not in
            the feature callback.
    """

    positions: list[int]
    scores: np.ndarray
    encoded: np.ndarray
    estimates: np.ndarray
    rounds: int
    stopped: str
    margin: float
    policy_seconds: float = 0.0

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
        coarse_step: most candidates between two coarse frames.
        cheap: candidate positions that are cheap to decode (right after a keyframe); without ``anchors``, a
            block's coarse frame is the first of them inside the block, else the block's middle candidate.
        anchors: candidate positions where the content may change (the first after each keyframe): every
            one becomes a coarse frame, and ``coarse_step`` only fills the longer stretches between them.
        max_encoded: most candidates to encode, as a fraction of all of them; never less than the coarse
            grid plus ``k`` refined units and one halo. When that is the whole video, every
            candidate is encoded and scored.
        pass_rows: frames per forward pass of the feature callback's encoder, which pads its last pass to that
            many: a request is filled up to a multiple of it with the frames the search would want next (more
            coarse frames in the widest gaps; the next-best units' frames), which cost no encoder time.
    """

    margin_quantile = 0.9
    """Which quantile of the observed estimate errors (true best minus bound, per refined unit) sets the margin."""
    margin_slack = 0.5
    """Added to the margin, as a multiple of the spread (90% minus 50% quantile) of the observed errors."""
    min_errors = 8
    """Below this many observed errors the margin is their maximum."""
    unit = 4
    """Candidates per refinement unit (at most ``coarse_step``): refining encodes a unit plus its halo."""
    same_scene = 0.9
    """Cosine similarity above which two neighbouring coarse frames count as one scene (interpolated)."""
    estimate_stride = 4
    """The coarse pass's estimate is computed for one candidate in this many (the others interpolated)."""
    first_round_units = 4
    """Most units the first refinement round takes (later rounds take up to ``k``). Before any unit is refined
    there is no margin, so that round is blind: a few units teach the margin and the k-th best exact score
    before much of the budget is spent; a first round of ``k`` units spent a budget-bound search's refinement
    blind (docs/benchmarks.md)."""
    round_units = 8
    """Most units a later round takes (and at most ``k``). For a large ``k`` a round of ``k`` units spends much of
    the budget before the k-th best exact score and the margin catch up; smaller rounds cost no extra encoder
    passes now that requests fill whole passes (docs/benchmarks.md)."""

    def __init__(
        self,
        scorer: SpanScorer,
        features: FeatureFn,
        k: int,
        *,
        coarse_step: int = DEFAULT_COARSE_STEP,
        max_encoded: float = DEFAULT_MAX_ENCODED,
        cheap: np.ndarray | None = None,
        anchors: np.ndarray | None = None,
        pass_rows: int = 1,
    ) -> None:
        if isinstance(pass_rows, bool) or not isinstance(pass_rows, (int, np.integer)) or pass_rows < 1:
            raise ValueError(f"pass_rows must be a positive integer, got {pass_rows!r}")
        self.pass_rows = int(pass_rows)
        self.scorer = scorer
        self.cheap = cheap
        self.anchors = anchors
        self.features_fn = features
        self.n = scorer.total
        self.k = int(k)
        self.step, self.max_encoded = check_search_settings(coarse_step, max_encoded)
        left, right = scorer.halo
        self.unit = max(1, min(self.unit, self.step))
        self.coarse = self._coarse_positions()
        self.num_units = -(-self.n // self.unit)
        # Always room for the coarse grid plus k refined units and one halo (the picks may lie side by side).
        self.refinement_floor = self.k * self.unit + left + right
        self.budget = max(len(self.coarse) + self.refinement_floor, int(math.floor(self.max_encoded * self.n)))
        self.known = np.zeros(self.n, dtype=bool)
        self.scores = np.full(self.n, np.nan, dtype=np.float32)
        self.feats: torch.Tensor | None = None
        self.feature_seconds = 0.0

    # ------------------------------------------------------------------ helpers
    def _coarse_positions(self) -> np.ndarray:
        n, step = self.n, self.step
        if self.anchors is not None:
            return coarse_grid(n, step, self.anchors, self.cheap)
        num_blocks = -(-n // step)
        coarse = np.minimum(np.arange(num_blocks) * step + step // 2, n - 1)
        if self.cheap is not None and len(self.cheap):
            cheap = np.unique(np.asarray(self.cheap, dtype=np.int64))
            starts = np.arange(num_blocks) * step
            first = np.searchsorted(cheap, starts)
            found = cheap[np.minimum(first, len(cheap) - 1)]
            inside = (first < len(cheap)) & (found >= starts) & (found < np.minimum(n, starts + step))
            coarse[inside] = found[inside]
        return np.unique(coarse)

    def _encode(self, positions: np.ndarray) -> None:
        positions = np.unique(positions[~self.known[positions]])
        if len(positions) == 0:
            return
        begin = time.perf_counter()
        got = self.features_fn(positions).float().cpu()
        self.feature_seconds += time.perf_counter() - begin
        if got.ndim != 2 or got.shape[0] != len(positions):
            raise ValueError(f"the feature callback returned shape {tuple(got.shape)} for {len(positions)} positions")
        if self.feats is None:
            self.feats = torch.zeros(self.n, got.shape[1])
        self.feats[torch.from_numpy(positions)] = got
        self.known[positions] = True

    def _score_known(self) -> None:
        """Score every not yet scored candidate whose whole window has known features.

        Nearby spans are scored in one call over their union (unknown features are zeros there): a row's
        score depends only on its window (grid-aligned row blocks, see ``_agent._grid_rows``), so the rows
        kept are bit-identical either way, and one call per stretch costs far less than one per span.
        """
        left, right = self.scorer.halo
        assert self.feats is not None
        wanted = np.zeros(self.n, dtype=bool)
        for a, b in known_runs(self.known):
            start = a if a == 0 else a + left
            stop = b if b == self.n else b - right
            wanted[start:stop] = start < stop
        wanted &= np.isnan(self.scores)
        got = self._score_where(self.feats, wanted)
        self.scores[wanted] = got[wanted]

    def _score_where(self, features: torch.Tensor, wanted: np.ndarray) -> np.ndarray:
        """Scores of the ``wanted`` candidates (NaN elsewhere) of a video with these features; nearby stretches
        are scored in one call over their union (rows in between are scored and dropped)."""
        left, right = self.scorer.halo
        out = np.full(self.n, np.nan, dtype=np.float32)
        spans = known_runs(wanted)
        while spans:
            start, stop = spans.pop(0)
            while spans and spans[0][0] - stop <= ROW_BLOCK:
                stop = spans.pop(0)[1]
            lo, hi = max(0, start - left), min(self.n, stop + right)
            out[start:stop] = self.scorer.score(features[lo:hi], lo, start, stop).numpy()
        return out

    def _span(self, u: int) -> tuple[int, int]:
        return u * self.unit, min(self.n, (u + 1) * self.unit)

    def _needed(self, u: int) -> np.ndarray:
        left, right = self.scorer.halo
        start, stop = self._span(u)
        span = np.arange(max(0, start - left), min(self.n, stop + right))
        return span[~self.known[span]]

    def _choose(self, todo: list[int]) -> list[int]:
        """The units of ``todo`` (best bound first) whose frames fit in the budget; a unit that no longer fits
        leaves room for cheaper ones."""
        chosen: list[int] = []
        spent = int(self.known.sum())
        for u in todo:
            need = len(self._needed(u))
            if spent + need <= self.budget:
                chosen.append(u)
                spent += need
        return chosen

    def _spare_rows(self, requested: int) -> int:
        """Frames that would fill the last encoder pass of a request of ``requested`` new frames, within budget."""
        spare = -requested % self.pass_rows
        return max(0, min(spare, self.budget - int(self.known.sum()) - requested))

    def _fill_coarse(self) -> None:
        """Add coarse frames in the widest gaps of the grid while they fill the coarse request's last pass."""
        coarse = self.coarse  # the refinement floor stays free, as the budget promises
        spare = min(self._spare_rows(len(coarse)), self.budget - self.refinement_floor - len(coarse))
        for _ in range(spare):
            edges = np.concatenate([coarse, [self.n]])
            gaps = np.diff(edges)
            widest = int(np.argmax(gaps))
            if gaps[widest] < 2:
                break
            coarse = np.insert(coarse, widest + 1, edges[widest] + gaps[widest] // 2)
        self.coarse = coarse

    def _fill_refinement(self, request: np.ndarray, ranked: list[int]) -> np.ndarray:
        """Frames of the units ``ranked`` next (best bound first), nearest each unit's middle first, that fill
        the last encoder pass of ``request``."""
        spare = self._spare_rows(len(request))
        if not spare:
            return np.zeros(0, dtype=np.int64)
        taken = np.zeros(self.n, dtype=bool)
        taken[request] = True
        fill: list[np.ndarray] = []
        for u in ranked:
            need = self._needed(u)
            need = need[~taken[need]]
            start, stop = self._span(u)
            need = need[np.argsort(np.abs(2 * need - (start + stop - 1)), kind="stable")][:spare]
            fill.append(need)
            taken[need] = True
            spare -= len(need)
            if not spare:
                break
        return np.concatenate(fill) if fill else np.zeros(0, dtype=np.int64)

    def _estimates(self) -> tuple[np.ndarray, np.ndarray]:
        """Estimated scores of every candidate from the coarse frames, and an optimistic version of them.

        Between two coarse frames of one scene (similar features) the features are interpolated linearly.
        Between two that differ, the cut lies somewhere in between: at the later one when it is an anchor
        (a keyframe), so the earlier frame holds up to it; elsewhere the estimate holds the nearer coarse frame
        and the optimistic version takes the better of holding either side over the whole stretch.
        """
        assert self.feats is not None
        n, coarse = self.n, self.coarse
        cf = self.feats[torch.from_numpy(coarse)]
        if len(coarse) < 2:
            zeros = np.zeros(n, dtype=np.int64)
            (est,) = self.scorer.estimate(cf, coarse, zeros, zeros, [(np.zeros(n), None)])
            return est, est
        pos = np.arange(n)
        right = np.clip(np.searchsorted(coarse, pos, side="right"), 1, len(coarse) - 1)
        left_i = right - 1
        a, b = coarse[left_i], coarse[right]
        t = np.clip((pos - a) / np.maximum(b - a, 1), 0.0, 1.0)
        similar = F.cosine_similarity(cf[:-1], cf[1:], dim=-1).numpy() >= self.same_scene
        smooth = similar[left_i]
        cut_at_anchor = ~smooth & np.isin(b, self.anchors if self.anchors is not None else [])
        hold_right = ~smooth & ~cut_at_anchor & (t >= 0.5)
        weight = np.where(smooth, t, hold_right.astype(np.float64))
        # One candidate in every estimate_stride, the ones between interpolated: the reconstruction is smooth
        # inside a stretch, and a unit's maximum still sees both sides of a jump (a cut) through its neighbours.
        sampled = np.unique(np.concatenate([np.arange(0, n, self.estimate_stride), [n - 1]]))
        unsure = ~smooth & ~cut_at_anchor
        # The other side held wherever the cut's place is unknown, every such stretch in one reconstruction.
        rows = np.flatnonzero(unsure)
        blends = [(weight, sampled)] + ([(np.where(unsure, 1.0 - weight, weight), rows)] if len(rows) else [])
        est, *alt = self.scorer.estimate(cf, coarse, left_i, right, blends)
        est = np.interp(pos, sampled, est).astype(np.float32)
        if not alt:
            return est, est
        optimistic = est.copy()
        optimistic[rows] = np.maximum(est[rows], alt[0])
        return est, optimistic

    def _margin(self, errors: list[float]) -> float:
        if len(errors) < self.min_errors:
            return max(0.0, max(errors))
        q_hi, q_mid = np.quantile(errors, [self.margin_quantile, 0.5])
        return max(0.0, float(q_hi + self.margin_slack * (q_hi - q_mid)))

    def _exhaustive(self) -> SearchResult:
        self._encode(np.arange(self.n))
        self._score_known()
        positions = _top_positions(self.scores, self.k)
        return SearchResult(positions, self.scores, self.known, self.scores.copy(), 0, "exhaustive", 0.0)

    # ------------------------------------------------------------------ the search
    def run(self) -> SearchResult:
        begin = time.perf_counter()
        result = self._search()
        result.policy_seconds = max(0.0, time.perf_counter() - begin - self.feature_seconds)
        return result

    def _search(self) -> SearchResult:
        n, k, unit = self.n, self.k, self.unit
        # Too few candidates for a coarse grid and k refined units to save anything: score them all.
        if self.budget >= n or len(self.coarse) <= k:
            return self._exhaustive()
        self._fill_coarse()
        self._encode(self.coarse)
        estimates, optimistic = self._estimates()
        unit_bound = np.maximum.reduceat(optimistic, np.arange(0, n, unit))
        refined = np.zeros(self.num_units, dtype=bool)
        margin = math.inf
        errors: list[float] = []
        rounds, stopped = 0, "complete"
        while not refined.all():
            exact = self.scores[np.isfinite(self.scores)]
            kth = -math.inf if len(exact) < k else float(np.sort(exact)[-k])
            bounds = np.where(refined, -math.inf, unit_bound + margin)
            cap = min(k, self.first_round_units if math.isinf(margin) else self.round_units)
            ranked = [int(u) for u in np.argsort(-bounds, kind="stable")[: 4 * k] if bounds[u] > kth]
            todo = ranked[:cap]
            if not todo:
                stopped = "bounds"
                break
            chosen = self._choose(todo)
            if not chosen:
                stopped = "budget"
                break
            request = np.unique(np.concatenate([self._needed(u) for u in chosen]))
            fill = self._fill_refinement(request, [u for u in ranked if u not in chosen])
            self._encode(np.concatenate([request, fill]))
            refined[chosen] = True
            self._score_known()
            rounds += 1
            for u in chosen:
                start, stop = self._span(u)
                errors.append(float(np.nanmax(self.scores[start:stop]) - unit_bound[u]))
            margin = self._margin(errors)
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
    anchors: np.ndarray | None = None,
    pass_rows: int = 1,
) -> SearchResult:
    """Run the coarse-to-fine policy: ``features(positions)`` is called for the candidates it needs.

    ``anchors`` are candidate positions where the content may change (the first candidate after each
    keyframe): each gets a coarse frame, so short scenes are never skipped (see :func:`_coarse_grid.coarse_grid`).
    ``pass_rows``: the encoder's frames per forward pass (requests are filled up to a multiple of it).
    """
    if num_candidates < 1:
        raise ValueError("there are no candidates to search")
    scorer = SpanScorer(agent, text, num_candidates, window_size=window_size, tau=tau)
    search = CoarseToFineSearch(
        scorer, features, k, coarse_step=coarse_step, max_encoded=max_encoded, cheap=cheap, anchors=anchors,
        pass_rows=pass_rows,
    )
    return search.run()
