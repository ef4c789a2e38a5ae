"""Issue 21: a torchvision that does not fit torch (``operator torchvision::nms does not exist``) or another import
failure inside transformers' CLIP is one line naming the versions and the fix, not transformers' opaque message.

The failure is simulated in a fresh interpreter: an import hook makes ``import torchvision`` raise the error a
mismatched torchvision raises; transformers' own lazy loader then wraps it as it does for a real mismatch.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from tspo_sampler._errors import InstallError, TSPOError
from tspo_sampler.features._install import explain_import_failure, install_check, matching_torchvision

_BROKEN = """
import importlib.abc, importlib.util, sys
BROKEN, MESSAGE = sys.argv.pop(1), sys.argv.pop(1)
class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == BROKEN:
            return importlib.util.spec_from_loader(name, self)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        raise RuntimeError(MESSAGE)
sys.meta_path.insert(0, Broken())
from tspo_sampler.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_broken(module: str, message: str, *argv: str) -> subprocess.CompletedProcess:
    """``tspo ARGV`` where importing ``module`` raises ``RuntimeError(message)``."""
    return subprocess.run([sys.executable, "-c", _BROKEN, module, message, *argv], capture_output=True, text=True,
                          timeout=300)


def test_mismatched_torchvision_is_one_line_with_versions_and_fix(checkpoint_dir):
    res = _run_broken("torchvision", "operator torchvision::nms does not exist", "select", "--example",
                      "what happens?", "--model", str(checkpoint_dir), "--no-cache")
    assert res.returncode == 2, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    line = lines[0]
    torch_v, vision_v = metadata.version("torch"), metadata.version("torchvision")
    assert line.startswith("tspo select: error: ")
    assert f"torch {torch_v} and torchvision {vision_v} do not match" in line
    assert "operator torchvision::nms does not exist" in line
    assert f'pip install "torchvision=={matching_torchvision(torch_v)}"' in line
    assert "Are this object's requirements" not in line


def test_other_import_failure_inside_clip_names_the_versions(checkpoint_dir):
    # the CLIP modeling module itself fails: not a torchvision operator, still an install problem
    res = _run_broken("transformers.models.clip.modeling_clip", "undefined symbol: _ZN3c104cuda9SetDevice",
                      "select", "--example", "what happens?", "--model", str(checkpoint_dir), "--no-cache")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-3000:]
    assert f"transformers {metadata.version('transformers')}" in res.stderr
    assert f"torch {metadata.version('torch')}" in res.stderr and "pip install --force-reinstall" in res.stderr
    assert "undefined symbol" in res.stderr


def test_install_check_keeps_a_missing_optional_package_as_is():
    with pytest.raises(ModuleNotFoundError) as info, install_check("open_clip", "no_such_pkg_tspo"):
        import no_such_pkg_tspo  # noqa: F401
    assert not isinstance(info.value, TSPOError)
    err = explain_import_failure(RuntimeError("boom"), "x")
    assert isinstance(err, InstallError) and isinstance(err, ImportError)
    assert matching_torchvision("2.14.1+cpu") == "0.29.*" and matching_torchvision("2.5.0") == "0.20.*"
