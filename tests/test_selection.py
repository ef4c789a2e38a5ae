"""Selection methods equal the reference on the shared fixture and behave on edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tspo_sampler import SELECTION_METHODS, select_indices


@pytest.mark.parametrize("method", ["topk", "bin-max", "aks"])
def test_methods_equal_reference(method, cases):
    for case, data in cases:
        assert select_indices(data["scores"], case["k"], method) == case["selected"][method]
        assert select_indices(torch.from_numpy(data["scores"]), case["k"], method) == case["selected"][method]


@pytest.mark.parametrize("method", list(SELECTION_METHODS))
def test_every_method_returns_ascending_unique_positions(method):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=200)
    out = select_indices(scores, 16, method)
    assert out == sorted(set(out))
    assert all(0 <= p < 200 for p in out)
    if method != "aks":  # AKS may return fewer than k by design
        assert len(out) == 16


@pytest.mark.parametrize("method", list(SELECTION_METHODS))
def test_fewer_candidates_than_k_returns_all(method):
    assert select_indices([0.3, 0.1, 0.2], 5, method) == [0, 1, 2]
    assert select_indices([0.3, 0.1, 0.2], 3, method) == [0, 1, 2]


def test_topk_ties_go_to_earlier_candidate():
    assert select_indices([1.0, 2.0, 2.0, 2.0, 0.0], 2, "topk") == [1, 2]


def test_uniform_is_evenly_spaced():
    assert select_indices(np.zeros(101), 5, "uniform") == [0, 25, 50, 75, 100]


def test_bin_max_takes_best_of_each_bin_and_ties_to_earlier_anchor():
    scores = np.zeros(10)
    scores[4] = 5.0  # position 4 is 4 from anchor 0 (0) and... anchors for k=3 on T=10: 0, 4.5->4 (round), 9
    out = select_indices(scores, 3, "bin-max")
    assert 4 in out and len(out) == 3
    # position 2 is equidistant from anchors 0 and 4: it belongs to the earlier one
    scores = np.zeros(10)
    scores[2] = 1.0
    scores[1] = 0.5
    assert select_indices(scores, 3, "bin-max")[0] == 2


def test_aks_keeps_a_peaked_segment_whole():
    scores = np.zeros(64)
    scores[40:48] = 1.0
    assert select_indices(scores, 8, "aks") == list(range(40, 48))


def test_aks_constant_scores_do_not_divide_by_zero():
    out = select_indices(np.ones(64), 8, "aks")
    assert len(out) == 8


def test_bolt_follows_the_density():
    scores = np.zeros(100)
    scores[60:70] = 1.0
    out = select_indices(scores, 10, "bolt")
    assert sum(60 <= p < 70 for p in out) >= 8


@pytest.mark.parametrize("k", [0, -3])
def test_nonpositive_k(k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        select_indices([1.0, 2.0], k)


def test_non_integer_k():
    with pytest.raises(TypeError, match="k must be a positive integer"):
        select_indices([1.0, 2.0], 1.5)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown method 'best'.*topk.*bin-max.*aks"):
        select_indices([1.0, 2.0], 1, "best")


def test_bad_scores():
    with pytest.raises(ValueError, match="scores is empty"):
        select_indices([], 1)
    with pytest.raises(ValueError, match="1-D"):
        select_indices(np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match="NaN"):
        select_indices([1.0, float("nan")], 1)
