"""Metadata adapter on tiny random SmolVLM2 and GLM-4.1V models (no downloads): the times each
processor prints must be the frames' real presentation times, on constant- and variable-rate files."""

from __future__ import annotations

import re

import pytest
import torch

import media
import media_vfr
from tiny_mllms import build_glm4v, build_smolvlm2, check_batched_scoring, make_selection
from tspo_sampler.adapters import metadata, prepare_inputs

SMOL_TIME = re.compile(r"Frame from (\d\d):(\d\d):")
GLM_TIME = re.compile(r"<\|end_of_image\|>(\d+)")


def smol_times(text: str) -> list[int]:
    return [int(m) * 60 + int(s) for m, s in SMOL_TIME.findall(text)]


def glm_times(text: str) -> list[int]:
    return [int(t) for t in GLM_TIME.findall(text)]


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return {"smolvlm2": build_smolvlm2(), "glm4v": build_glm4v()}


@pytest.fixture(scope="module")
def selections(sampler, tmp_path_factory):
    paths = media_vfr.make_cfr_and_vfr(tmp_path_factory.mktemp("meta"))
    return {name: sampler.select_frames(str(p), "What colour is the band?", k=5) for name, p in paths.items()}


def whole_seconds(times) -> list[int]:
    return [int(round(float(t), 3)) for t in times]


@pytest.mark.parametrize("kind", ["cfr", "vfr"])
def test_smolvlm2_prints_real_times(models, selections, kind):
    _, processor = models["smolvlm2"]
    sel = selections[kind]
    stamps = [media.read_stamp(f) for f in sel.frames]
    assert stamps == pytest.approx(sel.timestamps, abs=0.011)
    text = processor.tokenizer.decode(prepare_inputs(processor, sel, "Q?")["input_ids"][0])
    assert smol_times(text) == whole_seconds(stamps)  # one per frame, no temporal patch
    assert "series of five frames" in text
    if kind == "vfr":  # index / average fps would print other seconds: the test can fail
        assert whole_seconds(i / sel.fps for i in sel.indices) != whole_seconds(stamps)


@pytest.mark.parametrize("kind", ["cfr", "vfr"])
@pytest.mark.parametrize("own_patches", [False, True])
def test_glm4v_prints_real_times(models, selections, kind, own_patches):
    _, processor = models["glm4v"]
    sel = selections[kind]
    stamps = [media.read_stamp(f) for f in sel.frames]
    inputs = metadata.prepare_inputs(processor, sel, "Q?", own_patches=own_patches)
    shown = glm_times(processor.tokenizer.decode(inputs["input_ids"][0]))
    # GLM prints the first frame's whole second for each temporal patch of two frames
    expected = whole_seconds(stamps) if own_patches else whole_seconds((stamps + stamps[-1:])[::2])
    assert shown == expected
    assert len(shown) == inputs["video_grid_thw"][0, 0].item()
    if kind == "vfr":
        naive = [i / sel.fps for i in sel.indices]
        assert whole_seconds(naive if own_patches else (naive + naive[-1:])[::2]) != expected


@pytest.mark.parametrize("name", ["smolvlm2", "glm4v"])
def test_generate_and_batched_option_logprobs(models, name):
    answerer, *_ = check_batched_scoring(*models[name])
    assert isinstance(answerer, metadata.MetadataVideoAnswerer)


def test_bad_input(models, monkeypatch):
    _, smol = models["smolvlm2"]
    _, glm = models["glm4v"]
    with pytest.raises(TypeError, match=r"supported: \[.*SmolVLMProcessor"):
        metadata.prepare_inputs(glm.tokenizer, make_selection(2), "Q?")
    sel = make_selection(4, size=64)
    sel.frames = None
    with pytest.raises(ValueError, match="no frames"):
        prepare_inputs(smol, sel, "Q?")
    monkeypatch.setattr(smol.video_processor, "num_frames", 3)
    with pytest.raises(ValueError, match="k=4 gives 4 frames, more than the 3 that SmolVLM2"):
        prepare_inputs(smol, make_selection(4, size=64), "Q?")
