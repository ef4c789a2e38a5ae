"""Training checkpoints without pickle: ``checkpoint-<step>`` directories, their rotation, and RNG state.

Optimizer, scheduler and RNG states are nested Python structures holding tensors. They are written as
one safetensors file each: the tensors as tensors, the structure as JSON in the file's header, with
tensors replaced by references and tuples and non-string dictionary keys tagged so they come back as
they went in. Reading them runs no code (no ``torch.load``, no unpickling), so a checkpoint directory
from someone else cannot run anything on resume. Checkpoints of older versions (``optimizer.pt``,
``rng_state_<rank>.pt``, pickles) are refused with an error, never loaded.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._errors import CheckpointError

CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_STATE = "optimizer.safetensors"
CONFIG_NAME = "training_config.json"
LEGACY_PICKLES = ("optimizer.pt", "rng_state_*.pt")
_STRUCTURE_KEY = "tspo_state"
_FORMAT_VERSION = "1"


def rng_file(checkpoint: Path, rank: int) -> Path:
    return checkpoint / f"rng_state_{rank}.safetensors"


# ---------------------------------------------------------------------------------------------- encoding
def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able copy of ``obj`` with every tensor moved into ``tensors`` (by a reference)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):  # the bytes as they are, whatever the dtype
        raw = torch.from_numpy(np.frombuffer(np.ascontiguousarray(obj).tobytes(), dtype=np.uint8).copy())
        return {"__ndarray__": _encode(raw, tensors), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"cannot store a {type(obj).__name__} in a training checkpoint (tensors, numbers, text only)")


def _decode(obj: Any, tensors: Any) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors.get_tensor(obj["__tensor__"])
    if "__ndarray__" in obj:
        raw = _decode(obj["__ndarray__"], tensors).numpy().tobytes()
        return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def save_state(path: str | os.PathLike, state: Any) -> None:
    """Write a nested structure of tensors, arrays, numbers and text as one safetensors file (atomically)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(state, tensors)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    save_file(tensors, str(tmp), metadata={_STRUCTURE_KEY: json.dumps(structure), "version": _FORMAT_VERSION})
    os.replace(tmp, path)


def load_state(path: str | os.PathLike) -> Any:
    """Read what :func:`save_state` wrote; nothing in the file is executed."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if _STRUCTURE_KEY not in meta:
                raise CheckpointError(f"{path}: not a tspo-sampler training state (no {_STRUCTURE_KEY!r} header)")
            return _decode(json.loads(meta[_STRUCTURE_KEY]), f)
    except CheckpointError:
        raise
    except Exception as e:  # OSError, JSON errors, or safetensors' own SafetensorError on a damaged file
        raise CheckpointError(f"{path}: cannot read training state: {e}") from e


# ---------------------------------------------------------------------------------------------- RNG
def rng_state(np_rng: np.random.Generator, generator: torch.Generator) -> dict[str, Any]:
    """Every random stream a training step draws from: the trainer's own and the global ones."""
    return {
        "numpy": np_rng.bit_generator.state,
        "torch_generator": generator.get_state(),
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy_global": np.random.get_state(),
    }


def restore_rng_state(state: dict[str, Any], np_rng: np.random.Generator, generator: torch.Generator) -> None:
    np_rng.bit_generator.state = state["numpy"]
    generator.set_state(state["torch_generator"])
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy_global"])


# ---------------------------------------------------------------------------------------------- directories
def _numbered(output_dir: Path) -> list[tuple[int, Path]]:
    if not output_dir.is_dir():
        return []
    found = []
    for p in output_dir.iterdir():
        m = re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / TRAINER_STATE).is_file() and (checkpoint / OPTIMIZER_STATE).is_file()


def legacy_pickles(checkpoint: Path) -> list[Path]:
    """Pickle files an older version wrote into ``checkpoint`` (never loaded)."""
    return sorted(p for pattern in LEGACY_PICKLES for p in checkpoint.glob(pattern))


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """``checkpoint-<step>`` directories of a run, oldest first (complete ones only)."""
    return [p for _, p in _numbered(Path(output_dir)) if is_complete(p)]


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete ``checkpoint-<step>`` of a run, or ``None``."""
    ckpts = list_checkpoints(output_dir)
    return ckpts[-1] if ckpts else None


def refuse_legacy(output_dir: str | os.PathLike) -> None:
    """Raise when a run has a checkpoint in the old pickle format newer than its newest loadable one:
    resuming from an older one, or from scratch, without a word would throw that training away."""
    numbered = _numbered(Path(output_dir))
    complete = [step for step, p in numbered if is_complete(p)]
    legacy = [(step, p) for step, p in numbered if not is_complete(p) and legacy_pickles(p)]
    if legacy and (not complete or legacy[-1][0] > complete[-1]):
        raise CheckpointError(legacy_message(legacy[-1][1]))


def legacy_message(checkpoint: Path) -> str:
    names = ", ".join(p.name for p in legacy_pickles(checkpoint))
    return (
        f"{checkpoint} holds {names}: pickled state from an older tspo-sampler, which is not loaded "
        f"(unpickling a file can run arbitrary code). Resume from a checkpoint written by this version, "
        f"or start again from the released weights in that directory (--init {checkpoint})"
    )


def read_json(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON file; a damaged one is a :class:`CheckpointError` naming the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: damaged or unreadable ({exc})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: damaged (expected a JSON object, got {type(value).__name__})")
    return value


def open_checkpoint(directory: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """``(directory, trainer state)`` of a checkpoint to resume from; a missing directory, a missing state
    file, pickles of an older version or a damaged ``trainer_state.json`` raise :class:`CheckpointError`."""
    ckpt = Path(directory)
    if not ckpt.is_dir():
        what = "is not a directory" if ckpt.exists() else "does not exist"
        raise CheckpointError(f"checkpoint directory {ckpt} {what}")
    if not (ckpt / OPTIMIZER_STATE).is_file():
        if legacy_pickles(ckpt):
            raise CheckpointError(legacy_message(ckpt))
        raise CheckpointError(f"{ckpt} is not a complete training checkpoint: {OPTIMIZER_STATE} is missing")
    if not (ckpt / TRAINER_STATE).is_file():
        raise CheckpointError(f"{ckpt} is not a complete training checkpoint: {TRAINER_STATE} is missing")
    state = read_json(ckpt / TRAINER_STATE)
    if isinstance(state.get("global_step"), bool) or not isinstance(state.get("global_step"), int):
        raise CheckpointError(f"{ckpt / TRAINER_STATE}: damaged (no integer global_step)")
    return ckpt, state


def rotate_checkpoints(output_dir: str | os.PathLike, limit: int | None) -> None:
    """Keep the newest ``limit`` complete checkpoints of a run (all when ``limit`` is falsy)."""
    if not limit:
        return
    for old in list_checkpoints(output_dir)[:-limit]:
        shutil.rmtree(old, ignore_errors=True)


__all__ = [
    "CHECKPOINT_PREFIX",
    "CONFIG_NAME",
    "OPTIMIZER_STATE",
    "TRAINER_STATE",
    "CheckpointError",
    "latest_checkpoint",
    "list_checkpoints",
    "load_state",
    "rng_state",
    "rotate_checkpoints",
    "save_state",
]
