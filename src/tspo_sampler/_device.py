"""The one rule for "is there an accelerator": used for the default device and for joining processes.

torch's own ``torch.accelerator`` (CUDA, ROCm, XPU, MPS, ...) decides when it exists; older torch
falls back to asking CUDA, XPU and MPS in turn. A CUDA build on a machine without a GPU has no
accelerator: the check asks whether one is usable, not whether torch was compiled for it.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["COMPUTE_DTYPES", "accelerator_device", "check_device", "check_dtype", "has_accelerator", "resolve_dtype"]

COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def accelerator_device() -> torch.device | None:
    """The usable accelerator's device type (``cuda``, ``xpu``, ``mps``, ...), or ``None`` on a CPU-only machine."""
    accel = getattr(torch, "accelerator", None)
    if accel is not None and hasattr(accel, "current_accelerator"):
        return accel.current_accelerator(check_available=True)
    if torch.cuda.is_available():
        return torch.device("cuda")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return torch.device("xpu")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return None


def has_accelerator() -> bool:
    """Whether work should go to an accelerator; without one, distributed processes join as CPU (gloo) workers."""
    return accelerator_device() is not None


def _usable(kind: str) -> bool | None:
    """Whether this machine can run on device type ``kind`` (``None``: torch cannot tell)."""
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        return bool(mps is not None and mps.is_available())
    module = getattr(torch, kind, None)
    available = getattr(module, "is_available", None)
    return bool(available()) if callable(available) else None


def check_device(device: Any, name: str = "device") -> torch.device | None:
    """``device`` as a :class:`torch.device` this machine can use; ``None`` stays ``None`` (the default).

    Refused, naming ``name``: strings torch does not parse, ``meta`` (tensors without data), and a device
    type or index this machine does not have (``cuda`` without a usable GPU, ``cuda:3`` on a 2-GPU machine).
    """
    from ._errors import ArgumentTypeError, InvalidArgumentError

    if device is None:
        return None
    if not isinstance(device, (str, torch.device)):
        raise ArgumentTypeError(f"{name} must be a string such as 'cpu' or 'cuda:0', got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"{name}={str(device)!r} is not a torch device (cpu, cuda, cuda:1, mps, xpu ...)"
        ) from exc
    if dev.type == "cpu":
        return dev
    if dev.type == "meta":
        raise InvalidArgumentError(f"{name}='meta' holds no data; use cpu or an accelerator")
    usable = _usable(dev.type)
    if usable is False:
        raise InvalidArgumentError(f"{name}={str(device)!r}, but this machine has no usable {dev.type} device")
    count = getattr(getattr(torch, dev.type, None), "device_count", None)
    if dev.index is not None and callable(count) and dev.index >= count():
        raise InvalidArgumentError(f"{name}={str(device)!r}, but this machine has {count()} {dev.type} device(s)")
    return dev


def check_dtype(dtype: Any, name: str = "dtype", *, allow_auto: bool = False) -> torch.dtype | str | None:
    """A compute dtype: ``torch.float32``/``bfloat16``/``float16`` or their names (``"float32"`` ...);
    ``None`` stays ``None`` (the default), ``"auto"`` passes where the caller resolves it (``allow_auto``).

    Anything else (``torch.int8``, ``"float8"``, ``"fp32"``) is refused naming ``name`` and the valid values.
    """
    from ._errors import ArgumentTypeError, InvalidArgumentError

    valid = ", ".join(COMPUTE_DTYPES) + (" or 'auto'" if allow_auto else "")
    if dtype is None or (allow_auto and dtype == "auto"):
        return dtype
    if isinstance(dtype, torch.dtype):
        if dtype not in COMPUTE_DTYPES.values():
            raise InvalidArgumentError(f"{name}={dtype} is not a compute dtype; use {valid}")
        return dtype
    if isinstance(dtype, str):
        if dtype not in COMPUTE_DTYPES:
            raise InvalidArgumentError(f"{name}={dtype!r} is not a compute dtype; use {valid}")
        return COMPUTE_DTYPES[dtype]
    raise ArgumentTypeError(f"{name} must be a torch dtype or its name ({valid}), got {type(dtype).__name__}")


def resolve_dtype(dtype: Any, device: torch.device, default: torch.dtype, name: str = "dtype") -> torch.dtype:
    """:func:`check_dtype` with ``"auto"`` accepted and resolved for ``device`` (bfloat16 only on a CPU with
    bfloat16 matrix units: :func:`tspo_sampler.features._weights.resolve_auto_dtype`); ``None``: ``default``."""
    from .features._weights import resolve_auto_dtype

    return resolve_auto_dtype(check_dtype(dtype, name, allow_auto=True), device) or default
