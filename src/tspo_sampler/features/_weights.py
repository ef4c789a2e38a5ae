"""Encoder weights kept in their stored half precision and widened only while their layer runs.

Released TSPO checkpoints store bfloat16 weights, and the reference computes in float32 from them.
Widening every weight at load time doubles their memory (figures in docs/benchmarks.md). Widening is
exact (bfloat16 and float16 are subsets of float32), so widening each weight when it is used gives
bit-identical outputs while only the stored copy stays resident. The cost is one memory-bound copy per
weight per forward pass, small next to a batch of frames through the encoder.

The mechanism is :mod:`torch.nn.utils.parametrize`: each large parameter is stored as
``<module>.parametrizations.<name>.original`` and read back through :class:`Widen`.

:func:`use_autocast_matmuls` is the fast, inexact sibling for CPUs with bfloat16 instructions (AVX512-BF16,
AMX): the weights of the matrix products (linear layers, convolutions, attention in-projections) stay
stored in bfloat16 and are used as they are under ``torch.autocast``, while norms, embeddings and biases
stay float32, and so does the residual stream between layers, so rounding does not build up from layer to
layer (features within a cosine of about 1e-5 of float32: ``benchmarks/bf16_encoder.py``).
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

# Parameters smaller than this are widened once at load: they cost nothing and are read often.
MIN_COMPACT_NUMEL = 4096
_EXACT_WIDENING = {
    torch.bfloat16: (torch.float32, torch.float64),
    torch.float16: (torch.float32, torch.float64),
    torch.float32: (torch.float64,),
}
_COMPUTE_DTYPE_ATTR = "_tspo_compute_dtype"
_AUTOCAST_DTYPE_ATTR = "_tspo_autocast_dtype"
_AUTOCAST_DTYPES = (torch.bfloat16,)
_PARAMETRIZED_KEY = re.compile(r"(^|\.)parametrizations\.([^.]+)\.original$")


class Widen(nn.Module):
    """Parametrization that returns the stored tensor in the compute dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        return stored.to(self.dtype)


def widening_is_exact(stored: torch.dtype, compute: torch.dtype) -> bool:
    """Whether every ``stored`` value is representable in ``compute`` (so widening late changes nothing)."""
    return compute in _EXACT_WIDENING.get(stored, ())


def keep_weights_compact(model: nn.Module, compute_dtype: torch.dtype, *, min_numel: int = MIN_COMPACT_NUMEL) -> int:
    """Keep ``model``'s large floating-point parameters as stored and widen them to ``compute_dtype`` on use.

    Small parameters and floating-point buffers are converted once. Returns the number of parameters kept
    compact. Raises ``ValueError`` if a parameter's stored dtype cannot be widened exactly.
    """
    kept = 0
    for module in list(model.modules()):
        for name, param in list(module.named_parameters(recurse=False)):
            if not param.is_floating_point() or param.dtype == compute_dtype:
                continue
            if not widening_is_exact(param.dtype, compute_dtype):
                raise ValueError(f"cannot compute in {compute_dtype} from {param.dtype} weights without rounding")
            if param.numel() >= min_numel:
                parametrize.register_parametrization(module, name, Widen(compute_dtype), unsafe=True)
                kept += 1
            else:
                param.data = param.data.to(compute_dtype)
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf.is_floating_point() and buf.dtype != compute_dtype:
                setattr(module, name, buf.to(compute_dtype))
    setattr(model, _COMPUTE_DTYPE_ATTR, compute_dtype)
    return kept


def is_compact(model: nn.Module) -> bool:
    """Whether :func:`keep_weights_compact` was applied to ``model``."""
    return hasattr(model, _COMPUTE_DTYPE_ATTR)


