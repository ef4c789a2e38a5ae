"""Compact encoder weights: stored bfloat16, widened to float32 as each layer runs, with identical outputs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tspo_sampler import TemporalSampler
from tspo_sampler.features._weights import MIN_COMPACT_NUMEL, is_compact, keep_weights_compact, stored_state_dict


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


# ------------------------------------------------------------------------ the CPU bfloat16 path (issue 10)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a, b).min().item()


@pytest.fixture(scope="module")
def bf16(checkpoint_dir):
    return TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", dtype=torch.bfloat16, feature_cache=False)


def test_bf16_on_cpu_matches_float32_features_and_topk(bf16, widened, cases):
    assert bf16.encoder.dtype == torch.bfloat16 and bf16.encoder.precision == "autocast-bfloat16"
    assert widened.encoder.precision == "float32"
    for case, data in cases:
        frames = torch.from_numpy(data["frames"])
        ours = bf16.encoder.encode_images(frames)
        assert ours.dtype == torch.float32
        assert not torch.equal(ours, widened.encoder.encode_images(frames))  # really computed another way
        assert _cosine(ours, widened.encoder.encode_images(frames)) >= 0.9999
        assert _cosine(ours, torch.from_numpy(data["image_features"])) >= 0.9999
        # the question stays float32: one text encoding costs nothing
        assert torch.equal(bf16.encode_text(case["question"]), widened.encode_text(case["question"]))
        a = bf16.select_frames(data["frames"], case["question"], case["k"], window_size=case["window"])
        b = widened.select_frames(data["frames"], case["question"], case["k"], window_size=case["window"])
        assert a.indices == b.indices == data_topk(data, case)
        np.testing.assert_allclose(a.scores, b.scores, atol=0.05)


def data_topk(data, case) -> list[int]:
    return sorted(np.argsort(-data["scores"], kind="stable")[: case["k"]].tolist())


def test_bf16_keeps_matmul_weights_as_stored_and_the_rest_float32(bf16, checkpoint_dir, cases):
    vision = bf16.encoder.model.vision_model
    fc1 = vision.encoder.layers[0].mlp.fc1
    assert fc1.weight.dtype == torch.bfloat16 and not hasattr(fc1, "parametrizations")  # used as stored
    assert vision.encoder.layers[0].layer_norm1.weight.dtype == torch.float32
    assert vision.embeddings.class_embedding.dtype == torch.float32
    assert bf16.encoder.model.visual_projection.weight.dtype == torch.bfloat16
    # the text tower stays compact float32 (widened on use)
    assert is_compact(bf16.encoder.model)
    assert any(hasattr(m, "parametrizations") for m in bf16.encoder.model.text_model.modules())
    # the same features whether or not the checkpoint's weights were widened at load
    widened_first = TemporalSampler.from_pretrained(
        checkpoint_dir, device="cpu", dtype=torch.bfloat16, feature_cache=False, compact_weights=False
    )
    frames = torch.from_numpy(cases[1][1]["frames"])
    assert torch.equal(widened_first.encoder.encode_images(frames), bf16.encoder.encode_images(frames))
    # and saving writes back the checkpoint's own weights
    original = load_file(checkpoint_dir / "model.safetensors")
    for key, value in stored_state_dict(bf16.encoder.model).items():
        if key in original:
            assert torch.equal(value.to(original[key].dtype), original[key]), key


def test_bf16_features_are_never_served_to_float32_or_back(checkpoint_dir, cases, tmp_path):
    """The encoder fingerprint (part of every cache key) names the precision, so each run caches its own."""
    import media

    video = media.make_video(tmp_path / "clip.mp4", duration=6.0, fps=5.0)
    cache = tmp_path / "cache"
    f32 = TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache_dir=cache)
    b16 = TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", dtype=torch.bfloat16, feature_cache_dir=cache)
    assert f32.encoder.fingerprint() != b16.encoder.fingerprint()
    a = f32.encode_video(video)
    b = b16.encode_video(video)
    assert len(list(cache.glob("*/*.safetensors"))) == 2
    assert not torch.equal(a.features, b.features) and _cosine(a.features, b.features) >= 0.9999
    # each reads back its own entry
    assert torch.equal(f32.encode_video(video).features, a.features)
    assert torch.equal(b16.encode_video(video).features, b.features)


def test_use_autocast_matmuls_on_torch_multihead_attention():
    """open_clip blocks: ``in_proj_weight`` read off ``nn.MultiheadAttention`` works under autocast, and a
    compact weight drops its widening."""
    from tspo_sampler.features._weights import autocast, use_autocast_matmuls

    torch.manual_seed(0)
    reference = torch.nn.TransformerEncoderLayer(64, 4, 128, batch_first=True).eval()
    layer = torch.nn.TransformerEncoderLayer(64, 4, 128, batch_first=True).eval()
    layer.load_state_dict(reference.state_dict())
    keep_weights_compact(layer.to(torch.bfloat16), torch.float32)
    reference.load_state_dict({k: v.float() for k, v in stored_state_dict(layer).items()})
    assert use_autocast_matmuls(layer, [layer]) == 4  # in_proj, out_proj, linear1, linear2
    assert layer.self_attn.in_proj_weight.dtype == torch.bfloat16
    assert layer.norm1.weight.dtype == torch.float32
    x = torch.randn(2, 10, 64)
    with torch.inference_mode(), autocast(layer):
        out = layer(x).float()
    with torch.inference_mode():
        assert _cosine(out.flatten(1), reference(x).flatten(1)) >= 0.999
    with pytest.raises(ValueError, match="autocast matrix products support"):
        use_autocast_matmuls(layer, [layer], torch.float16)


def test_bf16_warns_on_a_cpu_without_bf16_instructions(checkpoint_dir, monkeypatch):
    """The CPU's flags cannot be changed in a test, so the probe is replaced; everything else is real."""
    from tspo_sampler.features import _encoders

    monkeypatch.setattr(_encoders, "cpu_has_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="without AVX512-BF16 or AMX"):
        sampler = TemporalSampler.from_pretrained(
            checkpoint_dir, device="cpu", dtype=torch.bfloat16, feature_cache=False
        )
    assert sampler.encoder.precision == "autocast-bfloat16"
    monkeypatch.setattr(_encoders, "cpu_has_bf16", lambda: True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", dtype=torch.bfloat16, feature_cache=False)


def test_bf16_warning_names_the_measured_slowdown(checkpoint_dir, monkeypatch):
    from tspo_sampler.features import _encoders

    monkeypatch.setattr(_encoders, "cpu_has_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match=r"about 7x slower than float32 .* AMD EPYC"):
        TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", dtype="bfloat16", feature_cache=False)


@pytest.mark.parametrize("has_bf16", [False, True])
def test_auto_dtype_picks_bf16_only_with_bf16_matrix_units(checkpoint_dir, monkeypatch, caplog, has_bf16):
    """dtype="auto": bfloat16 where the CPU has AVX512-BF16/AMX, float32 elsewhere; said once per process."""
    from tspo_sampler.features import _encoders, _weights

    for module in (_weights, _encoders):
        monkeypatch.setattr(module, "cpu_has_bf16", lambda: has_bf16)
    monkeypatch.setattr(_weights, "_told", set())
    with caplog.at_level("WARNING", logger="tspo_sampler"):
        first = TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", dtype="auto", feature_cache=False)
        TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", dtype="auto", feature_cache=False)
    told = [r.getMessage() for r in caplog.records if "dtype='auto'" in r.getMessage()]
    expected = "bfloat16" if has_bf16 else "float32"
    assert len(told) == 1 and told[0].endswith(f"computes in {expected}")
    assert first.encoder.precision == ("autocast-bfloat16" if has_bf16 else "float32")
    with pytest.raises(ValueError, match="dtype='fp32' is not a compute dtype.*or 'auto'"):
        TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", dtype="fp32")
