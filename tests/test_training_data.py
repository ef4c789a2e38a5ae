"""Training rows (JSONL and TSPO-10K), bad-row reports, and the dual-style composition at the feature level."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from tspo_sampler.features._cache import VideoFeatures
from tspo_sampler.training._data import compose_clips, general_episode, load_examples, parse_row, specific_episode


def _write(path, rows):
    with open(path, "w") as fh:
        for r in rows:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")


@pytest.fixture
def videos(tmp_path):
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"\0")
    return tmp_path


def test_jsonl_rows_and_bad_rows_with_line_numbers(videos, caplog):
    rows = [
        {"video": "a.mp4", "question": "What color is the car?", "options": ["red", "blue", "green"], "answer": "B",
         "span": [1.0, 4.5], "type": "specific"},
        {"video": "missing.mp4", "question": "q?", "options": ["x", "y"], "answer": "A"},
        "",
        "{not json",
        {"video": "b.mp4", "question": "q?", "options": ["x", "y"], "answer": "<answer>z</answer>"},
        {"video": "b.mp4", "question": "q?", "options": {"A": "x", "B": "y"}, "answer": 1},
        {"video": "b.mp4", "question": "q?", "options": ["x", "y"], "answer": "A", "span": [5, 2]},
        {"video": "b.mp4", "question": "q?", "options": ["x", "y"], "answer": "A", "type": "weird"},
        {"video": "b.mp4", "question": "q?", "options": ["only one"], "answer": "A"},
        {"question": "q?", "options": ["x", "y"], "answer": "A"},
    ]
    path = videos / "train.jsonl"
    _write(path, rows)
    with caplog.at_level(logging.WARNING):
        examples, bad = load_examples(path)
    assert [e.line for e in examples] == [1, 6]
    first = examples[0]
    assert first.video == str(videos / "a.mp4")
    assert (first.answer, first.type, first.span) == ("B", "specific", (1.0, 4.5))
    assert first.options == ["red", "blue", "green"]
    assert examples[1].answer == "B" and examples[1].options == ["x", "y"]
    assert [b.line for b in bad] == [2, 4, 5, 7, 8, 9, 10]
    reasons = {b.line: b.reason for b in bad}
    assert "video not found" in reasons[2]
    assert "invalid JSON" in reasons[4]
    assert "unparsable answer" in reasons[5]
    assert "span" in reasons[7]
    assert "type" in reasons[8]
    assert "at least 2 options" in reasons[9]
    assert "missing 'video'" in reasons[10]
    assert "line 2" in caplog.text and "skipped 7 bad row(s)" in caplog.text


def test_tspo10k_row(videos):
    row = {
        "video": "a.mp4",
        "original_question": "<image>\nWhat is the scene at the beginning of the video?\nA. Windswept sandy shore.\n"
                             "B. enchanted, mist-shrouded forest.\nC. Boundless grassland.\nD. trumpeting elephants.",
        "original_answer": "A. Windswept sandy shore.",
        "problem": "<image>\nWhat is the scene at the beginning of the video?",
        "solution": "<answer>a</answer>",
        "type": "general",
    }
    ex = parse_row(row, video_root=videos)
    assert ex.question == "What is the scene at the beginning of the video?"
    assert ex.options[0] == "Windswept sandy shore." and len(ex.options) == 4
    assert ex.answer == "A" and ex.type == "general"
    prompt = ex.prompt()
    assert prompt.splitlines()[0] == ex.question
    assert "B. enchanted, mist-shrouded forest." in prompt and prompt.rstrip().endswith("directly.")
    paren = dict(row, original_question="<image>\nWhat?\n(A) x\n(B) y\n(C) z", problem="<image>\nWhat?",
                 solution="<answer>c</answer>")
    ex2 = parse_row(paren, video_root=videos)
    assert ex2.options == ["x", "y", "z"] and ex2.answer == "C"


def _feats(name, T, D=8, offset=0):
    f = torch.arange(T * D, dtype=torch.float32).reshape(T, D) + offset
    return VideoFeatures(f, np.arange(T, dtype=np.int64) * 10 + offset, np.arange(T, dtype=np.float64), float(T), 1.0,
                         name, {})


def test_composition_mask_matches_spliced_clips():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n_true = 1 + trial % 4
        plan = compose_clips(120, [60, 30, 200, 45], rng, clip_length=50, num_true_clips=n_true)
        assert len(plan.clip_bounds) == n_true + 4
        assert plan.mask.sum() == 50 * n_true
        for start, end, relevant in plan.clip_bounds:
            assert np.all(plan.mask[start:end] == relevant)
            assert np.all((plan.source_video[start:end] == 0) == relevant)
            pos = plan.source_position[start:end]
            assert np.all(np.diff(pos) > 0)  # each clip keeps temporal order, no repeats
        assert plan.mask.tolist() == (plan.source_video == 0).tolist()
    # a distractor shorter than a clip contributes all its candidates
    assert (plan.source_video == 2).sum() == 30


def test_specific_episode_features_and_sources():
    from tspo_sampler.training._data import TrainExample

    own = _feats("own", 80)
    d1, d2 = _feats("d1", 70, offset=10000), _feats("d2", 60, offset=20000)
    ex = TrainExample(video="own", question="q", options=["x", "y"], answer="A", type="specific")
    ep = specific_episode(ex, own, [("d1", d1), ("d2", d2)], np.random.default_rng(1), k=16, clip_length=50,
                          num_true_clips=2, fps=1.0)
    assert ep.composed and ep.videos == ["own", "d1", "d2"] and ep.k == 16
    assert ep.features.shape == (200, 8) and ep.mask.sum() == 100
    srcs = [own, d1, d2]
    for t in range(ep.num_candidates):
        src = srcs[ep.source_video[t]]
        j = int(np.nonzero(src.candidate_indices == ep.source_index[t])[0][0])
        assert torch.equal(ep.features[t], src.features[j])  # feature row = the source candidate's feature
        assert ep.mask[t] == (ep.source_video[t] == 0)


def test_general_episode_mask_from_span():
    from tspo_sampler.training._data import TrainExample

    own = _feats("own", 10)
    ex = TrainExample(video="own", question="q", options=["x", "y"], answer="A", span=(2.0, 4.0))
    ep = general_episode(ex, own, 16)
    assert ep.k == 10 and not ep.composed
    assert ep.mask.tolist() == [False, False, True, True, True] + [False] * 5
    ex.span = None
    assert general_episode(ex, own, 4).mask is None