def compute_dtype(model: nn.Module) -> torch.dtype:
    """The dtype ``model`` computes in (for a compact model, not the dtype its weights are stored in; for
    one prepared by :func:`use_autocast_matmuls`, the dtype of its matrix products)."""
    dtype = getattr(model, _AUTOCAST_DTYPE_ATTR, None) or getattr(model, _COMPUTE_DTYPE_ATTR, None)
    if dtype is not None:
        return dtype
    return next(p.dtype for p in model.parameters() if p.is_floating_point())


def stored_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` under the plain key names, with compact weights as stored (not widened)."""
    return {_PARAMETRIZED_KEY.sub(r"\1\2", key): value for key, value in model.state_dict().items()}


def _matmul_weights(module: nn.Module) -> list[str]:
    """Names of ``module``'s own parameters that only feed matrix products."""
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return ["weight"]
    if isinstance(module, nn.MultiheadAttention):
        return [n for n in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")
                if getattr(module, n, None) is not None]
    return []


def use_autocast_matmuls(model: nn.Module, towers: list[nn.Module], dtype: torch.dtype = torch.bfloat16) -> int:
    """Store the matrix-product weights of ``towers`` (parts of ``model``) in ``dtype``, to be run under
    :func:`autocast`; everything else keeps its float32 weights. Returns how many weights were converted.

    Weights kept compact (see :func:`keep_weights_compact`) drop their widening and are used as stored,
    so a bfloat16 checkpoint is never widened or copied. The caller must run the towers inside
    ``autocast(model)``: outside it their products would meet float32 inputs with ``dtype`` weights.
    """
    if dtype not in _AUTOCAST_DTYPES:
        raise ValueError(f"autocast matrix products support {_AUTOCAST_DTYPES}, got {dtype}")
    converted = 0
    for tower in towers:
        for module in tower.modules():
            for name in _matmul_weights(module):
                if parametrize.is_parametrized(module, name):
                    parametrize.remove_parametrizations(module, name, leave_parametrized=False)
                param = getattr(module, name)
                if param.dtype != dtype:
                    param.data = param.data.to(dtype)
                converted += 1
    setattr(model, _AUTOCAST_DTYPE_ATTR, dtype)
    return converted


def autocast(model: nn.Module) -> contextlib.AbstractContextManager:
    """``torch.autocast`` in the dtype :func:`use_autocast_matmuls` chose for ``model``; a no-op otherwise."""
    dtype = getattr(model, _AUTOCAST_DTYPE_ATTR, None)
    if dtype is None:
        return contextlib.nullcontext()
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=dtype)


def autocast_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of ``model``'s autocast matrix products, or ``None`` when it has none."""
    return getattr(model, _AUTOCAST_DTYPE_ATTR, None)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), where bfloat16 pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: ask torch what it compiled for
        return torch.backends.cpu.get_cpu_capability() in ("AVX512_BF16", "AMX")
    return " avx512_bf16" in flags or " amx_bf16" in flags


BF16_SLOWDOWN_NOTE = "about 7x slower than float32 measured on a 2-core AMD EPYC without them (docs/benchmarks.md)"
_told: set[str] = set()


def resolve_auto_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype | None:
    """``dtype="auto"``: bfloat16 on a CPU with bfloat16 matrix units (AVX512-BF16 or AMX), where it is about 2x
    float32; float32 on other CPUs (where bfloat16 is several times slower); ``None`` (the device's default)
    on accelerators. Says which, once per process. Other values pass through."""
    if dtype != "auto":
        return dtype  # type: ignore[return-value]
    if device.type != "cpu":
        return None
    fast = cpu_has_bf16()
    choice = torch.bfloat16 if fast else torch.float32
    if str(choice) not in _told:
        _told.add(str(choice))
        why = "has AVX512-BF16 or AMX" if fast else f"lacks AVX512-BF16 and AMX (bfloat16: {BF16_SLOWDOWN_NOTE})"
        logging.getLogger("tspo_sampler").warning("dtype='auto': this CPU %s, so the encoder computes in %s",
                                                  why, str(choice).replace("torch.", ""))
    return choice
