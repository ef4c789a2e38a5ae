"""``accelerate launch`` with several CPU processes, through either of accelerate's two routes.

Shared by the data-parallel indexing and training tests. ``mpirun`` is the issue's
``accelerate launch --cpu --num_processes N``: accelerate starts CPU processes through MPI
(``--mpirun_hostfile``; without it ``--cpu`` starts one process). ``torchrun`` is accelerate's GPU
launcher (``--multi_gpu``); with no GPU the library joins its processes as CPU (gloo) workers.
"""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import pytest

LAUNCHERS = ["torchrun", "mpirun"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now: the one helper every test uses for servers,
    process groups, and an endpoint that refuses connections."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch(launcher: str, workdir: Path, num_processes: int = 2) -> tuple[list[str], dict[str, str]]:
    """The command up to the script or ``-m module``, and the environment variables to add for it.

    Skips the calling test when the accelerate CLI, or for ``mpirun`` an MPI launcher, is missing.
    """
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate CLI not installed")
    env = {"OMP_NUM_THREADS": "1"}
    if launcher == "mpirun":
        if shutil.which("mpirun") is None:
            pytest.skip("needs an MPI launcher (apt-get install mpich); .ci/run installs one")
        hostfile = workdir / "hostfile"
        hostfile.write_text(f"localhost:{num_processes}\n")
        how = ["--cpu", "--mpirun_hostfile", str(hostfile)]
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    elif launcher == "torchrun":
        how = ["--multi_gpu", "--main_process_port", str(free_port())]
    else:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    cmd = [accelerate, "launch", *how, "--num_processes", str(num_processes), "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    return cmd, env
