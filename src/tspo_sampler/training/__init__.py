"""GRPO training of the TSPO temporal agent (CLIP and the answering MLLM stay frozen).

>>> from tspo_sampler.training import GRPOConfig, train_grpo
>>> config = GRPOConfig(data="train.jsonl", video_root="/data/videos", mllm="Qwen/Qwen2.5-VL-7B-Instruct")
>>> train_grpo(config)  # doctest: +SKIP

Only :class:`GRPOConfig` is imported with the package (``tspo train-grpo --help`` builds its flags from it
without torch); the other names import their module, and torch, at first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._config import GRPOConfig

if TYPE_CHECKING:
    from ._checkpoint import CheckpointError, latest_checkpoint
    from ._data import BadRow, Episode, TrainExample, load_examples
    from ._trainer import GRPOTrainer, train_grpo

_MODULE_OF = {
    "CheckpointError": "._checkpoint",
    "latest_checkpoint": "._checkpoint",
    "BadRow": "._data",
    "Episode": "._data",
    "TrainExample": "._data",
    "load_examples": "._data",
    "GRPOTrainer": "._trainer",
    "train_grpo": "._trainer",
}

__all__ = [
    "BadRow",
    "CheckpointError",
    "Episode",
    "GRPOConfig",
    "GRPOTrainer",
    "TrainExample",
    "latest_checkpoint",
    "load_examples",
    "train_grpo",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name], __name__), name)
