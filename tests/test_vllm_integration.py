"""tspo_sampler.integrations.vllm: the video item and OpenAI-server forms vLLM documents.

vLLM itself is not installed (it pins another torch); the checks below mirror what its parsers do with
these objects: ``VideoMediaIO.load_base64("video/jpeg", ...)`` splits the data on commas and decodes
each part as a JPEG, and validates ``frames_indices`` (a list of ints, one per frame sent),
``total_num_frames`` (an int >= the frames sent) and ``duration`` (a non-negative number).
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from media import make_video, read_stamp
from tspo_sampler.integrations import vllm as tv

QUESTION = "When does the bar reach the right edge?"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("vllm-videos")
    return {
        "cfr": make_video(d / "cfr.mp4", duration=6.0, fps=10.0),
        "vfr": make_video(d / "vfr.mp4", duration=6.0, fps=10.0, vfr=True),
    }


def vllm_validate(frames: np.ndarray, meta: dict) -> None:
    """The checks vLLM applies to a pre-sampled video's metadata."""
    n = frames.shape[0]
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3
    idx = meta["frames_indices"]
    assert isinstance(idx, list) and all(type(i) is int for i in idx) and len(idx) == n
    assert type(meta["total_num_frames"]) is int and meta["total_num_frames"] >= n
    assert max(idx) < meta["total_num_frames"]
    assert isinstance(meta["duration"], float) and meta["duration"] >= 0
    assert isinstance(meta["fps"], float) and meta["fps"] > 0
    assert meta["do_sample_frames"] is False


@pytest.mark.parametrize("kind", ["cfr", "vfr"])
def test_video_item_reproduces_real_times(sampler, videos, kind):
    sel = sampler.select_frames(videos[kind], QUESTION, k=6)
    frames, meta = tv.video_item(sel)
    vllm_validate(frames, meta)
    assert frames.shape[0] == 6 and np.array_equal(frames, sel.frames)
    times = np.asarray(meta["frames_indices"]) / meta["fps"]
    assert np.allclose(times, sel.timestamps, atol=0.5 / meta["fps"] + 1e-9)
    # the pixels really are the frames shown at those times (each frame carries its time stamp)
    stamps = np.array([read_stamp(f) for f in frames])
    assert np.allclose(times, stamps, atol=0.5 / meta["fps"] + 0.011)
    assert meta["duration"] == pytest.approx(sel.duration)
    if kind == "cfr":
        assert meta["frames_indices"] == list(sel.indices) and meta["fps"] == pytest.approx(sel.fps)
    else:  # VFR: the source index is not the time; a millisecond clock is
        assert meta["fps"] == 1000.0
        assert np.allclose(times, sel.timestamps, atol=5e-4)


def test_time_resolution_and_errors(sampler, videos):
    sel = sampler.select_frames(videos["vfr"], QUESTION, k=4)
    _, meta = tv.video_item(sel, time_resolution=10)
    assert meta["fps"] == 10.0
    assert meta["frames_indices"] == [round(t * 10) for t in sel.timestamps]
    with pytest.raises(ValueError, match="time_resolution"):
        tv.video_item(sel, time_resolution=0)
    bare = sampler.select_frames(videos["cfr"], QUESTION, k=2, return_frames=False)
    with pytest.raises(ValueError, match="no frames"):
        tv.video_item(bare)


def test_in_memory_frames_without_timing(sampler):
    arr = np.stack([np.full((32, 32, 3), i * 20, np.uint8) for i in range(8)])
    sel = sampler.select_frames(arr, QUESTION, k=3)
    frames, meta = tv.video_item(sel)
    vllm_validate(frames, meta)
    assert meta["frames_indices"] == list(sel.indices)


def decode_like_vllm(url: str) -> np.ndarray:
    head, data = url.split(",", 1)
    assert head == "data:video/jpeg;base64"
    return np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(p))).convert("RGB")) for p in data.split(",")])


def test_chat_content_openai_form(sampler, videos):
    sel = sampler.select_frames(videos["vfr"], QUESTION, k=5)
    req = tv.chat_content(sel, QUESTION)
    json.dumps(req)  # the request body is JSON
    video_part, text_part = req["content"]
    assert video_part["type"] == "video_url" and set(video_part) == {"type", "video_url"}
    assert text_part == {"type": "text", "text": QUESTION}
    decoded = decode_like_vllm(video_part["video_url"]["url"])
    assert decoded.shape == sel.frames.shape
    kwargs = req["media_io_kwargs"]["video"]
    assert kwargs["num_frames"] == -1  # keep every sent frame
    vllm_validate(decoded, kwargs)
    _, meta = tv.video_item(sel)
    assert {k: kwargs[k] for k in ("fps", "frames_indices", "total_num_frames", "duration")} == {
        k: meta[k] for k in ("fps", "frames_indices", "total_num_frames", "duration")
    }
    # JPEG keeps the time stamps readable: the server sees the frames at the times it is told
    stamps = np.array([read_stamp(f) for f in decoded])
    assert np.allclose(np.asarray(kwargs["frames_indices"]) / kwargs["fps"], stamps, atol=0.5 / kwargs["fps"] + 0.011)
    assert tv.chat_content(sel)["content"][0]["type"] == "video_url"
    assert len(tv.chat_content(sel)["content"]) == 1


def test_jpeg_data_url_rejects_bad_frames():
    with pytest.raises(ValueError, match="uint8"):
        tv.jpeg_data_url(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="T x H x W x 3"):
        tv.jpeg_data_url(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="quality"):
        tv.jpeg_data_url(np.zeros((1, 8, 8, 3), np.uint8), quality=0)


@pytest.mark.parametrize("kind", ["cfr", "vfr"])
def test_hf_processors_read_the_same_times(sampler, videos, kind):
    """vLLM hands the metadata to the Hugging Face processors, which read it as a VideoMetadata."""
    from transformers.video_utils import VideoMetadata

    sel = sampler.select_frames(videos[kind], QUESTION, k=4)
    _, meta = tv.video_item(sel)
    vm = VideoMetadata(**{k: v for k, v in meta.items() if k != "do_sample_frames"})
    assert np.allclose(vm.timestamps, sel.timestamps, atol=1e-3)  # Qwen3-VL's <t seconds>
    assert vm.sampled_fps == pytest.approx(4 / sel.duration, rel=0.05)  # Qwen2.5-VL's second_per_grid_ts
