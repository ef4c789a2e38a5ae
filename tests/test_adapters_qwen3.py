"""Qwen3-VL adapter on a tiny random Qwen3VLForConditionalGeneration (no downloads): the ``<t seconds>``
markers the processor writes must be the real presentation times, on constant- and variable-rate files."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch

import media
import media_vfr
from tiny_mllms import build_qwen2_5_vl, build_qwen3_family, build_qwen3_vl, check_batched_scoring, make_selection
from tspo_sampler.adapters import MC_INSTRUCTION, TIME_INSTRUCTION, prepare_inputs, qwen2_5_vl, qwen3_vl

MARKER = re.compile(r"<(\d+\.\d) seconds>")


@pytest.fixture(scope="module")
def qwen3():
    torch.set_num_threads(1)
    return build_qwen3_vl()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return media_vfr.make_cfr_and_vfr(tmp_path_factory.mktemp("qwen3"))


@pytest.fixture(scope="module")
def selections(sampler, videos):
    return {name: sampler.select_frames(str(path), "What colour is the band?", k=5) for name, path in videos.items()}


def rendered_times(processor, inputs, row: int = 0) -> list[float]:
    return [float(t) for t in MARKER.findall(processor.tokenizer.decode(inputs["input_ids"][row]))]


def true_patch_times(sel, own_patches: bool) -> list[float]:
    """Mean of the stamped (true) times of the frames in each temporal patch, as the model sees them."""
    stamps = [media.read_stamp(f) for f in sel.frames]
    seen = [t for t in stamps for _ in range(2)] if own_patches else stamps + stamps[-1:] * (len(stamps) % 2)
    return [(seen[i] + seen[i + 1]) / 2 for i in range(0, len(seen), 2)]


@pytest.mark.parametrize("kind", ["cfr", "vfr"])
@pytest.mark.parametrize("own_patches", [False, True])
def test_markers_are_real_presentation_times(qwen3, selections, kind, own_patches):
    _, processor = qwen3
    sel = selections[kind]
    assert [media.read_stamp(f) for f in sel.frames] == pytest.approx(sel.timestamps, abs=0.011)
    inputs = qwen3_vl.prepare_inputs(processor, sel, "Q?", own_patches=own_patches)
    shown = rendered_times(processor, inputs)
    expected = true_patch_times(sel, own_patches)
    assert len(shown) == inputs["video_grid_thw"][0, 0].item() == len(expected)
    assert shown == pytest.approx(expected, abs=0.1)
    assert shown == sorted(shown)  # frames in time order
    assert shown == pytest.approx(qwen3_vl.patch_times(sel, own_patches=own_patches), abs=0.051)
    if kind == "vfr":  # index / average fps would be seconds off here: the test can fail
        naive = [i / sel.fps for i in sel.indices]
        assert max(abs(a - b) for a, b in zip(naive, sel.timestamps, strict=True)) > 1.0


def test_own_patches_cost_twice_the_temporal_patches(qwen3):
    _, processor = qwen3
    sel = make_selection(4, size=64)
    shared = qwen3_vl.prepare_inputs(processor, sel, "Q?")
    own = qwen3_vl.prepare_inputs(processor, sel, "Q?", own_patches=True)
    assert shared["video_grid_thw"].tolist() == [[2, 4, 4]]
    assert own["video_grid_thw"].tolist() == [[4, 4, 4]]
    vid = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert (own["input_ids"] == vid).sum() == 2 * (shared["input_ids"] == vid).sum()
    assert rendered_times(processor, own) == pytest.approx(sel.timestamps, abs=0.051)


def test_odd_k_policies(qwen3):
    _, processor = qwen3
    sel = make_selection(5, seed=3, size=64)
    assert qwen3_vl.prepare_inputs(processor, sel, "Q?")["video_grid_thw"][0, 0].item() == 3
    drop = qwen3_vl.prepare_inputs(processor, sel, "Q?", odd_frames="drop")
    assert drop["video_grid_thw"][0, 0].item() == 2
    lowest = sel.indices[int(np.argmin(np.asarray(sel.scores)[sel.positions]))]
    kept = [t for i, t in zip(sel.indices, sel.timestamps, strict=True) if i != lowest]
    pairs = [(kept[0] + kept[1]) / 2, (kept[2] + kept[3]) / 2]
    assert rendered_times(processor, drop) == pytest.approx(pairs, abs=0.051)
    with pytest.raises(ValueError, match="even number"):
        qwen3_vl.prepare_inputs(processor, sel, "Q?", odd_frames="error")


def test_prompt_mode_does_not_repeat_times(qwen3):
    _, processor = qwen3
    sel = make_selection(4, seed=1, size=64)
    inputs = qwen3_vl.prepare_inputs(processor, sel, "Q?", timestamps="prompt")
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    assert "The video lasts for 30.00 seconds, and 4 frames" in text
    assert len(MARKER.findall(text)) == 2  # the markers, once
    for t in sel.timestamps:  # and no second list of the times
        assert f"{t:.2f}s" not in text and f"{t:.1f}s" not in text
    with pytest.raises(ValueError, match="timestamps must be one of"):
        qwen3_vl.prepare_inputs(processor, sel, "Q?", timestamps="uniform")
    with pytest.raises(ValueError, match="frame_times"):  # a template listing the times would add them twice
        qwen3_vl.prepare_inputs(processor, sel, "Q?", timestamps="prompt", time_template=TIME_INSTRUCTION)


def test_generate_and_batched_option_logprobs(qwen3):
    model, processor = qwen3
    answerer, sels, qs, _ = check_batched_scoring(model, processor)
    assert isinstance(answerer, qwen3_vl.Qwen3_VLAnswerer)
    ids = [processor.tokenizer.convert_tokens_to_ids(c) for c in "ABC"]
    for s, q in zip(sels, qs, strict=True):  # a row alone equals a plain forward pass at the last position
        alone = answerer.option_logprobs(s, q, options=("A", "B", "C"))[0]
        with torch.no_grad():
            logits = model(**qwen3_vl.prepare_inputs(processor, s, q + "\n" + MC_INSTRUCTION)).logits[0, -1]
        torch.testing.assert_close(alone, torch.log_softmax(logits.float(), -1)[ids], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["moe", "qwen3_5"])
def test_moe_and_qwen3_5_through_the_same_adapter(kind, selections):
    model, processor = build_qwen3_family(kind)
    answerer, *_ = check_batched_scoring(model, processor)
    assert isinstance(answerer, qwen3_vl.Qwen3_VLAnswerer)
    sel = selections["vfr"]
    inputs = prepare_inputs(processor, sel, "Q?")
    assert rendered_times(processor, inputs) == pytest.approx(true_patch_times(sel, False), abs=0.1)
    assert model.generate(**inputs, max_new_tokens=2).shape[1] == inputs["input_ids"].shape[1] + 2


def test_bad_input(qwen3, monkeypatch):
    _, processor = qwen3
    sel = make_selection(4, size=64)
    with pytest.raises(TypeError, match=r"supported: \[.*Qwen3VLProcessor"):
        prepare_inputs(processor.tokenizer, sel, "Q?")
    sel.frames = None
    with pytest.raises(ValueError, match="no frames"):
        qwen3_vl.prepare_inputs(processor, sel, "Q?")
    monkeypatch.setattr(processor.video_processor, "max_frames", 4)
    with pytest.raises(ValueError, match="k=6 gives 6 frames, more than the 4"):
        qwen3_vl.prepare_inputs(processor, make_selection(6, size=64), "Q?")


def _cap_warnings(caplog, fn):
    from transformers.utils import logging as hf_logging

    hf_logging.get_logger("transformers").warning_once.cache_clear()
    hf_logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            result = fn()
        return result, [r for r in caplog.records if "cap_pixels_per_frame" in r.getMessage()]
    finally:
        hf_logging.disable_propagation()


@pytest.mark.parametrize("builder,adapter", [(build_qwen3_vl, qwen3_vl), (build_qwen2_5_vl, qwen2_5_vl)])
def test_reference_pixel_cap_chosen_explicitly(caplog, builder, adapter):
    _, unset = builder(cap_pixels_per_frame=None)
    sel = make_selection(4, size=128)
    inputs, warned = _cap_warnings(caplog, lambda: adapter.prepare_inputs(unset, sel, "Q?"))
    assert warned == []
    capped = adapter.prepare_inputs(unset, sel, "Q?", cap_pixels_per_frame=True)
    assert inputs["video_grid_thw"].tolist() == capped["video_grid_thw"].tolist()
    # the bare processor does warn when nobody chooses
    _, bare_warned = _cap_warnings(caplog, lambda: unset.video_processor(videos=[sel.frames], do_sample_frames=False))
    assert bare_warned


def test_qwen_vl_utils_messages_refuse_qwen3(qwen3):
    _, processor = qwen3
    with pytest.raises(TypeError, match="qwen3_vl"):
        qwen2_5_vl.build_qwen_vl_utils_messages(make_selection(4), "Q?", processor=processor)
