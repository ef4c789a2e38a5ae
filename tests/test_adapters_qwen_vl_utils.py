"""The qwen-vl-utils drop-in: same shapes and keys as the real ``process_vision_info``, real metadata,
and output that both the Qwen2.5-VL and the Qwen3-VL processors take unchanged."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

import media
import media_vfr
from tiny_mllms import build_qwen2_5_vl, build_qwen3_vl
from tspo_sampler.integrations.qwen_vl_utils import process_vision_info

qvu = pytest.importorskip("qwen_vl_utils")

SIZE = {"min_pixels": 28 * 28, "max_pixels": 64 * 64}


class Recorder:
    """The real sampler, remembering each Selection it made (to check what the drop-in asked for)."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.selections = []

    def select_frames(self, *args, **kwargs):
        sel = self.sampler.select_frames(*args, **kwargs)
        self.selections.append(sel)
        return sel


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return media_vfr.make_cfr_and_vfr(tmp_path_factory.mktemp("qvu"))


def messages(video, text="What colour is the band?", **ele):
    image = Image.fromarray(media.draw_frame(1.5, (96, 64)))
    content = [{"type": "image", "image": image}, {"type": "video", "video": str(video), **SIZE, **ele}]
    if text is not None:
        content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


@pytest.mark.parametrize("with_metadata", [False, True])
def test_same_shapes_and_keys_as_qwen_vl_utils(sampler, videos, with_metadata):
    msgs = messages(videos["cfr"], nframes=4)
    ours = process_vision_info(
        msgs, sampler=sampler, method="uniform", return_video_kwargs=True, return_video_metadata=with_metadata
    )
    ref = qvu.process_vision_info(msgs, return_video_kwargs=True, return_video_metadata=with_metadata)
    assert len(ours) == len(ref) == 3
    (o_img,), (o_vid,), o_kw = ours
    (r_img,), (r_vid,), r_kw = ref
    assert o_img.size == r_img.size and np.array_equal(np.asarray(o_img), np.asarray(r_img))  # images untouched
    if with_metadata:
        (o_vid, o_meta), (r_vid, r_meta) = o_vid, r_vid
        assert set(r_meta) <= set(o_meta) and "duration" in o_meta
        assert o_meta["total_num_frames"] == r_meta["total_num_frames"] == 80
        assert float(o_meta["fps"]) == float(r_meta["fps"]) == 10.0
    assert o_vid.shape == r_vid.shape and o_vid.dtype == r_vid.dtype
    assert set(o_kw) == set(r_kw) and o_kw["do_sample_frames"] is False
    if not with_metadata:
        assert o_kw["fps"] == pytest.approx(r_kw["fps"])  # 4 frames over 8 s
    # two-value form without video kwargs
    assert len(process_vision_info(msgs, sampler=sampler, method="uniform")) == 2


@pytest.mark.parametrize("kind", ["cfr", "vfr"])
def test_real_metadata_and_question_from_text(sampler, videos, kind):
    rec = Recorder(sampler)
    _, ((video, meta),) = process_vision_info(messages(videos[kind]), sampler=rec, k=5, return_video_metadata=True)
    (sel,) = rec.selections
    assert sel.question == "What colour is the band?" and len(sel.indices) == 5
    assert video.shape[0] == 6  # odd k padded with the last frame, as qwen-vl-utils does
    assert meta["fps"] == pytest.approx(sel.fps) and meta["duration"] == pytest.approx(sel.duration)
    if kind == "cfr":
        assert meta["frames_indices"] == sel.indices + sel.indices[-1:]
    else:
        assert meta["frames_indices"] == [round(t * sel.fps) for t in sel.timestamps + sel.timestamps[-1:]]
        assert meta["frames_indices"] != sel.indices + sel.indices[-1:]
    shown = [i / meta["fps"] for i in meta["frames_indices"]]
    assert shown == pytest.approx(sel.timestamps + sel.timestamps[-1:], abs=0.5 / sel.fps + 1e-6)


@pytest.mark.parametrize("kind", ["cfr", "vfr"])
def test_feeds_qwen2_5_and_qwen3_processors_unchanged(sampler, videos, kind):
    torch.set_num_threads(1)
    rec = Recorder(sampler)
    msgs = messages(videos[kind], nframes=4)
    model3, proc3 = build_qwen3_vl()
    images, vids, kw = process_vision_info(
        msgs, sampler=rec, image_patch_size=16, return_video_kwargs=True, return_video_metadata=True
    )
    vids, metas = map(list, zip(*vids, strict=True))
    text = proc3.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    inputs = proc3(text=[text], images=images, videos=vids, video_metadata=metas, return_tensors="pt", **kw)
    shown = [float(t) for t in re.findall(r"<(\d+\.\d) seconds>", proc3.tokenizer.decode(inputs["input_ids"][0]))]
    times = rec.selections[0].timestamps
    expected = [(times[0] + times[1]) / 2, (times[2] + times[3]) / 2]
    assert shown == pytest.approx(expected, abs=0.5 / metas[0]["fps"] + 0.05)
    assert model3.generate(**inputs, max_new_tokens=2).shape[1] == inputs["input_ids"].shape[1] + 2

    model25, proc25 = build_qwen2_5_vl()
    images, vids, kw = process_vision_info(msgs, sampler=sampler, return_video_kwargs=True, return_video_metadata=True)
    vids, metas = map(list, zip(*vids, strict=True))
    text = proc25.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    inputs = proc25(text=[text], images=images, videos=vids, video_metadata=metas, return_tensors="pt", **kw)
    sel = rec.selections[0]
    assert inputs["second_per_grid_ts"].tolist() == pytest.approx([2 * sel.duration / 4], rel=0.02)
    assert model25.generate(**inputs, max_new_tokens=2).shape[1] == inputs["input_ids"].shape[1] + 2


def test_bad_input(sampler, videos):
    with pytest.raises(ValueError, match="no question"):
        process_vision_info(messages(videos["cfr"], text=None), sampler=sampler)
    rec = Recorder(sampler)
    process_vision_info(messages(videos["cfr"], text=None), sampler=rec, question="Where?", k=2)
    assert rec.selections[0].question == "Where?"
    with pytest.raises(ValueError, match="local files"):
        process_vision_info(messages("https://example.com/a.mp4"), sampler=sampler)
    with pytest.raises(ValueError, match="k=1000 frames"):
        process_vision_info(messages(videos["cfr"]), sampler=sampler, k=1000)
    with pytest.raises(ValueError, match="video_start"):
        process_vision_info(messages(videos["cfr"], video_start=1.0), sampler=sampler)
