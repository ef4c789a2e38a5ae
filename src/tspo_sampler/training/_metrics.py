"""Training metrics: averaging over processes and logging windows, and the log sinks (JSONL, TensorBoard)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import JsonlAppender

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"

KNOWN_METRICS = frozenset({
    "reward", "reward_std", "accuracy", "entropy", "tau", "lr", "rollout_s", "step_s", "loss", "clip_frac",
    "grad_norm", "kl", "temporal_reward", "hit_rate", "num_rollouts",
})  # fmt: skip
SUMMED = frozenset({"num_rollouts"})  # totals over processes; every other metric is a mean


def gather_metrics(accelerator: Any, metrics: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average metrics over processes (a key missing on a process does not count there).

    Every process must call this with the same :data:`KNOWN_METRICS` (it is a collective): the keys
    are the union of the known ones and this process's, so a metric only some processes have (``kl``,
    ``hit_rate``) is still reduced in the same order everywhere.
    """
    if accelerator.num_processes == 1:
        return dict(metrics)
    keys = sorted(KNOWN_METRICS | set(metrics))
    vals = torch.tensor([[metrics.get(k, 0.0), 1.0 if k in metrics else 0.0] for k in keys], dtype=torch.float64,
                        device=device)
    tot = accelerator.reduce(vals, reduction="sum")
    out = {}
    for k, (s, n) in zip(keys, tot.tolist(), strict=True):
        if n > 0:
            out[k] = s if k in SUMMED else s / n
    return out


def summarise_window(window: Sequence[dict[str, float]], *, steps: int, elapsed_s: float) -> dict[str, float]:
    """One log record for the steps since the last one: means, plus throughput over the window.

    ``steps`` and ``elapsed_s`` are counted since training (re)started, for ``steps_per_s``.
    """
    agg = {k: float(np.mean([w[k] for w in window if k in w])) for k in set().union(*window)}
    agg["num_rollouts"] = float(sum(w.get("num_rollouts", 0.0) for w in window))
    agg["steps_per_s"] = steps / max(elapsed_s, 1e-9)
    agg["rollouts_per_s"] = agg["num_rollouts"] / max(sum(w.get("step_s", 0.0) for w in window), 1e-9)
    return agg


class MetricSinks:
    """Where log records go on the main process: ``metrics.jsonl`` and, if installed, TensorBoard.

    ``report_to`` names the sinks (``jsonl``, ``tensorboard``). Nothing is opened until :meth:`open`,
    and :meth:`close` may be called any number of times; the TensorBoard writer's thread is stopped there.
    """

    def __init__(self, output_dir: str | Path, report_to: Sequence[str]) -> None:
        self.output_dir = Path(output_dir)
        self.report_to = tuple(report_to)
        self.jsonl: JsonlAppender | None = None
        self.tensorboard = None

    def open(self) -> None:
        self.close()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if "jsonl" in self.report_to:
            self.jsonl = JsonlAppender(self.output_dir / METRICS_FILE, fsync=False)  # a torn last line is repaired
        if "tensorboard" in self.report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.warning('report_to has "tensorboard", not installed: pip install "tspo-sampler[train]"')
            else:
                self.tensorboard = SummaryWriter(log_dir=str(self.output_dir / TENSORBOARD_DIR))

    def write(self, record: dict[str, Any], step: int) -> None:
        if self.jsonl is not None:
            self.jsonl.write(record)
        if self.tensorboard is not None:
            for k, v in record.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)):
                    self.tensorboard.add_scalar(k, v, step)

    def close(self) -> None:
        if self.jsonl is not None:
            self.jsonl.close()
            self.jsonl = None
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None


__all__ = ["KNOWN_METRICS", "MetricSinks", "gather_metrics", "summarise_window"]
