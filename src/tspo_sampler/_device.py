"""The one rule for "is there an accelerator": used for the default device and for joining processes.

torch's own ``torch.accelerator`` (CUDA, ROCm, XPU, MPS, ...) decides when it exists; older torch
falls back to asking CUDA, XPU and MPS in turn. A CUDA build on a machine without a GPU has no
accelerator: the check asks whether one is usable, not whether torch was compiled for it.
"""

from __future__ import annotations

import torch

__all__ = ["accelerator_device", "has_accelerator"]


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
