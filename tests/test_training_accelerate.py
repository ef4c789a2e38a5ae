"""Data-parallel GRPO: two CPU processes under ``accelerate launch``, through both of its CPU routes.

``accelerate launch --cpu --num_processes 2`` starts two CPU processes only through MPI
(``--mpirun_hostfile``; without it accelerate 1.x starts one). ``--multi_gpu --num_processes 2`` on a
machine without GPUs starts them through torchrun, and ``Accelerator(cpu=True)`` joins them in a gloo
group. Both must train the same agent.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from launchers import accelerate_launch

TESTS = Path(__file__).parent


def _run(tmp_path: Path, launcher: str) -> dict:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CPU data-parallel test (this machine has a GPU)")
    launch, launch_env = accelerate_launch(launcher, tmp_path)
    env = {**os.environ, **launch_env, "PYTHONPATH": str(TESTS.parent / "src")}
    out = tmp_path / launcher
    cmd = [*launch, str(TESTS / "training_ddp_worker.py"), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = json.loads((out / "rank0.json").read_text())
    r1 = json.loads((out / "rank1.json").read_text())
    assert r0["world"] == r1["world"] == 2 and r0["step"] == r1["step"] == 3
    assert r0["agent"] == r1["agent"]  # gradients all-reduced: identical agents on both processes
    assert not set(r0["seen"]) & set(r1["seen"])  # disjoint data shards
    assert r0["eval"] == r1["eval"]  # evaluation gathered over both shards
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3]
    assert lines[-1]["num_rollouts"] == 2 * 2 * 4  # 2 processes x 2 questions x G=4
    rng = [out / "checkpoint-2" / f"rng_state_{rank}.safetensors" for rank in (0, 1)]
    assert all(p.is_file() for p in rng)
    assert (out / "model.safetensors").is_file()
    for rank in (0, 1):  # the process group and its threads are gone before the interpreter shuts down
        threads = json.loads((out / f"threads{rank}.json").read_text())
        assert threads is None or not [t for t in threads if "gloo" in t], threads
    return r0


@pytest.mark.slow
def test_two_process_accelerate_run_both_launchers_train_the_same_agent(tmp_path):
    via_torchrun = _run(tmp_path, "torchrun")
    via_mpi = _run(tmp_path, "mpirun")
    assert via_mpi["agent"] == via_torchrun["agent"] and via_mpi["seen"] == via_torchrun["seen"]
    assert via_mpi["eval"] == via_torchrun["eval"]
