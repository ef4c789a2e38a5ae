"""Loading and saving the released checkpoint format: local directories, the Hub cache, bad checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tspo_sampler import CheckpointError, TemporalSampler


def _case_selection(sampler, cases, n=1):
    case, data = cases[n]
    return sampler.select_frames(data["frames"], case["question"], case["k"], window_size=case["window"]).indices


def test_defaults_on_cpu_are_float32(sampler):
    assert sampler.device.type == "cpu"
    assert sampler.encoder.dtype == torch.float32
    assert next(sampler.agent.parameters()).dtype == torch.float32
    assert sampler.checkpoint_dtype == torch.bfloat16


def test_text_features_equal_reference(sampler, cases):
    for case, data in cases:
        np.testing.assert_allclose(sampler.encode_text(case["question"]).numpy(), data["text_features"], atol=1e-4)


def test_save_pretrained_roundtrip_keeps_the_format(sampler, cases, tmp_path, checkpoint_dir):
    out = sampler.save_pretrained(tmp_path / "saved")
    original = load_file(checkpoint_dir / "model.safetensors")
    saved = load_file(out / "model.safetensors")
    assert set(saved) == {k for k in original if not k.endswith("position_ids")}
    for key, tensor in saved.items():
        assert tensor.dtype == torch.bfloat16
        assert torch.equal(tensor, original[key]), key
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "clip" and config["architectures"] == ["TSPOModel"]
    assert config["torch_dtype"] == "bfloat16"
    pre = json.loads((out / "preprocessor_config.json").read_text())
    assert pre["size"] == {"shortest_edge": 32} and pre["image_processor_type"] == "CLIPImageProcessor"
    again = TemporalSampler.from_pretrained(out, feature_cache=False)
    assert _case_selection(again, cases) == _case_selection(sampler, cases)
    # the saved directory is a transformers CLIP checkpoint: CLIPModel and CLIPProcessor load it
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(out)
    processor = CLIPProcessor.from_pretrained(out)
    assert model.config.projection_dim == 768
    assert processor.tokenizer("hello")["input_ids"]


def test_save_float32(sampler, tmp_path):
    out = sampler.save_pretrained(tmp_path / "fp32", dtype=torch.float32)
    assert load_file(out / "model.safetensors")["selector.mlp.0.weight"].dtype == torch.float32


def test_sharded_checkpoint(checkpoint_dir, tmp_path, cases, sampler):
    shard_dir = tmp_path / "sharded"
    shutil.copytree(checkpoint_dir, shard_dir)
    state = load_file(shard_dir / "model.safetensors")
    (shard_dir / "model.safetensors").unlink()
    keys = sorted(state)
    half = len(keys) // 2
    shards = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
    weight_map = {}
    for name, part in shards.items():
        save_file({k: state[k] for k in part}, str(shard_dir / name))
        weight_map.update({k: name for k in part})
    (shard_dir / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    loaded = TemporalSampler.from_pretrained(shard_dir, feature_cache=False)
    assert _case_selection(loaded, cases) == _case_selection(sampler, cases)


def _without_agent(checkpoint_dir: Path, dst: Path) -> Path:
    shutil.copytree(checkpoint_dir, dst)
    state = load_file(dst / "model.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith("selector.")}, str(dst / "model.safetensors"))
    return dst


def test_checkpoint_without_agent_is_a_clear_error(checkpoint_dir, tmp_path, cases):
    plain = _without_agent(checkpoint_dir, tmp_path / "plain")
    with pytest.raises(CheckpointError, match="no agent weights"):
        TemporalSampler.from_pretrained(plain)
    raw = TemporalSampler.from_pretrained(plain, require_agent=False, feature_cache=False)
    case, data = cases[1]
    sel = raw.select_frames(data["frames"], case["question"], case["k"])
    np.testing.assert_allclose(sel.scores, data["clip_scores"] / 0.025, atol=0.05)


def test_agent_with_wrong_shape(checkpoint_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(checkpoint_dir, bad)
    state = load_file(bad / "model.safetensors")
    state["selector.mlp.0.weight"] = torch.zeros(512, 768, dtype=torch.bfloat16)
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"selector\.mlp\.0\.weight has shape \(512, 768\)"):
        TemporalSampler.from_pretrained(bad)


def test_incomplete_agent(checkpoint_dir, tmp_path):
    bad = tmp_path / "partial"
    shutil.copytree(checkpoint_dir, bad)
    state = load_file(bad / "model.safetensors")
    del state["selector.temporal.Self_v.bias"]
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError, match="selector.temporal.Self_v.bias"):
        TemporalSampler.from_pretrained(bad)


def test_pickled_weights_are_refused(checkpoint_dir, tmp_path):
    bad = tmp_path / "pickled"
    shutil.copytree(checkpoint_dir, bad)
    (bad / "model.safetensors").unlink()
    (bad / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(CheckpointError, match="safetensors only"):
        TemporalSampler.from_pretrained(bad)


def test_not_a_clip_checkpoint(checkpoint_dir, tmp_path):
    bad = tmp_path / "other"
    shutil.copytree(checkpoint_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["model_type"] = "llama"
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="model_type"):
        TemporalSampler.from_pretrained(bad)


def test_missing_directory_and_uncached_repo(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        TemporalSampler.from_pretrained(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache"):
        TemporalSampler.from_pretrained("someone/not-cached", cache_dir=tmp_path / "hf", local_files_only=True)


def populate_hf_cache(
    cache_dir: Path, repo_id: str, checkpoint_dir: Path, commit: str = "0123456789abcdef0123456789abcdef01234567"
) -> Path:
    """Lay out a Hugging Face Hub cache entry (blobs, snapshots, refs) as huggingface_hub writes it."""
    import hashlib

    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for f in checkpoint_dir.iterdir():
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / f.name)
    return snapshot


def test_hub_id_from_prepopulated_cache_offline(checkpoint_dir, tmp_path, cases, sampler):
    cache = tmp_path / "hub"
    populate_hf_cache(cache, "tspo-test/TSPO-tiny", checkpoint_dir)
    loaded = TemporalSampler.from_pretrained(
        "tspo-test/TSPO-tiny", cache_dir=cache, local_files_only=True, feature_cache=False
    )
    assert loaded.checkpoint_dir.parent.name == "snapshots"
    assert _case_selection(loaded, cases) == _case_selection(sampler, cases)


def test_hub_id_with_hf_hub_offline_env(checkpoint_dir, tmp_path):
    """A fresh process with HF_HUB_OFFLINE=1 and HF_HOME pointing at a pre-populated cache."""
    home = tmp_path / "hf_home"
    populate_hf_cache(home / "hub", "tspo-test/TSPO-tiny", checkpoint_dir)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(home), "TSPO_SAMPLER_CACHE": str(tmp_path / "fc")}
    env.pop("HF_HUB_CACHE", None)
    code = (
        "from tspo_sampler import TemporalSampler;"
        "s = TemporalSampler.from_pretrained('tspo-test/TSPO-tiny');"
        "print(s.checkpoint_dir)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "models--tspo-test--TSPO-tiny" in out.stdout
    # an unknown revision is not in the cache: a clear error, not a network call
    code = (
        "from tspo_sampler import TemporalSampler; "
        "TemporalSampler.from_pretrained('tspo-test/TSPO-tiny', revision='v9')"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "CheckpointError" in out.stderr


def test_push_to_hub_uploads_the_released_format(sampler, monkeypatch):
    """push_to_hub writes the checkpoint plus a model card and hands the folder to huggingface_hub."""
    import huggingface_hub

    seen = {}

    class FakeApi:  # the network is the only part replaced
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kw):
            seen["repo"] = repo_id

        def upload_folder(self, repo_id, folder_path, **kw):
            seen["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            seen["card"] = (Path(folder_path) / "README.md").read_text()
            return "https://huggingface.co/me/agent/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = sampler.push_to_hub("me/agent")
    assert url.endswith("abc") and seen["repo"] == "me/agent"
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= set(seen["files"])
    assert "library_name: tspo-sampler" in seen["card"] and 'from_pretrained("me/agent")' in seen["card"]
