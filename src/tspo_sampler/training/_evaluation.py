"""Held-out evaluation of the agent against raw CLIP and uniform sampling, over every process's share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..scoring._selection import select_indices
from ._data import TrainExample
from ._episodes import make_selection
from ._rewards import accuracy_reward, temporal_reward

METHODS = ("agent", "clip", "uniform")


@torch.no_grad()
def evaluate(
    trainer: Any, examples: Sequence[TrainExample], methods: Sequence[str] = ("agent",), *, answers: bool = False
) -> dict[str, float]:
    """``GRPOTrainer.evaluate``: hit rate (and with ``answers`` the MLLM's accuracy) per method.

    ``trainer`` provides the episodes, the agent's logits and the answerer; each process takes every
    ``world``-th example and the sums are reduced, so all processes return the same numbers.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown evaluation method {unknown[0]!r}; choose from {METHODS}")
    tau = trainer.tau_at(trainer.global_step)
    sums: dict[str, float] = defaultdict(float)
    for i in range(trainer.rank, len(examples), trainer.world):
        ex = examples[i]
        ep = trainer.build_episode(ex, np.random.default_rng([trainer.config.seed, 11, i]))
        text = trainer.text_features(ex.question).to(trainer.device)
        feats = ep.features.to(trainer.device)
        for method in methods:
            if method == "agent":
                scores = trainer.agent_logits(trainer.agent, ep, tau)
                pos = select_indices(scores.cpu(), ep.k, "topk")
            elif method == "clip":
                scores = F.cosine_similarity(text, feats, dim=-1)
                pos = select_indices(scores.cpu(), ep.k, "topk")
            else:  # uniform
                scores = torch.zeros(ep.num_candidates)
                pos = select_indices(scores, ep.k, "uniform")
            if ep.mask is not None:
                sums[f"{method}/hit_rate"] += temporal_reward(pos, ep.mask)
                sums[f"{method}/n_hit"] += 1
            if answers:
                frames = trainer.episodes.frames(ep, np.asarray(pos))
                sel = make_selection(ep, pos, scores.detach().cpu().numpy(), frames)
                pred, _ = trainer.answer([sel], ex)
                sums[f"{method}/accuracy"] += accuracy_reward(pred[0], ex.answer)
                sums[f"{method}/n_acc"] += 1
    keys = [f"{m}/{s}" for m in methods for s in ("hit_rate", "n_hit", "accuracy", "n_acc")]
    vals = torch.tensor([sums.get(k, 0.0) for k in keys], dtype=torch.float64, device=trainer.device)
    if trainer.world > 1:
        vals = trainer.accelerator.reduce(vals, reduction="sum")
    tot = dict(zip(keys, vals.tolist(), strict=True))
    out = {}
    for m in methods:
        if tot[f"{m}/n_hit"]:
            out[f"{m}/hit_rate"] = tot[f"{m}/hit_rate"] / tot[f"{m}/n_hit"]
        if tot[f"{m}/n_acc"]:
            out[f"{m}/accuracy"] = tot[f"{m}/accuracy"] / tot[f"{m}/n_acc"]
    return out
