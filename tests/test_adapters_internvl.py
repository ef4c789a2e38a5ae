"""InternVL adapter: HF form on a tiny random InternVLForConditionalGeneration, original model-card
form (448 px tiles, pixel_values + num_patches_list, ``Frame{i}: <image>`` prompts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_mllms import build_internvl, make_selection
from tspo_sampler.adapters import answerer_for, internvl

TOKENS_PER_FRAME = 4  # 56 px tile, 14 px patches -> 16 -> pixel shuffle 0.5 -> 4


@pytest.fixture(scope="module")
def intern():
    torch.set_num_threads(1)
    return build_internvl()


@pytest.mark.parametrize("k", [1, 4, 7])
def test_visual_tokens_match_k(intern, k):
    _, processor = intern
    inputs = internvl.prepare_inputs(processor, make_selection(k), "What happens?")
    ctx = processor.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert (inputs["input_ids"] == ctx).sum().item() == k * TOKENS_PER_FRAME
    assert inputs["pixel_values"].shape == (k, 3, 56, 56)
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    assert [f"Frame{i + 1}: <img>" in text for i in range(k)] == [True] * k
    assert f"Frame{k + 1}:" not in text


def test_time_instruction_optional(intern):
    _, processor = intern
    sel = make_selection(4, seed=2)
    times = ",".join(f"{t:.2f}s" for t in sel.timestamps)
    plain = processor.tokenizer.decode(internvl.prepare_inputs(processor, sel, "Q?")["input_ids"][0])
    timed = processor.tokenizer.decode(
        internvl.prepare_inputs(processor, sel, "Q?", time_instruction=True)["input_ids"][0]
    )
    assert times not in plain and times in timed


def test_generate_and_option_logprobs(intern):
    model, processor = intern
    sels = [make_selection(3, seed=0), make_selection(3, seed=1)]
    qs = ["Q1?\nA. yes\nB. no", "Second, longer question?\nA. a\nB. b\nC. c\nD. d"]
    inputs = internvl.prepare_inputs(processor, sels, qs, dtype=torch.float32)
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3
    answerer = answerer_for(model, processor)
    assert isinstance(answerer, internvl.InternVLAnswerer)
    assert len(answerer.answer(sels, qs, max_new_tokens=2)) == 2
    lp = answerer.option_logprobs(sels, qs)
    assert lp.shape == (2, 4) and torch.isfinite(lp).all()


# ---------------------------------------------------------------------------------- original form


def test_original_one_tile_per_frame():
    sel = make_selection(3, seed=3, size=64)
    inputs = internvl.prepare_original_inputs(sel, "What is shown?", dtype=torch.bfloat16)
    assert inputs["pixel_values"].shape == (3, 3, 448, 448)
    assert inputs["pixel_values"].dtype == torch.bfloat16
    assert inputs["num_patches_list"] == [1, 1, 1]
    assert inputs["question"] == "Frame1: <image>\nFrame2: <image>\nFrame3: <image>\nWhat is shown?"
    expanded = internvl.expand_image_placeholders(inputs["question"], inputs["num_patches_list"], num_image_token=256)
    assert expanded.count("<IMG_CONTEXT>") == 3 * 256 and expanded.count("<img>") == 3
    assert expanded.startswith("Frame1: <img><IMG_CONTEXT>") and "</img>\nFrame2: <img>" in expanded


def test_original_normalisation():
    sel = make_selection(1, size=32)
    sel.frames = np.full((1, 32, 32, 3), 128, dtype=np.uint8)
    pv = internvl.prepare_original_inputs(sel, "q")["pixel_values"]
    expected = (128 / 255 - torch.tensor(internvl.IMAGENET_MEAN)) / torch.tensor(internvl.IMAGENET_STD)
    torch.testing.assert_close(pv[0, :, 200, 200], expected, atol=1e-4, rtol=0)


def test_dynamic_tiles_grid_and_thumbnail():
    from PIL import Image

    wide = Image.new("RGB", (896, 448))
    tiles = internvl.dynamic_tiles(wide, max_num=6)
    assert len(tiles) == 3 and all(t.size == (448, 448) for t in tiles)  # 2 x 1 grid + thumbnail
    assert len(internvl.dynamic_tiles(wide, max_num=6, use_thumbnail=False)) == 2
    assert len(internvl.dynamic_tiles(wide, max_num=1)) == 1
    frames = np.zeros((2, 224, 448, 3), dtype=np.uint8)
    pv, num_patches = internvl.frames_to_pixel_values(frames, max_num=6)
    assert num_patches == [3, 3] and pv.shape == (6, 3, 448, 448)
