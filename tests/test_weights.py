"""Compact encoder weights: stored bfloat16, widened to float32 as each layer runs, with identical outputs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tspo_sampler import TemporalSampler
from tspo_sampler._weights import MIN_COMPACT_NUMEL, is_compact, keep_weights_compact, stored_state_dict


def _stored_bytes(model: torch.nn.Module, min_numel: int = 0) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values() if t.numel() >= min_numel)


@pytest.fixture(scope="module")
def widened(checkpoint_dir):
    return TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache=False, compact_weights=False)


@pytest.fixture(scope="module")
def compact(checkpoint_dir):
    return TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache=False, compact_weights=True)


def test_compact_is_the_cpu_default_and_computes_in_float32(sampler, widened):
    assert is_compact(sampler.encoder.model)
    assert not is_compact(widened.encoder.model)
    assert sampler.encoder.dtype == torch.float32 == widened.encoder.dtype
    stored = {t.dtype for t in sampler.encoder.model.state_dict().values() if t.numel() >= 4096}
    assert stored == {torch.bfloat16}


def test_compact_weights_halve_the_encoder_and_change_no_output(compact, widened, cases):
    # every large weight at half the bytes (this toy model also has many small ones, widened at load)
    large_c, large_w = (_stored_bytes(s.encoder.model, MIN_COMPACT_NUMEL) for s in (compact, widened))
    assert large_c * 2 == large_w > 0
    assert _stored_bytes(compact.encoder.model) < 0.7 * _stored_bytes(widened.encoder.model)
    for case, data in cases:
        frames = torch.from_numpy(data["frames"])
        assert torch.equal(compact.encoder.encode_images(frames), widened.encoder.encode_images(frames))
        assert torch.equal(compact.encode_text(case["question"]), widened.encode_text(case["question"]))
        a = compact.select_frames(data["frames"], case["question"], case["k"], window_size=case["window"])
        b = widened.select_frames(data["frames"], case["question"], case["k"], window_size=case["window"])
        assert a.indices == b.indices
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_allclose(a.scores, data["scores"], atol=1e-3)
    # identical features, so both share feature-cache entries
    assert compact.encoder.fingerprint() == widened.encoder.fingerprint()


def test_stored_state_dict_uses_the_checkpoint_names(compact, checkpoint_dir):
    original = load_file(checkpoint_dir / "model.safetensors")
    state = stored_state_dict(compact.encoder.model)
    assert not any("parametrizations" in k for k in state)
    clip_keys = {k for k in original if not k.startswith("selector.") and not k.endswith("position_ids")}
    assert clip_keys <= set(state)
    for key in clip_keys:
        assert torch.equal(state[key].to(original[key].dtype), original[key]), key


def test_compact_true_refuses_what_cannot_widen_exactly(checkpoint_dir, tmp_path, widened):
    fp32_dir = widened.save_pretrained(tmp_path / "fp32", dtype=torch.float32)
    with pytest.raises(ValueError, match="compact_weights=True.*stores float32"):
        TemporalSampler.from_pretrained(fp32_dir, device="cpu", compact_weights=True)
    with pytest.raises(ValueError, match="compact_weights=True.*compute dtype is float16"):
        TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", dtype=torch.float16, compact_weights=True)
    # a float32 checkpoint is simply widened (nothing to keep compact) by default
    assert not is_compact(TemporalSampler.from_pretrained(fp32_dir, device="cpu", feature_cache=False).encoder.model)


def test_loaded_weights_survive_the_file_being_rewritten_in_place(checkpoint_dir, tmp_path, cases):
    """Weights are copied out of the file's memory map: overwriting the file in place (same inode, as a
    writer that truncates and rewrites does) must not change a loaded sampler."""
    own = tmp_path / "ckpt"
    shutil.copytree(checkpoint_dir, own)
    sampler = TemporalSampler.from_pretrained(own, device="cpu", feature_cache=False)
    case, data = cases[0]
    text_before = sampler.encode_text(case["question"])
    images_before = sampler.encoder.encode_images(torch.from_numpy(data["frames"]))
    path = own / "model.safetensors"
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.write(b"\0" * size)
    assert torch.equal(sampler.encode_text(case["question"]), text_before)
    assert torch.equal(sampler.encoder.encode_images(torch.from_numpy(data["frames"])), images_before)


def test_keep_weights_compact_on_torch_multihead_attention():
    """open_clip-style blocks read ``in_proj_weight`` straight off ``nn.MultiheadAttention``; the widening
    parametrization must serve that path (including its inference fast path) too."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(64, 4, 128, batch_first=True).eval().to(torch.bfloat16)
    reference = torch.nn.TransformerEncoderLayer(64, 4, 128, batch_first=True).eval()
    reference.load_state_dict({k: v.float() for k, v in layer.state_dict().items()})
    kept = keep_weights_compact(layer, torch.float32)
    assert kept >= 3 and layer.self_attn.parametrizations.in_proj_weight.original.dtype == torch.bfloat16
    x = torch.randn(2, 10, 64)
    with torch.inference_mode():
        assert torch.equal(layer(x), reference(x))
    assert set(stored_state_dict(layer)) == set(reference.state_dict())
