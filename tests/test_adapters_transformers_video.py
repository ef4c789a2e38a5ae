"""TSPO frames through transformers' video loading: ``load_video(..., sample_indices_fn=...)`` and
processors called with video paths, on real files and the tiny reference checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.video_utils import VideoMetadata, load_video

from media import make_video, read_stamp
from tiny_mllms import build_qwen2_5_vl, make_selection
from tspo_sampler.adapters import qwen2_5_vl, transformers_video

DURATION, FPS = 8.0, 10.0


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return str(make_video(tmp_path_factory.mktemp("tv") / "clip.mp4", duration=DURATION, fps=FPS, size=(160, 120)))


@pytest.fixture(scope="module")
def qwen():
    torch.set_num_threads(1)
    return build_qwen2_5_vl()


def test_load_video_with_tspo_indices(sampler, video):
    fn = transformers_video.sample_indices_fn(sampler, video, "What colour is the bar?", k=4)
    frames, metadata = load_video(video, sample_indices_fn=fn, backend="pyav")
    sel = fn.selection
    assert sel is not None and len(sel.indices) == 4
    assert list(map(int, metadata.frames_indices)) == sel.indices
    assert frames.shape[0] == 4
    # the decoded frames are the chosen instants
    assert [read_stamp(f) for f in frames] == pytest.approx(sel.timestamps, abs=0.011)
    assert metadata.timestamps == pytest.approx(sel.timestamps, abs=1e-6)

    frames2, metadata2, sel2 = transformers_video.load_video(sampler, video, "What colour is the bar?", k=4)
    assert sel2.indices == sel.indices and np.array_equal(frames2, frames)


def test_indices_unique_sorted_and_clipped(sampler, video):
    fn = transformers_video.TSPOSampleIndices(sampler, video, "q", k=4)
    fn.select().indices = [70, 5, 5, 900]  # the cached selection is reused by __call__
    out = fn(metadata=VideoMetadata(total_num_frames=80, fps=FPS))
    assert out.tolist() == [5, 70, 79]


def test_processor_with_paths_gets_tspo_frames(sampler, video, qwen):
    _, processor = qwen
    text = processor.apply_chat_template(
        qwen2_5_vl.build_messages(make_selection(2), "Which second?"), tokenize=False, add_generation_prompt=True
    )
    with transformers_video.use_tspo(processor, sampler, "Which second?", k=4) as selections:
        inputs = processor(text=[text, text], videos=[video, video], padding=True, return_tensors="pt")
    assert "fetch_videos" not in vars(processor.video_processor)  # restored
    assert len(selections) == 2 and selections[0].indices == selections[1].indices
    assert inputs["video_grid_thw"][:, 0].tolist() == [2, 2]
    # real metadata reached the processor: 2 frames per grid over 8 s / 4 frames
    assert inputs["second_per_grid_ts"].tolist() == pytest.approx([2 * DURATION / 4] * 2, rel=1e-3)


def test_use_tspo_per_video_questions(sampler, video, qwen):
    _, processor = qwen
    vp = processor.video_processor
    with transformers_video.use_tspo(vp, sampler, ["first?", "second?"], k=2) as selections:
        vp(videos=[video, video], return_tensors="pt")
    assert [s.question for s in selections] == ["first?", "second?"]
    with pytest.raises(ValueError, match="more videos"):
        with transformers_video.use_tspo(vp, sampler, ["a", "b"], k=2):
            vp(videos=[video, video, video], return_tensors="pt")


def test_sampler_method_gives_a_bound_sample_indices_fn(sampler, video):
    fn = sampler.sample_indices_fn(video, "What colour is the bar?", k=3, method="bin-max")
    frames, metadata = load_video(video, sample_indices_fn=fn, backend="pyav")
    assert fn.selection.method == "bin-max" and len(frames) == 3
    assert [read_stamp(f) for f in frames] == pytest.approx(fn.selection.timestamps, abs=0.011)
    with pytest.raises(ValueError, match="question is blank"):
        sampler.sample_indices_fn(video, " ", k=3)


def test_use_tspo_prints_real_times_under_qwen3_on_vfr(sampler, tmp_path):
    import re

    from media_vfr import make_split_rate_video
    from tiny_mllms import build_qwen3_vl

    _, processor = build_qwen3_vl()
    path = str(make_split_rate_video(tmp_path / "vfr.mp4"))
    text = processor.apply_chat_template(
        qwen2_5_vl.build_messages(make_selection(2), "Which second?"), tokenize=False, add_generation_prompt=True
    )
    with transformers_video.use_tspo(processor, sampler, "Which second?", k=4) as selections:
        inputs = processor(text=[text], videos=[path], do_sample_frames=False, return_tensors="pt")
    times = selections[0].timestamps
    shown = [float(t) for t in re.findall(r"<(\d+\.\d) seconds>", processor.tokenizer.decode(inputs["input_ids"][0]))]
    assert shown == pytest.approx([(times[0] + times[1]) / 2, (times[2] + times[3]) / 2], abs=0.051)
    naive = [i / selections[0].fps for i in selections[0].indices]
    assert max(abs(a - b) for a, b in zip(naive, times, strict=True)) > 1.0  # index / fps would be wrong
