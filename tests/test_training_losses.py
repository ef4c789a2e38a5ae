"""Gumbel top-k sampling, the Plackett-Luce log-probability and the policy losses."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from tspo_sampler.training._losses import (
    categorical_kl,
    entropy,
    group_advantages,
    gumbel_topk,
    plackett_luce_log_prob,
    policy_loss,
    reference_log_probs,
    sample_log_probs,
)


@pytest.mark.parametrize("T,k", [(4, 1), (4, 2), (4, 4), (5, 3)])
def test_plackett_luce_sums_to_one_over_orderings(T, k):
    logits = torch.randn(T, dtype=torch.float64) * 2
    samples = torch.tensor(list(itertools.permutations(range(T), k)))
    total = plackett_luce_log_prob(logits, samples).exp().sum()
    assert float(total) == pytest.approx(1.0, abs=1e-10)


def test_plackett_luce_first_pick_is_softmax():
    logits = torch.randn(6, dtype=torch.float64)
    lp = plackett_luce_log_prob(logits, torch.arange(6).unsqueeze(1))
    assert torch.allclose(lp, torch.log_softmax(logits, 0))


def test_gumbel_topk_samples_from_plackett_luce():
    torch.manual_seed(0)
    logits = torch.tensor([1.5, 0.2, -0.3, 0.8])
    n = 40000
    gen = torch.Generator().manual_seed(1)
    s = gumbel_topk(logits, 2, n, generator=gen)
    assert s.shape == (n, 2)
    assert all(len(set(r)) == 2 for r in s[:200].tolist())
    counts = {}
    for a, b in s.tolist():
        counts[(a, b)] = counts.get((a, b), 0) + 1
    for pair in itertools.permutations(range(4), 2):
        p = float(plackett_luce_log_prob(logits.double(), torch.tensor([pair])).exp())
        assert counts.get(pair, 0) / n == pytest.approx(p, abs=0.012)


def test_gumbel_topk_is_reproducible_and_checks_k():
    logits = torch.randn(10)
    a = gumbel_topk(logits, 3, 5, generator=torch.Generator().manual_seed(3))
    b = gumbel_topk(logits, 3, 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        gumbel_topk(logits, 11)
    with pytest.raises(ValueError):
        gumbel_topk(logits, 0)


def test_reference_log_probs_are_log_softmax_at_chosen():
    logits = torch.randn(7)
    samples = torch.tensor([[0, 3], [6, 1]])
    expected = torch.log_softmax(logits, 0)[samples]
    assert torch.allclose(reference_log_probs(logits, samples), expected)
    assert sample_log_probs(logits, samples, "plackett-luce").shape == (2,)
    with pytest.raises(ValueError):
        sample_log_probs(logits, samples, "nope")


def test_group_advantages_match_reference_formula():
    r = torch.tensor([1.0, 0.0, 1.0, 2.0])
    adv = group_advantages(r)
    assert torch.allclose(adv, (r - r.mean()) / (r.std() + 1e-4))
    assert torch.allclose(group_advantages(torch.ones(4)), torch.zeros(4))


@pytest.mark.parametrize("ratio_level", ["rollout", "frame"])
def test_on_policy_loss_equals_reference_loss_and_gradient(ratio_level):
    logits = torch.randn(9, requires_grad=True)
    samples = torch.tensor([[0, 4, 2], [1, 2, 8], [5, 6, 7]])
    adv = torch.tensor([0.5, -1.0, 0.5])
    lp = reference_log_probs(logits, samples)
    loss, stats = policy_loss(lp, lp.detach(), adv, clip_range=0.2, ratio_level=ratio_level)
    (g,) = torch.autograd.grad(loss, logits)
    # the paper: -(mean_g A_g * mean_j exp(lp - lp.detach()))
    logits2 = logits.detach().clone().requires_grad_(True)
    lp2 = reference_log_probs(logits2, samples)
    ref = -(torch.exp(lp2 - lp2.detach()).mean(dim=1) * adv).mean()
    (g2,) = torch.autograd.grad(ref, logits2)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()))
    assert torch.allclose(g, g2)
    assert stats["clip_frac"] == 0.0


def test_plackett_luce_gradient_is_reinforce():
    logits = torch.randn(6, requires_grad=True)
    samples = torch.tensor([[0, 1], [2, 3]])
    adv = torch.tensor([1.0, -1.0])
    lp = plackett_luce_log_prob(logits, samples)
    loss, _ = policy_loss(lp, lp.detach(), adv, clip_range=None)
    (g,) = torch.autograd.grad(loss, logits)
    lp2 = plackett_luce_log_prob(logits, samples)
    (g2,) = torch.autograd.grad(-(lp2 * adv).mean(), logits)
    assert torch.allclose(g, g2)


def test_ppo_clipping_stops_gradient_beyond_the_range():
    new = torch.tensor([math.log(1.5), math.log(0.5)], requires_grad=True)
    old = torch.zeros(2)
    adv = torch.tensor([1.0, -1.0])
    loss, stats = policy_loss(new, old, adv, clip_range=0.2)
    (g,) = torch.autograd.grad(loss, new)
    assert torch.allclose(g, torch.zeros(2))  # both ratios are clipped on the side that would push further
    assert stats["clip_frac"] == 1.0
    new2 = torch.tensor([math.log(0.9)], requires_grad=True)
    loss2, _ = policy_loss(new2, torch.zeros(1), torch.tensor([1.0]), clip_range=0.2)
    (g2,) = torch.autograd.grad(loss2, new2)
    assert float(g2) == pytest.approx(-0.9)


def test_reference_ppo_clips_whole_rollouts_by_default():
    # rollout 0 (A > 0): one frame's ratio is far above the range, the other's below 1; the rollout's
    # geometric-mean ratio exp(mean log ratio) = 1.05 is inside it
    new = torch.tensor([[math.log(1.5), math.log(1.05**2 / 1.5)]], requires_grad=True)
    old = torch.zeros(1, 2)
    adv = torch.tensor([1.0])
    loss, stats = policy_loss(new, old, adv, clip_range=0.2)
    (g,) = torch.autograd.grad(loss, new)
    assert stats["clip_frac"] == 0.0
    assert torch.allclose(g, torch.full((1, 2), -1.05 / 2))  # both frames keep their gradient
    # per frame, the first frame's term is dropped and only the second keeps a gradient
    loss_f, stats_f = policy_loss(new, old, adv, clip_range=0.2, ratio_level="frame")
    (gf,) = torch.autograd.grad(loss_f, new)
    assert stats_f["clip_frac"] == 0.5
    assert float(gf[0, 0]) == 0.0 and float(gf[0, 1]) < 0
    # a rollout whose mean ratio leaves the range is clipped as a whole
    far = torch.tensor([[math.log(1.5), math.log(1.4)]], requires_grad=True)
    loss2, stats2 = policy_loss(far, old, adv, clip_range=0.2)
    (g2,) = torch.autograd.grad(loss2, far)
    assert torch.allclose(g2, torch.zeros(1, 2)) and stats2["clip_frac"] == 1.0
    with pytest.raises(ValueError, match="ratio_level"):
        policy_loss(new, old, adv, ratio_level="token")


def test_kl_and_entropy():
    a = torch.randn(8)
    assert float(categorical_kl(a, a)) == pytest.approx(0.0, abs=1e-7)
    assert float(categorical_kl(a, torch.zeros(8))) > 0
    assert float(entropy(torch.zeros(8))) == pytest.approx(math.log(8))
