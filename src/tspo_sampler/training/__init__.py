"""GRPO training of the TSPO temporal agent (CLIP and the answering MLLM stay frozen).

>>> from tspo_sampler.training import GRPOConfig, train_grpo
>>> config = GRPOConfig(data="train.jsonl", video_root="/data/videos", mllm="Qwen/Qwen2.5-VL-7B-Instruct")
>>> train_grpo(config)  # doctest: +SKIP
"""

from ._checkpoint import CheckpointError, latest_checkpoint
from ._config import GRPOConfig
from ._data import BadRow, Episode, TrainExample, load_examples
from ._trainer import GRPOTrainer, train_grpo

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
