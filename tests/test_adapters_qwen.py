"""Qwen2.5-VL adapter on a tiny random Qwen2_5_VLForConditionalGeneration (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_mllms import build_qwen2_5_vl, make_selection
from tspo_sampler.adapters import MC_INSTRUCTION, answerer_for, qwen2_5_vl

TOKENS_PER_TEMPORAL_PATCH = 4  # 56 x 56 px -> 4 x 4 patches -> 2 x 2 after merging


@pytest.fixture(scope="module")
def qwen():
    torch.set_num_threads(1)
    return build_qwen2_5_vl()


def n_video_tokens(processor, input_ids: torch.Tensor) -> list[int]:
    vid = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    return (input_ids == vid).sum(dim=1).tolist()


@pytest.mark.parametrize("k", [2, 4, 6])
def test_visual_tokens_match_k(qwen, k):
    model, processor = qwen
    inputs = qwen2_5_vl.prepare_inputs(processor, make_selection(k), "What happens?")
    assert inputs["video_grid_thw"].tolist() == [[k // 2, 4, 4]]
    assert n_video_tokens(processor, inputs["input_ids"]) == [k // 2 * TOKENS_PER_TEMPORAL_PATCH]


def test_odd_k_duplicate_drop_error(qwen):
    _, processor = qwen
    sel = make_selection(5, seed=3)
    dup = qwen2_5_vl.prepare_inputs(processor, sel, "Q?")
    assert dup["video_grid_thw"][0, 0].item() == 3  # 6 frames: the last one repeated
    frames, indices, times = qwen2_5_vl.even_frames(sel, "duplicate")
    assert len(frames) == 6 and indices[-1] == indices[-2] == sel.indices[-1]
    assert np.array_equal(frames[-1], frames[-2])

    drop = qwen2_5_vl.prepare_inputs(processor, sel, "Q?", odd_frames="drop")
    assert drop["video_grid_thw"][0, 0].item() == 2
    _, kept, _ = qwen2_5_vl.even_frames(sel, "drop")
    scores = np.asarray(sel.scores)[sel.positions]
    dropped = set(sel.indices) - set(kept)
    assert dropped == {sel.indices[int(np.argmin(scores))]}  # the lowest-scored chosen frame goes

    with pytest.raises(ValueError, match="even number"):
        qwen2_5_vl.prepare_inputs(processor, sel, "Q?", odd_frames="error")


def test_second_per_grid_ts_per_mode(qwen):
    _, processor = qwen
    sel = make_selection(4, duration=30.0, fps=10.0)
    uniform = qwen2_5_vl.prepare_inputs(processor, sel, "Q?")
    assert uniform["second_per_grid_ts"].tolist() == pytest.approx([1.0])  # paper: 2 frames / 2 fps
    meta = qwen2_5_vl.prepare_inputs(processor, sel, "Q?", timestamps="metadata")
    assert meta["second_per_grid_ts"].tolist() == pytest.approx([2 * 30.0 / 4])  # real duration / k
    assert meta["second_per_grid_ts"].dtype == torch.float32
    # the metadata handed to the processor names the chosen source frames
    md = qwen2_5_vl.video_metadata(sel, timestamps="metadata")
    assert md.frames_indices == sel.indices and md.fps == 10.0 and md.total_num_frames == 300
    assert md.timestamps == pytest.approx(sel.timestamps)


def test_timestamps_in_prompt_only_in_prompt_mode(qwen):
    _, processor = qwen
    sel = make_selection(4, seed=1)
    times = [f"{t:.2f}s" for t in sel.timestamps]
    tok = processor.tokenizer
    for mode in ("uniform", "metadata"):
        text = tok.decode(qwen2_5_vl.prepare_inputs(processor, sel, "Q?", timestamps=mode)["input_ids"][0])
        assert not any(t in text for t in times)
    text = tok.decode(qwen2_5_vl.prepare_inputs(processor, sel, "Q?", timestamps="prompt")["input_ids"][0])
    assert ",".join(times) in text
    assert "The video lasts for 30.00 seconds, and 4 frames" in text
    # the instruction comes after the video and before the question
    assert text.index("<|vision_end|>") < text.index("The video lasts") < text.index("Q?")


def test_messages_convention():
    sel = make_selection(4)
    msgs = qwen2_5_vl.build_messages(sel, "Why?", system="Be brief.")
    assert msgs[0] == {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
    assert msgs[1]["role"] == "user"
    assert msgs[1]["content"] == [{"type": "video"}, {"type": "text", "text": "Why?"}]
    # question defaults to the selection's own
    assert qwen2_5_vl.build_messages(sel)[0]["content"][1]["text"] == "What happens?"


def test_generate_and_option_logprobs_batched(qwen):
    model, processor = qwen
    sels = [make_selection(4, seed=0), make_selection(3, seed=1)]
    qs = ["Q1?\nA. yes\nB. no", "A longer second question?\nA. red\nB. blue\nC. green"]
    inputs = qwen2_5_vl.prepare_inputs(processor, sels, qs, dtype=torch.float32)
    assert inputs["attention_mask"][:, -1].all()  # left padded
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (2, inputs["input_ids"].shape[1] + 3)

    answerer = answerer_for(model, processor)
    assert isinstance(answerer, qwen2_5_vl.Qwen2_5_VLAnswerer)
    answers = answerer.answer(sels, qs, max_new_tokens=2)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    lp = answerer.option_logprobs(sels, qs, options=("A", "B", "C"))
    assert lp.shape == (2, 3) and torch.isfinite(lp).all() and (lp < 0).all()

    # equals the log-softmax of a full forward pass at the last position, row by row
    ids = [processor.tokenizer.convert_tokens_to_ids(c) for c in "ABC"]
    for i, (s, q) in enumerate(zip(sels, qs, strict=True)):
        q2 = q + "\n" + MC_INSTRUCTION
        single = qwen2_5_vl.prepare_inputs(processor, s, q2)
        with torch.no_grad():
            logits = model(**single).logits[0, -1]
        ref = torch.log_softmax(logits.float(), -1)[ids]
        torch.testing.assert_close(lp[i], ref, atol=1e-4, rtol=1e-4)
    norm = answerer.option_logprobs(sels, qs, options=("A", "B", "C"), normalize=True)
    torch.testing.assert_close(norm.exp().sum(-1), torch.ones(2))


def test_answerer_fixed_options(qwen):
    model, processor = qwen
    answerer = qwen2_5_vl.Qwen2_5_VLAnswerer(model, processor, timestamps="prompt")
    inputs = answerer._prepare([make_selection(2)], ["Q?"], {})
    assert "The video lasts for" in processor.tokenizer.decode(inputs["input_ids"][0])


def test_qwen_vl_utils_message_form(qwen):
    qvu = pytest.importorskip("qwen_vl_utils")
    model, processor = qwen
    sel = make_selection(4, seed=2)
    for mode, expected in (("uniform", 1.0), ("metadata", 2 * 30.0 / 4)):
        msgs = qwen2_5_vl.build_qwen_vl_utils_messages(
            sel, "Q?", timestamps=mode, max_pixels=56 * 56, min_pixels=28 * 28
        )
        video = msgs[0]["content"][0]
        assert video["type"] == "video" and len(video["video"]) == 4
        text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        _, videos, video_kwargs = qvu.process_vision_info(msgs, return_video_kwargs=True, return_video_metadata=True)
        videos, metadata = zip(*videos, strict=True)
        inputs = processor(
            text=[text], videos=list(videos), video_metadata=list(metadata), return_tensors="pt", **video_kwargs
        )
        assert inputs["second_per_grid_ts"].tolist() == pytest.approx([expected], rel=1e-5)
        assert inputs["video_grid_thw"][0, 0].item() == 2
