"""Imports that fail say why: a broken optional backend is not reported as "not installed", and a checkpoint
whose weights' dtype cannot be read is an error naming the file (never a silent float32).

Broken installs are real packages on ``sys.path`` whose import fails the way broken wheels do (a shared library
that does not load, a symbol missing from torch, a loader that gives up, a missing dependency).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from media import make_video
from tspo_sampler import CheckpointError, TemporalSampler, VideoReadError
from tspo_sampler.video import VideoDecoder, _optional
from tspo_sampler.video._decord import import_decord
from tspo_sampler.video._torchcodec import import_torchcodec

BROKEN = {
    "decord-libs": ("decord", {"decord/__init__.py": "raise OSError('libavcodec.so.58: cannot open shared object')"},
                    "OSError: libavcodec.so.58: cannot open shared object"),
    "torchcodec-symbol": ("torchcodec", {"torchcodec/__init__.py": "",
                                         "torchcodec/decoders/__init__.py": "from torch import _tspo_no_such_name\n"},
                          "ImportError: cannot import name '_tspo_no_such_name'"),
    "torchcodec-loader": ("torchcodec", {"torchcodec/__init__.py": (
        "raise RuntimeError('Could not load libtorchcodec. Likely causes:\\n"
        "  1. FFmpeg is not properly installed.\\nlibavutil.so.59: cannot open shared object file')")},
        "RuntimeError: Could not load libtorchcodec. Likely causes:; 1. FFmpeg is not properly installed.; "
        "libavutil.so.59: cannot open shared object file"),
    "torchcodec-dependency": ("torchcodec", {"torchcodec/__init__.py": "import tspo_test_missing_dependency\n"},
                              "ModuleNotFoundError: No module named 'tspo_test_missing_dependency'"),
}


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("imports") / "v.mp4", duration=1.0)


@pytest.fixture
def fresh(monkeypatch):
    """Forget earlier import outcomes (each case warns once), and hide already imported backends."""
    monkeypatch.setattr(_optional, "_failures", {})
    monkeypatch.setattr(_optional, "_warned", set())
    for name in _backend_modules():
        monkeypatch.delitem(sys.modules, name)
    yield monkeypatch
    for name in _backend_modules():  # the fakes go; monkeypatch then puts back the real modules
        del sys.modules[name]


def _backend_modules() -> list[str]:
    return [m for m in sys.modules if m.split(".")[0] in ("decord", "torchcodec")]


def _install_broken(monkeypatch, root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    monkeypatch.syspath_prepend(str(root))


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_backend_says_why(case, video, fresh, tmp_path, caplog):
    package, files, cause = BROKEN[case]
    _install_broken(fresh, tmp_path, files)
    importer = import_decord if package == "decord" else import_torchcodec
    with caplog.at_level(logging.WARNING, logger="tspo_sampler.video"):
        assert importer() is None
        assert importer() is None
    warned = [r.getMessage() for r in caplog.records if package in r.getMessage()]
    assert len(warned) == 1 and cause in warned[0] and "is installed but cannot be imported" in warned[0]

    with pytest.raises(VideoReadError) as info:
        VideoDecoder(video, backend=package)
    message = str(info.value)
    assert f"{package} is installed but cannot be imported ({cause}" in message and "not installed" not in message
    assert type(info.value.__cause__).__name__ == cause.split(":")[0]

    with VideoDecoder(video) as dec:  # backend="auto" still decodes, without the broken backend
        assert dec.metadata.backend != package and len(dec.get_frames([0]).data) == 1


class _NotInstalled:
    """An import finder for which ``package`` is not there, raising what Python raises for a missing package."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(self, name: str, path=None, target=None):  # noqa: ANN001
        if name.split(".")[0] == self.package:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@pytest.mark.parametrize("package", ["decord", "torchcodec"])
def test_a_missing_backend_is_reported_as_not_installed(package, video, fresh, caplog):
    fresh.setattr(sys, "meta_path", [_NotInstalled(package), *sys.meta_path])
    with caplog.at_level(logging.WARNING, logger="tspo_sampler.video"):
        assert (import_decord if package == "decord" else import_torchcodec)() is None
    assert not caplog.records  # absence is normal: nothing logged
    with pytest.raises(VideoReadError, match=rf"{package} is not installed \(pip install"):
        VideoDecoder(video, backend=package)


# ------------------------------------------------------------------------------------------- checkpoints
def _copy(checkpoint_dir: Path, dst: Path) -> Path:
    shutil.copytree(checkpoint_dir, dst)
    return dst


def test_a_damaged_weights_header_names_the_file(checkpoint_dir, tmp_path):
    ck = _copy(checkpoint_dir, tmp_path / "damaged")
    (ck / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match=r"cannot read the weights' dtype from .*damaged/model\.safetensors"):
        TemporalSampler.from_pretrained(ck, feature_cache=False)


def test_a_bad_shard_index_names_the_file(checkpoint_dir, tmp_path):
    ck = _copy(checkpoint_dir, tmp_path / "sharded")
    (ck / "model.safetensors").unlink()
    (ck / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(CheckpointError, match=r"cannot read the shard list .*safetensors\.index\.json: KeyError"):
        TemporalSampler.from_pretrained(ck, feature_cache=False)


def test_weights_in_an_unknown_dtype_are_refused_not_taken_as_float32(checkpoint_dir, tmp_path):
    ck = _copy(checkpoint_dir, tmp_path / "fp8")
    state = load_file(ck / "model.safetensors")
    fp8 = {k: v.to(torch.float8_e4m3fn) if v.is_floating_point() and not k.startswith("selector.") else v
           for k, v in state.items()}
    save_file(fp8, str(ck / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"fp8/model\.safetensors stores its weights as F8_E4M3; .*BF16, F16"):
        TemporalSampler.from_pretrained(ck, feature_cache=False)
