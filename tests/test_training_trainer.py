"""Short GRPO runs: the simulated environment, and the real tiny sampler on generated videos."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tspo_sampler.training import GRPOConfig, GRPOTrainer, latest_checkpoint, train_grpo
from tspo_sampler.training._simulation import SimulatedAnswerer, SyntheticVideos

OPTIONS = ["red", "green", "blue", "white"]


class PixelAnswerer(torch.nn.Module):
    """Stand-in MLLM (frozen module): option logits from the mean colour of the shown frames."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = torch.nn.Linear(3, 4)
        self.calls = 0

    def option_logprobs(self, selections, questions, options=("A", "B", "C", "D")):
        self.calls += 1
        x = torch.stack([torch.as_tensor(s.frames, dtype=torch.float32).mean(dim=(0, 1, 2)) / 255 for s in selections])
        return torch.log_softmax(self.head(x)[:, : len(options)] * 20, dim=-1)

    def answer(self, selections, questions, **kw):
        lp = self.option_logprobs(selections, questions)
        return [f"The answer is {'ABCD'[int(i)]}." for i in lp.argmax(-1)]


@pytest.fixture(scope="module")
def video_rows(tmp_path_factory):
    from media import make_video

    root = tmp_path_factory.mktemp("videos")
    rows = []
    for i in range(6):
        make_video(root / f"v{i}.mp4", duration=4.0, fps=8.0, size=(64, 48))
        rows.append({"video": f"v{i}.mp4", "question": f"What happens in clip {i}?", "options": OPTIONS,
                     "answer": "ABCD"[i % 4], "type": "specific" if i % 2 else "general",
                     **({"span": [1.0, 2.5]} if i % 3 == 0 else {})})
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, data


def _qwen_answerer():
    """The real Qwen2.5-VL adapter on a tiny random Qwen2.5-VL (tests/tiny_mllms.py)."""
    from tiny_mllms import build_qwen2_5_vl
    from tspo_sampler.adapters import answerer_for

    model, processor = build_qwen2_5_vl(seed=0)
    return answerer_for(model, processor)


def _sampler(checkpoint_dir, cache):
    from tspo_sampler import TemporalSampler

    return TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache_dir=cache)


def _config(data, root, out, **kw):
    base = dict(data=str(data), video_root=str(root), output_dir=str(out), num_generations=4, k_specific=4,
                k_general=3, fps=4.0, max_candidates=16, clip_length=6, num_distractor_clips=3, max_true_clips=2,
                window_size=4, batch_size=2, max_steps=4, save_steps=2, ppo_epochs=2, progress=False,
                report_to=["jsonl"], save_dtype="float32", seed=3)
    base.update(kw)
    return GRPOConfig(**base)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_real_sampler_run_checkpoint_and_resume(checkpoint_dir, video_rows, tmp_path):
    from tspo_sampler import TemporalSampler

    root, data = video_rows
    cache = tmp_path / "cache"
    sampler = _sampler(checkpoint_dir, cache)
    answerer = _qwen_answerer()
    clip_before = _state(sampler.encoder.model)
    mllm_before = _state(answerer.model)
    agent_before = _state(sampler.agent)
    out = tmp_path / "run"
    trainer = GRPOTrainer(_config(data, root, out), sampler=sampler, answerer=answerer)
    assert trainer.max_steps == 4 and trainer.steps_per_epoch == 3
    trainer.train()

    assert trainer.global_step == 4
    losses = [h["loss"] for h in trainer.history]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    for key in ("reward", "accuracy", "entropy", "hit_rate", "tau", "steps_per_s", "rollouts_per_s"):
        assert key in trainer.history[-1] or key == "hit_rate" and any(key in h for h in trainer.history)
    # only the agent changed (ffn_o is not used by the forward pass, so it stays)
    after = _state(sampler.agent)
    changed = {k for k in after if not torch.equal(after[k], agent_before[k].float())}
    assert changed and all(not k.startswith("temporal.ffn_o") for k in changed)
    assert all(torch.equal(v, clip_before[k]) for k, v in _state(sampler.encoder.model).items())
    assert all(torch.equal(v, mllm_before[k]) for k, v in _state(answerer.model).items())
    assert trainer.answerer_calls == 4 * 2 and trainer.rollouts_answered == 4 * 2 * 4

    # logs and checkpoints
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4]
    assert latest_checkpoint(out).name == "checkpoint-4" and (out / "checkpoint-2").is_dir()
    reloaded = TemporalSampler.from_pretrained(out, device="cpu", feature_cache=False)
    for k, v in reloaded.agent.state_dict().items():
        assert torch.equal(v.float(), after[k]), k

    # resume from step 2 reproduces the uninterrupted run exactly
    out2 = tmp_path / "resumed"
    import shutil

    out2.mkdir()
    shutil.copytree(out / "checkpoint-2", out2 / "checkpoint-2")
    trainer2 = GRPOTrainer(_config(data, root, out2, resume=True), sampler=_sampler(checkpoint_dir, cache),
                           answerer=_qwen_answerer())
    trainer2.train()
    assert [h["step"] for h in trainer2.history] == [3, 4]
    for k, v in _state(trainer2.agent).items():
        assert torch.allclose(v, after[k], atol=1e-6), k


