"""Training checkpoints: pickle-free state files, bit-exact resume, and crafted pickles that must never run."""

from __future__ import annotations

import json
import pickle
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tspo_sampler.training import GRPOConfig, GRPOTrainer, latest_checkpoint
from tspo_sampler.training._checkpoint import CheckpointError, load_state, restore_rng_state, rng_state, save_state
from tspo_sampler.training._simulation import SimulatedAnswerer, SyntheticVideos

SRC = Path(__file__).resolve().parent.parent / "src" / "tspo_sampler"


class _NoiselessAnswerer(SimulatedAnswerer):
    """The simulated answerer without its own random draws (whose state no checkpoint holds)."""

    def _belief(self, selection, question, letters):
        truth = letters.index(self._truth[question.splitlines()[0].strip()])
        logits = torch.zeros(len(letters))
        logits[truth] = 3.0 * self._share(selection, question) - 1.0
        return torch.log_softmax(logits, dim=-1)


def _trainer(out: Path, **kw) -> GRPOTrainer:
    env = SyntheticVideos(num_videos=8, num_frames=20, dim=16, seed=0)
    cfg = GRPOConfig(output_dir=str(out), max_steps=4, save_steps=2, batch_size=2, num_generations=3, k_general=3,
                     progress=False, report_to=["jsonl"], kl_beta=0.05, seed=5, accuracy="soft", **kw)
    return GRPOTrainer(cfg, sampler=env, answerer=_NoiselessAnswerer(env), train_examples=env.examples)


class _Payload:
    """Unpickling this creates ``marker``: what a crafted checkpoint could do with any code it likes."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant_pickles(ckpt: Path, marker: Path) -> None:
    for name in ("optimizer.pt", "rng_state_0.pt"):
        (ckpt / name).write_bytes(pickle.dumps({"optimizer": _Payload(marker)}))


def test_state_files_round_trip_exactly(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.95))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "tuple": (1, 2.5, None, "x"), "ints": {0: [True, 3]},
             "array": np.arange(5, dtype=np.uint32), "nan": float("inf")}
    save_state(tmp_path / "s.safetensors", state)
    back = load_state(tmp_path / "s.safetensors")
    assert back["tuple"] == (1, 2.5, None, "x") and back["ints"] == {0: [True, 3]} and back["nan"] == float("inf")
    assert back["array"].dtype == np.uint32 and back["array"].tolist() == [0, 1, 2, 3, 4]
    assert back["optimizer"]["param_groups"] == opt.state_dict()["param_groups"]
    for pid, st in opt.state_dict()["state"].items():
        for key, value in st.items():
            assert torch.equal(back["optimizer"]["state"][pid][key], value), (pid, key)
    with pytest.raises(TypeError, match="cannot store a object"):
        save_state(tmp_path / "bad.safetensors", {"x": object()})


def test_rng_state_restores_every_stream(tmp_path):
    np_rng, gen = np.random.default_rng(3), torch.Generator().manual_seed(4)
    save_state(tmp_path / "rng.safetensors", rng_state(np_rng, gen))

    def draw(np_rng, gen):
        ours = np_rng.random(), torch.rand(2, generator=gen).tolist()
        return random.random(), np.random.rand(), torch.rand(2).tolist(), *ours

    first = draw(np_rng, gen)
    np_rng2, gen2 = np.random.default_rng(0), torch.Generator()
    restore_rng_state(load_state(tmp_path / "rng.safetensors"), np_rng2, gen2)
    assert draw(np_rng2, gen2) == first


def test_damaged_state_file_is_a_clear_error(tmp_path):
    path = tmp_path / "optimizer.safetensors"
    save_state(path, {"a": torch.ones(3)})
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="optimizer.safetensors: cannot read training state"):
        load_state(path)


def test_resume_is_bit_exact_and_writes_no_pickles(tmp_path):
    full = _trainer(tmp_path / "full")
    full.train()
    ckpt = tmp_path / "full" / "checkpoint-2"
    assert sorted(p.suffix for p in ckpt.iterdir() if p.name.startswith(("optimizer", "rng_state"))) == [
        ".safetensors", ".safetensors"]
    assert not list((tmp_path / "full").rglob("*.pt")) and not list((tmp_path / "full").rglob("*.pkl"))

    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(ckpt, resumed_dir / "checkpoint-2")
    resumed = _trainer(resumed_dir, resume=True)
    resumed.train()
    assert [h["step"] for h in resumed.history] == [3, 4]
    for k, v in full.agent.state_dict().items():
        assert torch.equal(resumed.agent.state_dict()[k], v), k
    def timeless(record):
        return {k: v for k, v in record.items() if not k.endswith("_s")}

    assert [timeless(r) for r in full.history[2:]] == [timeless(r) for r in resumed.history]
    m = resumed.optimizer.state_dict()
    n = full.optimizer.state_dict()
    assert all(torch.equal(m["state"][i]["exp_avg_sq"], n["state"][i]["exp_avg_sq"]) for i in n["state"])
    assert resumed.scheduler.state_dict() == full.scheduler.state_dict()


def test_crafted_pickles_in_a_checkpoint_are_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    # an old-format (or crafted) checkpoint: pickles only
    out = tmp_path / "run"
    ckpt = out / "checkpoint-2"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    _plant_pickles(ckpt, marker)
    trainer = _trainer(out, resume=True)
    assert latest_checkpoint(out) is None
    with pytest.raises(CheckpointError, match=r"optimizer\.pt, rng_state_0\.pt: pickled state .* not loaded"):
        trainer.train()
    with pytest.raises(CheckpointError, match="not loaded"):
        _trainer(tmp_path / "other", resume=str(ckpt)).train()
    assert not marker.exists()

    # a good checkpoint with pickles planted beside its state files: they are ignored
    good = tmp_path / "good"
    _trainer(good).train()
    _plant_pickles(good / "checkpoint-2", marker)
    resumed = _trainer(tmp_path / "again", resume=str(good / "checkpoint-2"))
    resumed.train()
    assert resumed.global_step == 4 and not marker.exists()
    # the payload is live: loading it the unsafe way would have run it
    pickle.loads((good / "checkpoint-2" / "optimizer.pt").read_bytes())
    assert marker.exists()


def test_no_unpickling_anywhere_in_the_package():
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for pattern in (r"weights_only\s*=\s*False", r"pickle\.loads?\(", r"import pickle", r"joblib\.load"):
            offenders += [f"{path.relative_to(SRC)}: {pattern}" for _ in re.finditer(pattern, text)]
        for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if not re.search(r"weights_only\s*=\s*True", call.group(1)):
                offenders.append(f"{path.relative_to(SRC)}: {call.group(0)}")
    assert not offenders, offenders
