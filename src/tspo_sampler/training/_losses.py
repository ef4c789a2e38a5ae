"""Sampling and policy-gradient losses for the temporal agent.

The agent's logits ``s`` over ``T`` candidate frames define the distribution that Gumbel top-k samples
from: adding i.i.d. Gumbel noise to ``s`` and keeping the ``k`` largest, in decreasing order, draws an
ordered sample without replacement from the Plackett-Luce model

    P(i_1, ..., i_k) = prod_j exp(s_{i_j}) / sum_{t not in {i_1..i_{j-1}}} exp(s_t).

Two estimators turn group-relative advantages into a loss:

* ``reference`` (the paper): per rollout, the mean over chosen frames of ``exp(logp - logp.detach())``
  times the advantage, with ``logp = log_softmax(s)`` at the chosen positions. Its gradient is that of
  ``mean_j log softmax(s)_{i_j}``, an approximation of the sample's log-probability that ignores the
  "without replacement" renormalisation.
* ``plackett-luce``: the exact log-probability of the drawn ordered sample.

Both support PPO-style clipped ratios against the log-probabilities at rollout time, so several inner
epochs can reuse the same (expensive) rollouts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ADVANTAGE_EPS = 1e-4


def gumbel_topk(
    logits: torch.Tensor, k: int, num_samples: int = 1, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw ``num_samples`` ordered samples of ``k`` distinct positions (``num_samples x k``, long).

    Row ``g`` lists positions in the order Plackett-Luce draws them (largest perturbed logit first).
    """
    if logits.ndim != 1:
        raise ValueError(f"logits must be 1-D, got shape {tuple(logits.shape)}")
    T = logits.shape[0]
    if not 1 <= k <= T:
        raise ValueError(f"k must be between 1 and the number of candidates ({T}), got {k}")
    u = torch.rand((num_samples, T), generator=generator, dtype=torch.float64)
    u = u.clamp_(min=torch.finfo(torch.float64).tiny, max=1.0 - 1e-16)
    gumbel = -torch.log(-torch.log(u))
    perturbed = logits.detach().double().cpu().unsqueeze(0) + gumbel
    return perturbed.topk(k, dim=1).indices.to(logits.device)


def plackett_luce_log_prob(logits: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """Exact log-probability of each ordered sample (``G x k`` positions) under Plackett-Luce (``G``)."""
    if samples.ndim == 1:
        samples = samples.unsqueeze(0)
    G, k = samples.shape
    s = logits.unsqueeze(0).expand(G, -1)
    chosen = s.gather(1, samples)  # G x k
    removed = torch.zeros_like(s, dtype=torch.bool)
    total = torch.zeros(G, dtype=logits.dtype, device=logits.device)
    neg_inf = torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
    for j in range(k):
        lse = torch.logsumexp(torch.where(removed, neg_inf, s), dim=1)
        total = total + chosen[:, j] - lse
        removed = removed.scatter(1, samples[:, j : j + 1], True)
    return total


def reference_log_probs(logits: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """``log_softmax(logits)`` at the chosen positions (``G x k``): the paper's per-frame log-probs."""
    if samples.ndim == 1:
        samples = samples.unsqueeze(0)
    return F.log_softmax(logits, dim=-1).unsqueeze(0).expand(samples.shape[0], -1).gather(1, samples)


def sample_log_probs(logits: torch.Tensor, samples: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-rollout log-probabilities the estimator uses: ``G x k`` (reference) or ``G`` (plackett-luce)."""
    if estimator == "reference":
        return reference_log_probs(logits, samples)
    if estimator == "plackett-luce":
        return plackett_luce_log_prob(logits, samples)
    raise ValueError(f"unknown estimator {estimator!r}")


def group_advantages(rewards: torch.Tensor, eps: float = ADVANTAGE_EPS) -> torch.Tensor:
    """``(r - mean) / (std + eps)`` within each group (last dimension), unbiased std like the reference."""
    mean = rewards.mean(dim=-1, keepdim=True)
    std = rewards.std(dim=-1, keepdim=True) if rewards.shape[-1] > 1 else torch.zeros_like(mean)
    return (rewards - mean) / (std + eps)


def policy_loss(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    *,
    clip_range: float | None = 0.2,
    ratio_level: str = "rollout",
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clipped policy-gradient loss, averaged over rollouts.

    ``new_log_probs``/``old_log_probs``: ``G`` (sequence-level, Plackett-Luce) or ``G x k`` (per chosen
    frame, reference). ``advantages``: ``G``.

    ``ratio_level`` (``G x k`` inputs only): ``"rollout"`` (default) clips one ratio per rollout,
    ``exp(mean_j (logp_gj - logp_old_gj))``; ``"frame"`` clips each frame's ratio and averages the
    clipped objectives over the rollout's frames. On-policy (``old = new.detach()``) both have exactly the
    gradient of the paper's loss ``-mean_g A_g * mean_j exp(logp_gj - logp_gj.detach())``. They differ
    once ``ppo_epochs > 1`` moves the policy: per-frame clipping drops single frames' terms from a
    rollout, and since ``log_softmax`` shares one normaliser, the group's normaliser gradients (which
    cancel on-policy because the advantages sum to zero) stop cancelling; the frames promoted by good
    rollouts clip first, so what is left pushes up the normaliser, i.e. the currently dominant frames,
    and the agent's distribution collapses onto them (``benchmarks/learnability.py``: no learning at
    all with 4 epochs). Clipping whole rollouts keeps each rollout's terms together.
    """
    if ratio_level not in ("rollout", "frame"):
        raise ValueError(f"ratio_level must be 'rollout' or 'frame', got {ratio_level!r}")
    delta = new_log_probs - old_log_probs.detach()
    if delta.ndim == 2 and ratio_level == "rollout":
        delta = delta.mean(dim=1)
    ratio = torch.exp(delta)
    adv = advantages.detach()
    if ratio.ndim == 2:
        adv = adv.unsqueeze(1)
    unclipped = ratio * adv
    if clip_range is None:
        objective = unclipped
        clipped_frac = 0.0
    else:
        clipped = ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * adv
        objective = torch.minimum(unclipped, clipped)
        clipped_frac = float((clipped < unclipped).float().mean())
    if objective.ndim == 2:
        objective = objective.mean(dim=1)
    loss = -objective.mean()
    stats = {"clip_frac": clipped_frac, "ratio": float(ratio.detach().mean())}
    return loss, stats


def categorical_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact ``KL(softmax(logits) || softmax(ref_logits))`` over the candidates."""
    logp = F.log_softmax(logits, dim=-1)
    logq = F.log_softmax(ref_logits.detach(), dim=-1)
    return (logp.exp() * (logp - logq)).sum(dim=-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of ``softmax(logits)``."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)
