"""The agent reproduces the reference arithmetic exactly, in linear memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tspo_sampler.scoring._agent import (
    TemporalAgent,
    dense_reference_scores,
    encoding_at,
    positional_encoding,
    window_positions,
)


def test_scores_equal_reference_fixture(sampler, cases):
    for case, data in cases:
        scores = sampler.score_features(
            torch.from_numpy(data["image_features"]),
            torch.from_numpy(data["text_features"]),
            torch.from_numpy(data["clip_scores"]),
            window_size=case["window"],
        )
        np.testing.assert_allclose(scores.numpy(), data["scores"], atol=1e-3, rtol=0)


def test_clip_scores_computed_when_omitted(sampler, cases):
    case, data = cases[1]
    given = sampler.score_features(
        torch.from_numpy(data["image_features"]), torch.from_numpy(data["text_features"]),
        torch.from_numpy(data["clip_scores"]), window_size=case["window"],
    )
    derived = sampler.score_features(
        torch.from_numpy(data["image_features"]), torch.from_numpy(data["text_features"]), window_size=case["window"]
    )
    np.testing.assert_allclose(derived.numpy(), given.numpy(), atol=1e-4)


@pytest.mark.parametrize("T,window", [(1, 12), (2, 12), (7, 3), (50, 1), (50, 8), (64, 12), (33, 40)])
def test_banded_equals_dense(T, window):
    torch.manual_seed(T * 100 + window)
    agent = TemporalAgent(dim=64, num_heads=8).eval()
    feats = torch.randn(T, 64)
    text = torch.randn(1, 64)
    with torch.no_grad():
        ours = agent(feats, text, window_size=window)
        dense = dense_reference_scores(agent, feats, text, window_size=window)
    torch.testing.assert_close(ours, dense, atol=2e-5, rtol=1e-5)


def test_window_positions_clamp_and_centre():
    pos = window_positions(5, 4)
    assert pos.tolist() == [[0, 0, 0, 1], [0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 4]]


def test_positional_encoding_formula():
    pe = positional_encoding(10, 8)
    t, i = 3, 2
    w = np.exp(-2 * i * np.log(10000.0) / 8)
    assert pe[t, 2 * i].item() == pytest.approx(np.sin(t / 10 * w), abs=1e-6)
    assert pe[t, 2 * i + 1].item() == pytest.approx(np.cos(t / 10 * w), abs=1e-6)


def test_memory_grows_with_t_times_w_not_t_squared():
    """10,800 candidates (three hours at 1 fps) run without a T x T matrix."""
    agent = TemporalAgent(dim=64, num_heads=8).eval()
    feats = torch.randn(10_800, 64)
    text = torch.randn(1, 64)
    allocations = []

    class Spy(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                allocations.append(out.numel())
            return out

    with torch.no_grad(), Spy():
        scores = agent(feats, text, window_size=12)
    assert scores.shape == (10_800,)
    # linear in T * w * D (a chunk of windows); never anything near T * T * heads = 933 million elements
    assert max(allocations) <= 10_800 * 12 * 64
    assert torch.isfinite(scores).all()


def test_bad_feature_inputs_name_the_argument():
    agent = TemporalAgent(dim=64, num_heads=8)
    with pytest.raises(ValueError, match="image_features"):
        agent(torch.randn(5, 32), torch.randn(1, 64))
    with pytest.raises(ValueError, match="text_features"):
        agent(torch.randn(5, 64), torch.randn(2, 64))
    with pytest.raises(ValueError, match="clip_scores"):
        agent(torch.randn(5, 64), torch.randn(1, 64), torch.randn(4))
    with pytest.raises(ValueError, match="window_size"):
        agent(torch.randn(5, 64), torch.randn(1, 64), window_size=0)
    with pytest.raises(ValueError, match="no frames"):
        agent(torch.randn(0, 64), torch.randn(1, 64))


@pytest.mark.parametrize(("total", "dim"), [(100, 16), (1800, 768), (3601, 512)])
def test_positional_encoding_rows_equal_the_full_table(total, dim):
    full = positional_encoding(total, dim)
    rng = np.random.default_rng(total)
    spans = [(0, 1), (total - 1, total), (0, total), (5, 70), (64, min(total, 128))]
    spans += [tuple(sorted(int(v) for v in rng.choice(total + 1, 2, replace=False))) for _ in range(6)]
    for start, stop in spans:
        assert torch.equal(positional_encoding(total, dim, rows=(start, stop)), full[start:stop]), (start, stop)
    with pytest.raises(ValueError, match="rows 5..101"):
        positional_encoding(100, 16, rows=(5, 101))


def test_encoding_at_arbitrary_positions_matches_the_table():
    positions = torch.tensor([0, 3, 17, 99])
    torch.testing.assert_close(encoding_at(positions, 100, 16), positional_encoding(100, 16)[positions])


@pytest.mark.parametrize("T,window,num_coarse", [(300, 12, 25), (64, 5, 16), (500, 1, 40)])
def test_blended_estimate_matches_the_agent_on_the_reconstruction(T, window, num_coarse):
    """score_blended is the agent run on the blended video; only the positional encoding is interpolated, which
    errs by about (coarse spacing / T)^2 / 8 (the search's grids are at most a few percent of T apart)."""
    torch.manual_seed(T)
    agent = TemporalAgent(dim=64, num_heads=8).eval()
    coarse = torch.cat([torch.tensor([0]), torch.randperm(T - 1)[: num_coarse - 1] + 1]).sort().values
    feats = torch.randn(num_coarse, 64)
    text = torch.randn(1, 64)
    right = torch.searchsorted(coarse, torch.arange(T), right=True).clamp(1, num_coarse - 1)
    left = right - 1
    weight = torch.rand(T)
    weight[::3] = torch.randint(0, 2, (len(weight[::3]),)).float()  # held stretches as well as interpolated ones
    video = torch.lerp(feats[left], feats[right], weight[:, None])
    with torch.no_grad():
        exact = agent(video, text, window_size=window)
        blended = agent.score_blended(feats, coarse, text, left=left, right=right, weight=weight, total=T,
                                      window_size=window)
        rows = torch.tensor([1, 2, 3, T // 2, T // 2 + 1, T - 1])
        some = agent.score_blended(feats, coarse, text, left=left, right=right, weight=weight, total=T, rows=rows,
                                   window_size=window)
    # Scores are cosines over tau (0.025): 2e-3 is 5e-5 in cosine, far below the estimate's own error.
    torch.testing.assert_close(blended, exact, atol=2e-3, rtol=0)
    torch.testing.assert_close(some, blended[rows], atol=1e-4, rtol=0)
    assert not torch.allclose(blended, agent(torch.lerp(feats[left], feats[right], 1 - weight[:, None]), text,
                                             window_size=window), atol=1e-2)
