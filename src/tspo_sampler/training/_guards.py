"""What a training run refuses: a resume into other settings, a rerun over a finished run, a step gone NaN.

Checked before anything loads (:func:`resume_checkpoint`): ``--resume`` of a directory that does not exist,
a checkpoint whose ``training_config.json`` differs in settings that shape training (unless
``resume_anyway``), and an ``output_dir`` holding an earlier run without ``resume`` or ``overwrite``.
Checked every step (:func:`check_finite_step`): the loss and the averaged gradient, before the optimizer
touches the agent, so a diverged run stops at the step that diverged and its last checkpoint stays good.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from .._errors import CheckpointError, RunExistsError, TrainingDivergedError
from ._checkpoint import CONFIG_NAME, TRAINER_STATE, _numbered, latest_checkpoint, read_json
from ._config import GRPOConfig
from ._metrics import METRICS_FILE, TENSORBOARD_DIR

logger = logging.getLogger(__name__)

#: Fields a resume may change: where things are, what is logged and kept, how long to train.
NOT_SETTINGS = frozenset({
    "data", "video_root", "eval_data", "cache_dir", "output_dir", "local_files_only", "revision", "device",
    "resume", "resume_anyway", "overwrite", "progress", "report_to", "logging_steps", "save_steps",
    "save_total_limit", "eval_steps", "push_to_hub", "max_steps", "num_epochs",
})
#: What an earlier run leaves in its output directory (besides checkpoint-* directories).
RUN_FILES = (TRAINER_STATE, METRICS_FILE, "model.safetensors")


def changed_settings(config: GRPOConfig, checkpoint: Path) -> list[str]:
    """``"name: old -> new"`` for each setting that differs from the checkpoint's ``training_config.json``."""
    saved_path = checkpoint / CONFIG_NAME
    if not saved_path.is_file():
        return []
    saved = read_json(saved_path)
    now = json.loads(json.dumps(config.to_dict()))
    return [
        f"{name} {saved[name]!r} -> {value!r}"
        for name, value in now.items()
        if name not in NOT_SETTINGS and name in saved and saved[name] != value
    ]


def earlier_run(output_dir: Path) -> list[str]:
    """Names of what an earlier run left in ``output_dir`` (empty when there is none)."""
    found = [p.name for _, p in _numbered(output_dir)]
    return found + [name for name in RUN_FILES if (output_dir / name).exists()]


def resume_checkpoint(config: GRPOConfig) -> Path | None:
    """The checkpoint this run resumes from (``None``: a fresh start), refusing what would go wrong."""
    out = Path(config.output_dir)
    if config.resume:
        if isinstance(config.resume, str):
            ckpt: Path | None = Path(config.resume)
            if not ckpt.is_dir():
                what = "is not a directory" if ckpt.exists() else "does not exist"
                raise CheckpointError(f"resume: checkpoint directory {ckpt} {what}")
        else:
            ckpt = latest_checkpoint(out)
        if ckpt is not None and not config.resume_anyway:
            changes = changed_settings(config, ckpt)
            if changes:
                raise CheckpointError(
                    f"{ckpt} was trained with other settings: {'; '.join(changes)}. Resume with the same "
                    "settings, or pass --resume-anyway (resume_anyway=True) to continue with the new ones"
                )
        return ckpt
    found = earlier_run(out)
    if found and not config.overwrite:
        shown = ", ".join(found[:4]) + (" ..." if len(found) > 4 else "")
        raise RunExistsError(
            f"{out} holds an earlier run ({shown}): pass --resume to continue it, --overwrite to start again "
            "there (deleting its checkpoints, metrics and trainer state), or another --output-dir"
        )
    return None


def clear_earlier_run(output_dir: Path) -> None:
    """``overwrite``: delete an earlier run's checkpoints, metrics, TensorBoard logs and final state."""
    for _, ckpt in _numbered(output_dir):
        shutil.rmtree(ckpt)
    for name in (*RUN_FILES, CONFIG_NAME):
        (output_dir / name).unlink(missing_ok=True)
    if (output_dir / TENSORBOARD_DIR).is_dir():
        shutil.rmtree(output_dir / TENSORBOARD_DIR)


def check_finite_step(loss: torch.Tensor, params: Sequence[torch.nn.Parameter], step: int, world: int,
                      output_dir: Path) -> None:
    """Raise :class:`TrainingDivergedError` when the loss or the (averaged) gradient is NaN or infinite.

    Called after gradients are averaged and before the optimizer steps, so the agent keeps its last finite
    weights; every process reaches the same verdict (the flags are all-reduced).
    """
    grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    grad_norm = torch.stack(grads).norm() if grads else torch.zeros(())
    flags = torch.stack([~torch.isfinite(loss.detach().float()), ~torch.isfinite(grad_norm.to(loss.device))])
    if world > 1:
        import torch.distributed as dist

        flags = flags.to(torch.int32)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    bad_loss, bad_grad = (bool(f) for f in flags)
    if not (bad_loss or bad_grad):
        return
    what = f"the loss ({float(loss.detach()):g})" if bad_loss else f"the gradient (norm {float(grad_norm):g})"
    last = latest_checkpoint(output_dir)
    kept = f"the last good checkpoint is {last}" if last is not None else "no checkpoint was saved before it"
    raise TrainingDivergedError(
        f"step {step}: {what} is not finite; training stopped before this update and nothing was saved; "
        f"{kept}. Lower learning_rate or set max_grad_norm, then resume"
    )
