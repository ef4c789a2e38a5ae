"""Run by tests/test_training_accelerate.py under ``accelerate launch`` with two CPU processes."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

from tspo_sampler.training import GRPOConfig, GRPOTrainer
from tspo_sampler.training._simulation import SimulatedAnswerer, SyntheticVideos


def main(out: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    accelerator = Accelerator(cpu=True)  # the rank, whichever launcher (torchrun: RANK, MPI: PMI_RANK)
    env = SyntheticVideos(num_videos=16, num_frames=24, dim=32, seed=0)
    cfg = GRPOConfig(output_dir=out, max_steps=3, save_steps=2, batch_size=2, num_generations=4, k_general=4,
                     ppo_epochs=2, progress=False, report_to=["jsonl"], kl_beta=0.05)
    trainer = GRPOTrainer(cfg, sampler=env, answerer=SimulatedAnswerer(env, seed=accelerator.process_index),
                          train_examples=env.examples, eval_examples=env.examples[:6], accelerator=accelerator)
    trainer.train()
    ev = trainer.evaluate(methods=("agent", "uniform"))
    digest = hashlib.sha256(b"".join(v.detach().numpy().tobytes() for v in trainer.agent.state_dict().values()))
    record = {"rank": trainer.rank, "world": trainer.world, "step": trainer.global_step, "agent": digest.hexdigest(),
              "seen": sorted(e.line for s in range(3) for e in trainer._step_examples(s)), "eval": ev}
    Path(out, f"rank{trainer.rank}.json").write_text(json.dumps(record))
    trainer.end_training()
    # Native threads left for interpreter shutdown: a gloo thread still running there can abort the
    # process after all its work is done (see tspo_sampler.training._distributed).
    Path(out, f"threads{trainer.rank}.json").write_text(json.dumps(_native_threads()))


def _native_threads() -> list[str] | None:
    try:
        tasks = sorted(os.listdir("/proc/self/task"))
    except OSError:  # not Linux
        return None
    names = []
    for task in tasks:
        try:
            names.append(Path("/proc/self/task", task, "comm").read_text().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return names


if __name__ == "__main__":
    main(sys.argv[1])
