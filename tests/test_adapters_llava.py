"""LLaVA-Video adapter: HF form on a tiny random LlavaOnevisionForConditionalGeneration, original
LLaVA-NeXT form checked against its documented prompt and tensor formats."""

from __future__ import annotations

import pytest
import torch

from tiny_mllms import build_llava_onevision, make_selection
from tspo_sampler.adapters import answerer_for, llava_video

TOKENS_PER_FRAME = 4  # 56 px SigLIP, 14 px patches -> 4 x 4 -> pooled 2 x 2


@pytest.fixture(scope="module")
def llava():
    torch.set_num_threads(1)
    return build_llava_onevision()


@pytest.mark.parametrize("k", [1, 3, 8])
def test_visual_tokens_match_k(llava, k):
    _, processor = llava
    inputs = llava_video.prepare_inputs(processor, make_selection(k), "What happens?")
    vid = processor.tokenizer.convert_tokens_to_ids("<video>")
    assert (inputs["input_ids"] == vid).sum().item() == k * TOKENS_PER_FRAME + 1  # + one newline token
    assert inputs["pixel_values_videos"].shape == (1, k, 3, 56, 56)


def test_time_instruction_uses_chosen_frames(llava):
    _, processor = llava
    sel = make_selection(3, seed=4)
    text = processor.tokenizer.decode(
        llava_video.prepare_inputs(processor, sel, "Q?", time_instruction=True)["input_ids"][0]
    )
    times = ",".join(f"{t:.2f}s" for t in sel.timestamps)
    expected = (
        f"The video lasts for 30.00 seconds, and 3 frames are uniformly sampled from it. "
        f"These frames are located at {times}.Please answer the following questions related to this video.\nQ?"
    )
    assert expected in text
    assert "The video lasts" not in processor.tokenizer.decode(
        llava_video.prepare_inputs(processor, sel, "Q?")["input_ids"][0]
    )
    # candidates' times that were not chosen are not listed
    other = [t for t in sel.candidate_timestamps if round(t * 10) not in sel.indices]
    assert f"{other[0]:.2f}s" not in text.split("located at ")[1].split(".Please")[0].split(",")


def test_generate_and_option_logprobs(llava):
    model, processor = llava
    sels = [make_selection(4, seed=0), make_selection(4, seed=1)]
    qs = ["Q1?\nA. yes\nB. no", "Second, longer question?\nA. a\nB. b"]
    inputs = llava_video.prepare_inputs(processor, sels, qs, time_instruction=True, dtype=torch.float32)
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3
    answerer = answerer_for(model, processor, time_instruction=True)
    assert isinstance(answerer, llava_video.LlavaVideoAnswerer)
    assert len(answerer.answer(sels, qs, max_new_tokens=2)) == 2
    lp = answerer.option_logprobs(sels, qs, options=("A", "B"))
    assert lp.shape == (2, 2) and torch.isfinite(lp).all()


def test_batch_needs_equal_k(llava):
    _, processor = llava
    with pytest.raises(ValueError, match="same number of frames"):
        llava_video.prepare_inputs(processor, [make_selection(2), make_selection(3)], ["a", "b"])


# ---------------------------------------------------------------------------------- original form


@pytest.fixture(scope="module")
def siglip():
    from transformers import SiglipImageProcessor

    # LLaVA-Video-7B-Qwen2's image processor: SigLIP at 384 px, mean = std = 0.5
    return SiglipImageProcessor(size={"height": 384, "width": 384}, image_mean=[0.5] * 3, image_std=[0.5] * 3)


def test_original_prompt_string():
    sel = make_selection(2, seed=5)
    ti = llava_video.time_instruction(sel, llava_video.LLAVA_VIDEO_TIME_INSTRUCTION)
    prompt = llava_video.build_original_prompt("Who?", time_instruction=ti)
    assert prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n<image>\n{ti}\nWho?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert llava_video.build_original_prompt("Who?", system=None) == (
        "<|im_start|>user\n<image>\nWho?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_original_inputs(llava, siglip):
    _, processor = llava
    tok = processor.tokenizer
    sel = make_selection(5, seed=6, size=64)
    inputs = llava_video.prepare_original_inputs(tok, siglip, sel, "What colour?", dtype=torch.bfloat16)
    (pixels,) = inputs["images"]
    assert pixels.shape == (5, 3, 384, 384) and pixels.dtype == torch.bfloat16
    assert inputs["modalities"] == ["video"]
    ids = inputs["input_ids"]
    assert ids.shape[0] == 1 and (ids == llava_video.IMAGE_TOKEN_INDEX).sum().item() == 1
    # the ids are the prompt's tokens with <image> replaced by -200
    before, after = inputs["prompt"].split("<image>")
    pos = ids[0].tolist().index(-200)
    assert tok.decode(ids[0, :pos]) == before and tok.decode(ids[0, pos + 1 :]) == after
    assert "5 frames are uniformly sampled" in inputs["prompt"]
    assert ",".join(f"{t:.2f}s" for t in sel.timestamps) in inputs["prompt"]
    # pixel values are SigLIP-normalised frames: in [-1, 1]
    assert pixels.float().min() >= -1.0 and pixels.float().max() <= 1.0
