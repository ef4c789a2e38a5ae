"""Configuration of GRPO training of the temporal agent."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ESTIMATORS = ("reference", "plackett-luce")
ANSWER_MODES = ("logits", "generate")
ACCURACY_MODES = ("hard", "soft")
TEMPORAL_REWARD_MODES = ("specific", "known", "never")
PPO_RATIOS = ("rollout", "frame")
SCHEDULERS = ("constant", "linear", "cosine", "constant_with_warmup")


@dataclass
class GRPOConfig:
    """Every knob of :func:`~tspo_sampler.training.train_grpo`.

    The defaults reproduce the paper's recipe (G = 8 rollouts, k = 16 / 8 frames for specific / general
    questions, tau annealed linearly 0.025 -> 0.01, AdamW at lr 5e-4, the reference estimator on-policy).
    The default estimator is chosen by ``benchmarks/learnability.py`` (see ``docs/training.md``): the
    reference estimator on-policy reached the target hit rate (0.74 held-out, +0.33 over raw CLIP)
    where Plackett-Luce (0.52), 4 PPO epochs (0.43-0.45) and a KL penalty (0.48) did not, with the
    same answerer calls; ``estimator="plackett-luce"`` and ``ppo_epochs > 1`` stay available.
    """

    # --- data ---------------------------------------------------------------------------------------
    data: str | None = None
    """Training rows (JSONL): ``{"video", "question", "options", "answer", "span"?, "type"?}`` or TSPO-10K rows."""
    video_root: str | None = None
    """Directory that relative ``video`` paths are resolved against (default: the JSONL file's directory)."""
    eval_data: str | None = None
    """Held-out rows evaluated every ``eval_steps`` (hit rate when a span is known; accuracy)."""
    # --- models -------------------------------------------------------------------------------------
    mllm: str | None = None
    """The frozen MLLM that answers (Hub id or local path), loaded through ``tspo_sampler.adapters``."""
    mllm_dtype: str | None = None
    """Data type of the MLLM (``bfloat16``, ``float16``, ``float32``); default: the adapter's choice."""
    init: str = "hzf666/TSPO-0.4B"
    """The sampler checkpoint to start from (released format); its CLIP stays frozen, its agent trains."""
    revision: str | None = None
    local_files_only: bool = False
    cache_dir: str | None = None
    """Where per-video CLIP features are cached on disk (``None``: the sampler's default cache)."""
    output_dir: str = "runs/tspo-grpo"
    save_dtype: str | None = None
    """Weight dtype of saved checkpoints (default: the initial checkpoint's, bfloat16 for released agents)."""
    # --- rollouts -----------------------------------------------------------------------------------
    num_generations: int = 8
    """G: rollouts per question."""
    k_specific: int = 16
    k_general: int = 8
    fps: float = 1.0
    """Candidate frames per second of video (features are cached per video)."""
    max_candidates: int | None = 128
    window_size: int = 12
    tau_start: float = 0.025
    tau_end: float = 0.01
    answer_mode: str = "logits"
    """``logits``: one forward pass reading the option letters' next-token logits; ``generate``: free text."""
    max_new_tokens: int = 256
    answer_batch_size: int | None = None
    """Rollouts per MLLM call (default: all rollouts of a step on this process)."""
    # --- rewards ------------------------------------------------------------------------------------
    accuracy: str = "hard"
    """``hard``: 1 if the parsed/argmax letter is right; ``soft``: the MLLM's probability of the right letter."""
    temporal_reward: str = "specific"
    """``specific``: on composed "specific" samples (the paper); ``known``: whenever a span/mask is known."""
    accuracy_weight: float = 1.0
    temporal_weight: float = 1.0
    # --- dual-style data ----------------------------------------------------------------------------
    compose_specific: bool = True
    """Build "specific" rows as long videos of own clips among clips of unrelated videos."""
    clip_length: int = 50
    min_true_clips: int = 1
    max_true_clips: int = 4
    num_distractor_clips: int = 12
    # --- optimisation -------------------------------------------------------------------------------
    estimator: str = "reference"
    """``reference``: mean over chosen frames of exp(logp - logp.detach()) x advantage (the paper);
    ``plackett-luce``: exact log-probability of the drawn ordered sample under Gumbel top-k."""
    ppo_epochs: int = 1
    """Inner optimisation epochs on the same rollouts (1 = on-policy, the paper)."""
    clip_range: float = 0.2
    ppo_ratio: str = "rollout"
    """Reference estimator under PPO: clip one ratio per rollout (``rollout``, the geometric mean of its
    frames' ratios) or one per chosen frame (``frame``). Identical on-policy (``ppo_epochs=1``)."""
    kl_beta: float = 0.0
    """Weight of KL(agent || initial agent) over the candidate distribution (0: no penalty)."""
    learning_rate: float = 5e-4
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float | None = 1.0
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    batch_size: int = 1
    """Questions per optimisation step on each process."""
    num_epochs: float = 1.0
    max_steps: int | None = None
    """Total optimisation steps (overrides ``num_epochs``)."""
    seed: int = 42
    # --- bookkeeping --------------------------------------------------------------------------------
    save_steps: int | None = 500
    save_total_limit: int | None = 3
    eval_steps: int | None = None
    logging_steps: int = 1
    resume: bool | str = False
    """``True``: continue from the newest ``checkpoint-*`` in ``output_dir``; a path: from that checkpoint."""
    push_to_hub: str | None = None
    """Hub repository id to push the final agent to."""
    report_to: list[str] = field(default_factory=lambda: ["jsonl", "tensorboard"])
    """Metric sinks: ``jsonl`` (``output_dir/metrics.jsonl``), ``tensorboard`` (when installed)."""
    progress: bool = True
    device: str | None = None
    """Device of the frozen models on single-process runs (default: accelerate's)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent option."""
        if self.estimator.replace("_", "-") not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        self.estimator = self.estimator.replace("_", "-")
        _choice("answer_mode", self.answer_mode, ANSWER_MODES)
        _choice("accuracy", self.accuracy, ACCURACY_MODES)
        _choice("temporal_reward", self.temporal_reward, TEMPORAL_REWARD_MODES)
        _choice("lr_scheduler", self.lr_scheduler, SCHEDULERS)
        _choice("ppo_ratio", self.ppo_ratio, PPO_RATIOS)
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 (advantages are group-relative), got {self.num_generations}")
        for name in ("k_specific", "k_general", "batch_size", "ppo_epochs", "window_size", "clip_length",
                     "min_true_clips", "logging_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_true_clips < self.min_true_clips:
            raise ValueError("max_true_clips must be >= min_true_clips")
        if self.num_distractor_clips < 0:
            raise ValueError("num_distractor_clips must be >= 0")
        if not (self.tau_start > 0 and self.tau_end > 0):
            raise ValueError("tau_start and tau_end must be > 0")
        if self.clip_range <= 0:
            raise ValueError("clip_range must be > 0")
        if self.kl_beta < 0:
            raise ValueError("kl_beta must be >= 0")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be > 0")
        if self.fps <= 0:
            raise ValueError("fps must be > 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        if self.num_epochs <= 0:
            raise ValueError("num_epochs must be > 0")
        if isinstance(self.report_to, str):
            self.report_to = [s for s in self.report_to.replace(",", " ").split() if s and s != "none"]

    # --- (de)serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GRPOConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown GRPOConfig option(s): {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides: Any) -> GRPOConfig:
        """Read a YAML (``.yaml``/``.yml``) or JSON file; ``overrides`` win over the file."""
        return cls.from_dict({**load_config_file(path), **overrides})


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    text = p.read_text()
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        values = yaml.safe_load(text) or {}
    else:
        values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"{p}: a config file must hold a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in values.items()}


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
