"""Batched torch preprocessing matches CLIPImageProcessor; open_clip backbones work with and without an agent."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tspo_sampler import TemporalAgent, TemporalSampler
from tspo_sampler.features._encoders import ImagePreprocessing, preprocess_frames


def _clip_image_processor(cfg):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(**{k: v for k, v in cfg.items() if k not in ("image_processor_type", "processor_class")})


@pytest.mark.parametrize("shape", [(3, 48, 64), (2, 720, 1280), (2, 481, 269), (2, 20, 30)])
def test_preprocessing_matches_clip_image_processor(shape):
    n, h, w = shape
    rng = np.random.default_rng(h * w)
    # smooth content like real video (pure noise exaggerates resampling differences)
    base = rng.integers(0, 255, size=(n, h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    frames = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in base])
    spec = ImagePreprocessing(shortest_edge=224, crop_height=224, crop_width=224)
    ref = _clip_image_processor(spec.to_processor_config())(images=list(frames), return_tensors="pt")["pixel_values"]
    ours = preprocess_frames(torch.from_numpy(frames), spec)
    assert ours.shape == ref.shape
    # within two grey levels after normalisation (1/255/std ~ 0.015), and nearly always exact
    assert (ours - ref).abs().max().item() < 0.035
    assert (ours - ref).abs().mean().item() < 1e-3


def test_channels_first_and_channels_last_agree():
    frames = torch.randint(0, 255, (4, 40, 60, 3), dtype=torch.uint8)
    spec = ImagePreprocessing(shortest_edge=32, crop_height=32, crop_width=32)
    torch.testing.assert_close(preprocess_frames(frames, spec), preprocess_frames(frames.permute(0, 3, 1, 2), spec))


def test_image_features_from_frames_match_reference(uncached_sampler, cases):
    for _, data in cases:
        feats = uncached_sampler.encode_frames(torch.from_numpy(data["frames"]), progress=False)
        np.testing.assert_allclose(feats.numpy(), data["image_features"], atol=1e-3, rtol=0)


def test_preprocessing_config_roundtrip(checkpoint_dir):
    cfg = json.loads((checkpoint_dir / "preprocessor_config.json").read_text())
    spec = ImagePreprocessing.from_processor_config(cfg)
    assert (spec.shortest_edge, spec.crop_height, spec.crop_width, spec.interpolation) == (32, 32, 32, "bicubic")
    assert ImagePreprocessing.from_processor_config(spec.to_processor_config()) == spec


TINY_OPEN_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory):
    import open_clip

    cfg_dir = tmp_path_factory.mktemp("open_clip_cfg")
    (cfg_dir / "tspo-tiny-test.json").write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(cfg_dir)
    torch.manual_seed(0)
    model = open_clip.create_model("tspo-tiny-test", pretrained=None)
    weights = tmp_path_factory.mktemp("open_clip_weights") / "tiny.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return "tspo-tiny-test", str(weights), model


def test_open_clip_without_agent_scores_raw_similarity(tiny_open_clip, tmp_path):
    import open_clip

    name, weights, model = tiny_open_clip
    sampler = TemporalSampler.from_open_clip(name, pretrained=weights, device="cpu", feature_cache=False)
    assert sampler.agent is None and sampler.encoder.embed_dim == 64
    frames = np.stack([np.full((40, 50, 3), v, dtype=np.uint8) for v in range(0, 250, 10)])
    sel = sampler.select_frames(frames, "a bright frame", k=4)
    # the same numbers open_clip computes with its own preprocessing
    preprocess = open_clip.image_transform(32, is_train=False)
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(Image.fromarray(f)) for f in frames]))
        txt = model.encode_text(open_clip.get_tokenizer(name)(["a bright frame"]))
    expected = torch.nn.functional.cosine_similarity(txt, img).numpy() / 0.025
    np.testing.assert_allclose(sel.scores, expected, atol=2e-3)
    assert sel.indices == sorted(np.argsort(-expected, kind="stable")[:4].tolist())


def test_open_clip_with_agent_file(tiny_open_clip, tmp_path):
    name, weights, _ = tiny_open_clip
    torch.manual_seed(1)
    agent = TemporalAgent(dim=64)
    agent_file = tmp_path / "agent.safetensors"
    sampler = TemporalSampler.from_open_clip(name, pretrained=weights, agent=agent, device="cpu", feature_cache=False)
    sampler.save_agent(agent_file)
    reloaded = TemporalSampler.from_open_clip(
        name, pretrained=weights, agent=agent_file, device="cpu", feature_cache=False
    )
    frames = np.random.default_rng(0).integers(0, 255, (30, 36, 48, 3), dtype=np.uint8)
    a = sampler.select_frames(frames, "what happens", k=5)
    b = reloaded.select_frames(frames, "what happens", k=5)
    assert a.indices == b.indices
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    wrong = TemporalAgent(dim=768)
    with pytest.raises(ValueError, match="agent dimension 768"):
        TemporalSampler.from_open_clip(name, pretrained=weights, agent=wrong, device="cpu", feature_cache=False)


def test_open_clip_bf16_on_cpu(tiny_open_clip):
    """``from_open_clip(dtype=torch.bfloat16)`` on the CPU: bfloat16 products in the image tower under
    autocast, features within 1e-4 cosine of float32, the same picks, and its own cache fingerprint."""
    name, weights, _ = tiny_open_clip
    f32 = TemporalSampler.from_open_clip(name, pretrained=weights, device="cpu", feature_cache=False)
    b16 = TemporalSampler.from_open_clip(name, pretrained=weights, device="cpu", dtype=torch.bfloat16,
                                         feature_cache=False)
    assert b16.encoder.precision == "autocast-bfloat16" and f32.encoder.precision == "float32"
    assert b16.encoder.model.visual.transformer.resblocks[0].attn.in_proj_weight.dtype == torch.bfloat16
    assert b16.encoder.model.transformer.resblocks[0].attn.in_proj_weight.dtype == torch.float32  # text tower
    assert b16.encoder.fingerprint() != f32.encoder.fingerprint()
    frames = torch.from_numpy(np.random.default_rng(3).integers(0, 255, (24, 36, 48, 3), dtype=np.uint8))
    a, b = f32.encoder.encode_images(frames), b16.encoder.encode_images(frames)
    assert not torch.equal(a, b)
    assert torch.nn.functional.cosine_similarity(a, b).min().item() >= 0.9999
    picks = [s.select_frames(frames, "what happens", k=5).indices for s in (f32, b16)]
    assert picks[0] == picks[1]


@pytest.mark.parametrize("sizes", [(1, 2, 3, 5, 2), (7, 6), (4, 9), (13,)])
def test_a_frames_features_do_not_depend_on_its_batch(uncached_sampler, sizes):
    """The coarse-to-fine search encodes frames in batches of any size and must get the exhaustive pass's
    features bit for bit: matrix kernels that pick their blocking by row count would break that."""
    gen = torch.Generator().manual_seed(sum(sizes))
    frames = torch.randint(0, 255, (13, 40, 56, 3), dtype=torch.uint8, generator=gen)
    together = uncached_sampler.encoder.encode_images(frames)
    assert together.shape == (13, uncached_sampler.encoder.embed_dim)
    start = 0
    for size in sizes:
        alone = uncached_sampler.encoder.encode_images(frames[start : start + size])
        assert torch.equal(alone, together[start : start + size]), (start, size)
        start += size
    assert uncached_sampler.encoder.encode_images(frames[:0]).shape == (0, uncached_sampler.encoder.embed_dim)
