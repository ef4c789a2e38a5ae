"""Issue 22: with scipy installed (the ``all`` extra brings it), loading an encoder does not import
``scipy.optimize`` (about 40 MB of resident memory) through transformers' object-detection losses; those
losses still get the real ``linear_sum_assignment`` when they run, and a later ``import scipy.optimize`` is real.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("scipy")

CHECKPOINT = Path(__file__).parent / "data" / "tspo_reference" / "checkpoint"

_SCRIPT = """
import sys
from tspo_sampler import TemporalSampler
TemporalSampler.from_pretrained(sys.argv[1], device="cpu", feature_cache=False)
assert "scipy.optimize" not in sys.modules, "scipy.optimize imported at load"
from transformers.loss import loss_for_object_detection as od
import numpy as np
cost = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
rows, cols = od.linear_sum_assignment(cost)
assert list(rows) == [0, 1, 2] and list(cols) == [1, 0, 2], (rows, cols)
import scipy.optimize
assert hasattr(scipy.optimize, "minimize") and scipy.optimize.__spec__ is not None
print("ok")
"""


def test_encoder_load_defers_scipy_optimize():
    res = subprocess.run([sys.executable, "-c", _SCRIPT, str(CHECKPOINT)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("ok")


def test_stand_in_gives_any_name_from_the_real_module():
    code = (
        "import sys\n"
        "from tspo_sampler.features._install import deferred_scipy_optimize\n"
        "with deferred_scipy_optimize():\n"
        "    from scipy.optimize import linear_sum_assignment, minimize\n"
        "    assert 'scipy.optimize' in sys.modules\n"
        "assert sys.modules['scipy.optimize'].__spec__ is not None\n"  # minimize brought the real one
        "print(minimize(lambda x: (x[0] - 2.0) ** 2, [0.0]).x.round(3))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "[2.]" in res.stdout
