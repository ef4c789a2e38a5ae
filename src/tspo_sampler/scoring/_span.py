"""Exact scores of candidate spans from their features plus halo, and estimates from coarse frames: what the
coarse-to-fine search (:mod:`tspo_sampler.scoring._search`) asks of the agent."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ._agent import TemporalAgent, blended_rows, positional_encoding, window_halo


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
        self._encoding_blocks: dict[int, torch.Tensor] = {}  # grid block -> its rows of the positional encoding

    def estimate(
        self, coarse_features: torch.Tensor, coarse_positions: np.ndarray, left: np.ndarray, right: np.ndarray,
        blends: list[tuple[np.ndarray, np.ndarray | None]],
    ) -> list[np.ndarray]:
        """Estimated scores of videos reconstructed from coarse frames: for each ``(weight, rows)`` of ``blends``,
        candidate ``t`` gets ``lerp(coarse_features[left[t]], coarse_features[right[t]], weight[t])`` and the
        scores of ``rows`` (all candidates when ``None``) come back. See :meth:`TemporalAgent.score_blended`."""
        cf = coarse_features.float().to(self.device)

        def tensor(a: np.ndarray, dtype: torch.dtype = torch.int64) -> torch.Tensor:
            return torch.from_numpy(np.asarray(a)).to(device=self.device, dtype=dtype)

        left_t, right_t, positions = tensor(left), tensor(right), tensor(coarse_positions)
        out = []
        with torch.inference_mode():
            projected = None if self.agent is None else self.agent.project_coarse(cf, positions, total=self.total)
            for weight, rows in blends:
                weight_t, rows_t = tensor(weight, torch.float32), None if rows is None else tensor(rows)
                if self.agent is None:
                    frames = torch.arange(self.total, device=self.device) if rows_t is None else rows_t
                    blended = blended_rows(frames, left_t, right_t, weight_t, positions, cf, encoding=False)
                    scores = F.cosine_similarity(self.text, blended, dim=-1) / self.tau
                else:
                    scores = self.agent.score_blended(
                        cf, positions, self.text, left=left_t, right=right_t, weight=weight_t, total=self.total,
                        rows=rows_t, window_size=self.window_size, tau=self.tau, projected=projected,
                    )
                out.append(scores.cpu().numpy())
        return out

    def score(self, features: torch.Tensor, offset: int, start: int, stop: int) -> torch.Tensor:
        """Scores of candidates ``start .. stop-1`` given the features of candidates ``offset ..``."""
        feats = features.float().to(self.device)
        clip = F.cosine_similarity(self.text, feats, dim=-1)
        if self.agent is None:
            return (clip[start - offset : stop - offset] / self.tau).cpu()
        with torch.inference_mode():
            return self.agent.score_span(
                feats, self.text, clip, offset=offset, total=self.total, start=start, stop=stop,
                window_size=self.window_size, tau=self.tau,
                # Each grid block of the encoding computed once per search, only where a span needs it.
                position_encoding=positional_encoding(
                    self.total, feats.shape[1], device=self.device, rows=(offset, offset + len(feats)),
                    blocks=self._encoding_blocks,
                ),
            ).cpu()