def test_generate_mode_and_kl(checkpoint_dir, video_rows, tmp_path):
    root, data = video_rows
    cfg = _config(data, root, tmp_path / "gen", answer_mode="generate", kl_beta=0.1, estimator="reference",
                  ppo_epochs=1, max_steps=1, save_steps=None, report_to=[], save_dtype=None, max_new_tokens=3)
    trainer = GRPOTrainer(cfg, sampler=_sampler(checkpoint_dir, tmp_path / "c"), answerer=_qwen_answerer())
    trainer.train()
    assert math.isfinite(trainer.history[-1]["loss"]) and "kl" in trainer.history[-1]
    from tspo_sampler import TemporalSampler

    TemporalSampler.from_pretrained(tmp_path / "gen", device="cpu", feature_cache=False)  # bfloat16, released format


def test_pixel_answerer_protocol_run(tmp_path):
    """Any object with the answerer protocol works (here a frozen torch module over the real sampler's frames)."""
    env = SyntheticVideos(num_videos=6, num_frames=20, dim=16, seed=0)
    answerer = PixelAnswerer()
    before = _state(answerer)
    trainer = GRPOTrainer(GRPOConfig(output_dir=str(tmp_path), max_steps=2, num_generations=3, k_general=3,
                                     progress=False, report_to=[], save_steps=None, accuracy="soft"),
                          sampler=env, answerer=answerer, train_examples=env.examples)
    trainer.train()
    assert answerer.calls == 2 and all(torch.equal(v, before[k]) for k, v in _state(answerer).items())
    assert 0.0 <= trainer.history[-1]["accuracy"] <= 1.0


def test_train_grpo_function_and_errors(tmp_path):
    env = SyntheticVideos(num_videos=4, num_frames=20, dim=16, seed=0)
    out = train_grpo(output_dir=str(tmp_path / "o"), max_steps=2, num_generations=2, k_general=3, progress=False,
                     sampler=env, answerer=SimulatedAnswerer(env), train_examples=env.examples, report_to=["jsonl"],
                     ppo_epochs=1)
    assert (out / "model.safetensors").is_file() and (out / "training_config.json").is_file()
    with pytest.raises(ValueError, match="fewer than one global batch"):
        GRPOTrainer(GRPOConfig(batch_size=8, output_dir=str(tmp_path)), sampler=env, answerer=SimulatedAnswerer(env),
                    train_examples=env.examples)
    with pytest.raises(ValueError, match="estimator"):
        GRPOConfig(estimator="nope")


def test_train_grpo_leaves_the_process_group_only_when_it_owns_the_accelerator(tmp_path, monkeypatch):
    """``train_grpo`` ends what it started (a gloo group left to the interpreter's exit can abort the
    process); a caller's own Accelerator is left running for the caller."""
    from accelerate import Accelerator

    ended: list[int] = []
    monkeypatch.setattr(Accelerator, "end_training", lambda self: ended.append(id(self)))
    env = SyntheticVideos(num_videos=4, num_frames=20, dim=16, seed=0)
    common = dict(max_steps=1, num_generations=2, k_general=3, progress=False, sampler=env,
                  answerer=SimulatedAnswerer(env), train_examples=env.examples, report_to=["jsonl"], save_steps=None)
    train_grpo(output_dir=str(tmp_path / "own"), **common)
    assert len(ended) == 1
    mine = Accelerator(cpu=True)
    train_grpo(output_dir=str(tmp_path / "theirs"), accelerator=mine, **common)
    assert len(ended) == 1

    trainer = GRPOTrainer(GRPOConfig(output_dir=str(tmp_path / "t"), max_steps=1, num_generations=2, k_general=3,
                                     progress=False, report_to=["jsonl"], save_steps=None),
                          sampler=env, answerer=SimulatedAnswerer(env), train_examples=env.examples)
    trainer.sinks.open()
    assert trainer.sinks.jsonl is not None
    trainer.end_training()
    assert trainer.sinks.jsonl is None and ended == [ended[0], id(trainer.accelerator)]
