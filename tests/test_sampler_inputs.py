"""select_frames on in-memory inputs, and every bad input gets a clear error naming the argument."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tspo_sampler import Selection


@pytest.mark.parametrize("method", ["topk", "bin-max", "aks"])
def test_select_frames_from_frames_equals_reference(uncached_sampler, cases, method):
    for case, data in cases:
        sel = uncached_sampler.select_frames(
            data["frames"], case["question"], case["k"], method=method, window_size=case["window"]
        )
        assert sel.indices == case["selected"][method]
        np.testing.assert_allclose(sel.scores, data["scores"], atol=2e-3)


def test_every_input_form_gives_the_same_selection(uncached_sampler, cases):
    case, data = cases[1]
    frames = data["frames"]
    forms = {
        "array": frames,
        "tensor_thwc": torch.from_numpy(frames),
        "tensor_tchw": torch.from_numpy(frames).permute(0, 3, 1, 2),
        "float_0_255": torch.from_numpy(frames).permute(0, 3, 1, 2).float(),
        "float_0_1": torch.from_numpy(frames).float() / 255.0,
        "pil": [Image.fromarray(f) for f in frames],
    }
    results = {name: uncached_sampler.select_frames(v, case["question"], case["k"]) for name, v in forms.items()}
    for name, sel in results.items():
        assert sel.indices == case["selected"]["topk"], name
        assert sel.frames.dtype == np.uint8 and sel.frames.shape == (case["k"], 48, 64, 3), name
        np.testing.assert_array_equal(sel.frames, frames[sel.indices])


def test_selection_fields_and_json(uncached_sampler, cases):
    case, data = cases[0]
    sel = uncached_sampler.select_frames(data["frames"], case["question"], 4, fps=2.0)
    assert isinstance(sel, Selection) and len(sel) == 4
    assert sel.timestamps == [i / 2.0 for i in sel.indices]
    assert sel.candidate_indices == list(range(case["T"]))
    assert sel.duration == case["T"] / 2.0 and sel.fps == 2.0
    assert sel.method == "topk" and sel.question == case["question"]
    assert sel.scores.shape == (case["T"],)
    d = json.loads(json.dumps(sel.to_dict()))
    assert d["indices"] == sel.indices and d["num_candidates"] == case["T"] and len(d["scores"]) == case["T"]


def test_return_frames_false(uncached_sampler, cases):
    case, data = cases[0]
    assert uncached_sampler.select_frames(data["frames"], case["question"], 3, return_frames=False).frames is None


def test_k_above_candidates_returns_every_candidate(uncached_sampler, cases):
    case, data = cases[0]
    sel = uncached_sampler.select_frames(data["frames"][:5], case["question"], 16)
    assert sel.indices == [0, 1, 2, 3, 4]


def test_max_candidates_spreads_evenly(uncached_sampler, cases):
    case, data = cases[1]
    sel = uncached_sampler.select_frames(data["frames"], case["question"], 4, max_candidates=10)
    assert len(sel.candidate_indices) == 10
    assert sel.candidate_indices[0] == 0 and sel.candidate_indices[-1] == case["T"] - 1
    assert set(sel.indices) <= set(sel.candidate_indices)


def test_clip_and_uniform_methods(uncached_sampler, cases):
    case, data = cases[1]
    clip = uncached_sampler.select_frames(data["frames"], case["question"], 8, method="clip")
    assert clip.indices == sorted(np.argsort(-data["clip_scores"], kind="stable")[:8].tolist())
    uni = uncached_sampler.select_frames(data["frames"], case["question"], 5, method="uniform")
    assert uni.indices == [0, 32, 64, 95, 127]


FRAMES = np.zeros((6, 16, 16, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "kwargs,exc,pattern",
    [
        ({"k": 0}, ValueError, "k must be a positive integer"),
        ({"k": -1}, ValueError, "k must be a positive integer"),
        ({"k": 2.5}, TypeError, "k must be a positive integer"),
        ({"question": None}, ValueError, "question is None"),
        ({"question": "   "}, ValueError, "question is blank"),
        ({"question": 42}, TypeError, "question must be a string"),
        ({"method": "best"}, ValueError, r"unknown method 'best'; valid methods: topk, bin-max, aks"),
        ({"fps": 0}, ValueError, "fps must be a positive number"),
        ({"max_candidates": 0}, ValueError, "max_candidates must be a positive integer"),
        ({"window_size": 0}, ValueError, "window_size must be a positive integer"),
    ],
)
def test_bad_arguments(uncached_sampler, kwargs, exc, pattern):
    args = {"video": FRAMES, "question": "what happens?", "k": 2, **kwargs}
    with pytest.raises(exc, match=pattern):
        uncached_sampler.select_frames(**args)


@pytest.mark.parametrize(
    "video,exc,pattern",
    [
        (np.zeros((0, 16, 16, 3), dtype=np.uint8), ValueError, "no frames"),
        (np.zeros((16, 16, 3), dtype=np.uint8), ValueError, "T x H x W x 3"),
        (np.zeros((4, 16, 16, 4), dtype=np.uint8), ValueError, "3 RGB channels"),
        (np.zeros((4, 0, 16, 3), dtype=np.uint8), ValueError, "empty"),
        ([], ValueError, "empty list"),
        ([1, 2, 3], TypeError, "PIL images"),
        ([Image.new("RGB", (8, 8)), Image.new("RGB", (9, 8))], ValueError, "one size"),
        (12345, TypeError, "video must be a path"),
        (None, TypeError, "video must be a path"),
    ],
)
def test_bad_videos(uncached_sampler, video, exc, pattern):
    with pytest.raises(exc, match=pattern):
        uncached_sampler.select_frames(video, "what happens?", 2)
