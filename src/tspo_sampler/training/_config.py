"""Configuration of GRPO training of the temporal agent."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ESTIMATORS = ("reference", "plackett-luce")
ANSWER_MODES = ("logits", "generate")
ACCURACY_MODES = ("hard", "soft")
TEMPORAL_REWARD_MODES = ("specific", "known", "never")
PPO_RATIOS = ("rollout", "frame")
SCHEDULERS = ("constant", "linear", "cosine", "constant_with_warmup")


def _opt(default: Any = dataclasses.MISSING, *, help: str, aliases: Sequence[str] = (), factory: Any = None) -> Any:
    """A field whose help text (and extra command-line spellings) travel with it in ``metadata``."""
    metadata = {"help": help, "aliases": list(aliases)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class GRPOConfig:
    """Every knob of :func:`~tspo_sampler.training.train_grpo`.

    The defaults reproduce the paper's recipe (G = 8 rollouts, k = 16 / 8 frames for specific / general
    questions, tau annealed linearly 0.025 -> 0.01, AdamW at lr 5e-4, the reference estimator on-policy).
    The default estimator was chosen by ``benchmarks/learnability.py`` (results in ``docs/training.md``);
    ``estimator="plackett-luce"`` and ``ppo_epochs > 1`` stay available.

    Each field's ``metadata`` holds its ``help`` text and any extra command-line ``aliases``; the
    ``tspo train-grpo`` flags are built from them.
    """

    # --- data ---------------------------------------------------------------------------------------
    data: str | None = _opt(None, aliases=["--data"], help=(
        'Training rows (JSONL): {"video", "question", "options", "answer", "span"?, "type"?} or TSPO-10K rows.'))
    video_root: str | None = _opt(None, aliases=["--videos", "--video-root"], help=(
        "Directory that relative video paths are resolved against (default: the JSONL file's directory)."))
    eval_data: str | None = _opt(None, help=(
        "Held-out rows evaluated every eval_steps (hit rate when a span is known; accuracy)."))
    # --- models -------------------------------------------------------------------------------------
    mllm: str | None = _opt(None, help=(
        "The frozen MLLM that answers (Hub id or local path), loaded through tspo_sampler.adapters."))
    mllm_dtype: str | None = _opt(None, help=(
        "Data type of the MLLM (bfloat16, float16, float32); default: the adapter's choice."))
    init: str = _opt("hzf666/TSPO-0.4B", help=(
        "The sampler checkpoint to start from (released format); its CLIP stays frozen, its agent trains."))
    revision: str | None = _opt(None, help="Hub revision (branch, tag or commit) of init.")
    local_files_only: bool = _opt(False, help="Never download; use the Hugging Face cache only.")
    cache_dir: str | None = _opt(None, help=(
        "Where per-video CLIP features are cached on disk (None: the sampler's default cache)."))
    output_dir: str = _opt("runs/tspo-grpo", aliases=["--output", "--output-dir"], help=(
        "Where checkpoints, metrics and the final agent are written."))
    save_dtype: str | None = _opt(None, help=(
        "Weight dtype of saved checkpoints (default: the initial checkpoint's, bfloat16 for released agents)."))
    # --- rollouts -----------------------------------------------------------------------------------
    num_generations: int = _opt(8, aliases=["--num-generations", "-G"], help="G: rollouts per question.")
    k_specific: int = _opt(16, help='Frames chosen per rollout for "specific" questions.')
    k_general: int = _opt(8, help='Frames chosen per rollout for "general" questions.')
    fps: float = _opt(1.0, help="Candidate frames per second of video (features are cached per video).")
    max_candidates: int | None = _opt(128, help="Cap on candidate frames per video, spread evenly (None: no cap).")
    window_size: int = _opt(12, help="The agent's attention window.")
    tau_start: float = _opt(0.025, help="Gumbel sampling temperature at the first step (annealed linearly).")
    tau_end: float = _opt(0.01, help="Gumbel sampling temperature at the last step.")
    answer_mode: str = _opt("logits", help=(
        "logits: one forward pass reading the option letters' next-token logits; generate: free text."))
    max_new_tokens: int = _opt(256, help="Token budget of the MLLM's answer with answer_mode=generate.")
    answer_batch_size: int | None = _opt(None, help=(
        "Rollouts per MLLM call (default: all rollouts of a step on this process)."))
    # --- rewards ------------------------------------------------------------------------------------
    accuracy: str = _opt("hard", help=(
        "hard: 1 if the parsed/argmax letter is right; soft: the MLLM's probability of the right letter."))
    temporal_reward: str = _opt("specific", help=(
        'specific: on composed "specific" samples (the paper); known: whenever a span/mask is known; never.'))
    accuracy_weight: float = _opt(1.0, help="Weight of the accuracy reward.")
    temporal_weight: float = _opt(1.0, help="Weight of the temporal reward.")
    # --- dual-style data ----------------------------------------------------------------------------
    compose_specific: bool = _opt(True, help=(
        'Build "specific" rows as long videos of own clips among clips of unrelated videos.'))
    clip_length: int = _opt(50, help="Candidates per clip when composing specific rows.")
    min_true_clips: int = _opt(1, help="Fewest clips of the row's own video in a composed row.")
    max_true_clips: int = _opt(4, help="Most clips of the row's own video in a composed row.")
    num_distractor_clips: int = _opt(12, help="Clips of unrelated videos in a composed row.")
    # --- optimisation -------------------------------------------------------------------------------
    estimator: str = _opt("reference", help=(
        "reference: mean over chosen frames of exp(logp - logp.detach()) x advantage (the paper); "
        "plackett-luce: exact log-probability of the drawn ordered sample under Gumbel top-k."))
    ppo_epochs: int = _opt(1, help="Inner optimisation epochs on the same rollouts (1 = on-policy, the paper).")
    clip_range: float = _opt(0.2, help="PPO clipping range of the probability ratio.")
    ppo_ratio: str = _opt("rollout", help=(
        "Reference estimator under PPO: clip one ratio per rollout (rollout, the geometric mean of its frames' "
        "ratios) or one per chosen frame (frame). Identical on-policy (ppo_epochs=1)."))
    kl_beta: float = _opt(0.0, help="Weight of KL(agent || initial agent) over the candidate distribution (0: none).")
    learning_rate: float = _opt(5e-4, help="AdamW learning rate.")
    weight_decay: float = _opt(0.0, help="AdamW weight decay.")
    adam_beta1: float = _opt(0.9, help="AdamW beta1.")
    adam_beta2: float = _opt(0.999, help="AdamW beta2.")
    max_grad_norm: float | None = _opt(1.0, help="Gradient norm clipping (None: no clipping).")
    lr_scheduler: str = _opt("constant", help=f"Learning-rate schedule, one of {', '.join(SCHEDULERS)}.")
    warmup_steps: int = _opt(0, help="Linear warm-up steps of the learning rate.")
    batch_size: int = _opt(1, help="Questions per optimisation step on each process.")
    num_epochs: float = _opt(1.0, help="Passes over the training rows.")
    max_steps: int | None = _opt(None, help="Total optimisation steps (overrides num_epochs).")
    seed: int = _opt(42, help="Random seed (data order, Gumbel noise, composed rows).")
    # --- bookkeeping --------------------------------------------------------------------------------
    save_steps: int | None = _opt(500, help="Save a checkpoint every this many steps (None: only at the end).")
    save_total_limit: int | None = _opt(3, help="Keep at most this many checkpoints (None: all).")
    eval_steps: int | None = _opt(None, help="Evaluate eval_data every this many steps (None: never).")
    logging_steps: int = _opt(1, help="Log metrics every this many steps.")
    resume: bool | str = _opt(False, help=(
        "True: continue from the newest checkpoint-* in output_dir; a path: from that checkpoint."))
    push_to_hub: str | None = _opt(None, help="Hub repository id to push the final agent to.")
    report_to: list[str] = _opt(factory=lambda: ["jsonl", "tensorboard"], help=(
        "Metric sinks: jsonl (output_dir/metrics.jsonl), tensorboard (when installed)."))
    progress: bool = _opt(True, help="Show a progress bar.")
    device: str | None = _opt(None, help="Device of the frozen models on single-process runs (default: accelerate's).")

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
            raise ValueError(
                f"num_generations must be >= 2 (advantages are group-relative), got {self.num_generations}"
            )
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
