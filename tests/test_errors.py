"""One error module: every exception class of the package derives from TSPOError and a standard class."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pickle
import pkgutil
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

import tspo_sampler
from tspo_sampler import CheckpointError, TemporalSampler, TSPOError, VideoReadError
from tspo_sampler._errors import VideoDamageWarning
from tspo_sampler.video import open_video

SRC = Path(tspo_sampler.__file__).parent
STANDARD = {name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)}


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(tspo_sampler.__path__, "tspo_sampler."):
        if not info.name.endswith(".__main__"):  # runs the CLI on import
            names.append(info.name)
    return names


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("tspo_sampler"):
            return None  # an integration whose host (lmms_eval, ray, ...) is not installed here
        raise


def test_every_exception_class_in_the_package_is_a_tspo_error():
    found, skipped = [], []
    for name in _modules():
        module = _import(name)
        if module is None:
            skipped.append(name)
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                found.append(cls)
                assert issubclass(cls, TSPOError), f"{name}.{cls.__name__} does not derive from TSPOError"
                standard = [b for b in cls.__mro__[1:] if b.__module__ == "builtins" and b not in (Exception, object)]
                assert standard, f"{cls.__name__} mixes in no standard class (ValueError, OSError, ...)"
    assert len(found) >= 10 and all(c.__module__ == "tspo_sampler._errors" for c in found), found
    assert len(skipped) < len(_modules()) // 4, skipped


def test_no_exception_class_defined_outside_the_error_module():
    """Also covers classes nested in functions and modules whose host is missing here (read, not imported)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "_errors.py" and path.parent == SRC:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & (STANDARD | {"TSPOError"}) or any(b.endswith(("Error", "Warning")) for b in bases):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert not offenders, f"define exception classes in tspo_sampler/_errors.py: {offenders}"


def test_old_import_paths_give_the_one_class():
    from tspo_sampler import _errors
    from tspo_sampler.export import ExportError
    from tspo_sampler.features._cache import CacheEntryError
    from tspo_sampler.integrations.lmms_eval._plugin import PluginConfigError
    from tspo_sampler.training import CheckpointError as TrainingCheckpointError
    from tspo_sampler.training._data import RowError
    from tspo_sampler.video import VideoDamageWarning as PublicWarning
    from tspo_sampler.video._watchdog import DecodeTimeout

    assert TrainingCheckpointError is CheckpointError is _errors.CheckpointError
    assert (ExportError, CacheEntryError, RowError, PluginConfigError, DecodeTimeout, PublicWarning) == (
        _errors.ExportError, _errors.CacheEntryError, _errors.RowError, _errors.PluginConfigError,
        _errors.DecodeTimeout, _errors.VideoDamageWarning,
    )
    assert issubclass(DecodeTimeout, TimeoutError) and issubclass(VideoDamageWarning, UserWarning)


def _checkpoint_without_agent(checkpoint_dir: Path, dst: Path) -> Path:
    shutil.copytree(checkpoint_dir, dst)
    state = load_file(dst / "model.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith("selector.")}, str(dst / "model.safetensors"))
    return dst


def test_a_bad_checkpoint_is_caught_by_except_value_error_and_except_tspo_error(checkpoint_dir, tmp_path):
    plain = _checkpoint_without_agent(checkpoint_dir, tmp_path / "plain")
    for kind in (ValueError, TSPOError):
        try:
            TemporalSampler.from_pretrained(plain)
        except kind as exc:
            assert type(exc) is CheckpointError and "no agent weights" in str(exc)
        else:
            pytest.fail("a checkpoint without agent weights loaded")


def test_a_damaged_training_state_is_caught_as_value_error(tmp_path):
    from tspo_sampler.training._checkpoint import load_state

    path = tmp_path / "optimizer.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="optimizer.safetensors: cannot read training state") as info:
        load_state(path)
    assert isinstance(info.value, TSPOError)


def test_an_unreadable_video_is_an_os_error_that_survives_pickling(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(OSError, match="junk.mp4: not a readable media file") as info:
        open_video(junk)
    exc = info.value
    assert isinstance(exc, VideoReadError) and isinstance(exc, TSPOError)
    back = pickle.loads(pickle.dumps(exc))  # sent back from a worker process (Ray, multiprocessing)
    assert (type(back), back.source, back.reason, str(back)) == (VideoReadError, exc.source, exc.reason, str(exc))
