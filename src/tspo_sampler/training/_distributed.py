"""Data parallelism for the agent without ``DistributedDataParallel``: one broadcast, one all-reduce per step.

Why not DDP: a process must not reach interpreter shutdown with its gloo group alive. A gloo worker
thread frees the last collective's tensors just after the collective completes; if the main thread is
already shutting the interpreter down, that thread needs the GIL, Python ends it, and the C++ runtime
aborts the process ("terminate called without an active exception", SIGABRT) after all its work is
done. ``destroy_process_group()`` joins those threads only if nothing else holds the group, and in
torch 2.x both a DDP wrapper and a first import of ``torch._dynamo`` after the group exists hold it.
So the agent (a few million parameters; DDP's overlap buys nothing here) has its gradients averaged by
one all-reduce per step, and ``torch._dynamo`` is imported with this module, before any group.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch._dynamo  # noqa: F401  imported before any process group exists: see module docstring


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def _unflat(flat: torch.Tensor, into: Sequence[torch.Tensor]) -> None:
    offset = 0
    for t in into:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n


def broadcast_parameters(module: torch.nn.Module, num_processes: int) -> None:
    """Give every process rank 0's parameters and buffers (what DDP does when it wraps a model)."""
    if num_processes <= 1:
        return
    import torch.distributed as dist

    tensors = [t for t in (*module.parameters(), *module.buffers()) if t.numel()]
    if not tensors:
        return
    with torch.no_grad():
        for dtype in sorted({t.dtype for t in tensors}, key=str):
            group = [t for t in tensors if t.dtype == dtype]
            flat = _flat(group)
            dist.broadcast(flat, src=0)
            _unflat(flat, group)


def average_gradients(params: Sequence[torch.nn.Parameter], num_processes: int) -> None:
    """Average the gradients of ``params`` over processes, in place, in one all-reduce.

    Like DDP's default hook, each gradient is divided by the process count before the sum, so two
    processes give bit-identical results to DDP. A parameter without a gradient on some process
    counts as zeros there (every process must pass the same ``params``).
    """
    if num_processes <= 1:
        return
    import torch.distributed as dist

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    if not grads:
        return
    flat = _flat(grads).div_(num_processes)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    _unflat(flat, grads)


__all__ = ["average_gradients", "broadcast_parameters"]
