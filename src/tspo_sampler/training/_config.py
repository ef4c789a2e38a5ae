"""Configuration of GRPO training of the temporal agent."""

from __future__ import annotations

import dataclasses
import json
import math
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
REPORT_SINKS = ("jsonl", "tensorboard")
SAVE_DTYPES = ("float32", "bfloat16", "float16")

# numeric field -> (lowest, highest (excluded), whether the lowest is allowed); None bounds are open. Every number is
# also checked for its type and finiteness before anything loads: a NaN or inf learning rate, clip range or
# reward weight would otherwise train to the end and save NaN weights.
_GE, _GT = True, False
NUMERIC_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "num_generations": (2, None, _GE), "k_specific": (1, None, _GE), "k_general": (1, None, _GE),
    "fps": (0, None, _GT), "max_candidates": (1, None, _GE), "window_size": (1, None, _GE),
    "tau_start": (0, None, _GT), "tau_end": (0, None, _GT), "max_new_tokens": (1, None, _GE),
    "answer_batch_size": (1, None, _GE), "accuracy_weight": (0, None, _GE), "temporal_weight": (0, None, _GE),
    "clip_length": (1, None, _GE), "min_true_clips": (1, None, _GE), "max_true_clips": (1, None, _GE),
    "num_distractor_clips": (0, None, _GE), "ppo_epochs": (1, None, _GE), "clip_range": (0, None, _GT),
    "kl_beta": (0, None, _GE), "learning_rate": (0, None, _GT), "weight_decay": (0, None, _GE),
    "adam_beta1": (0, 1, _GE), "adam_beta2": (0, 1, _GE), "max_grad_norm": (0, None, _GE),
    "warmup_steps": (0, None, _GE), "batch_size": (1, None, _GE), "num_epochs": (0, None, _GT),
    "max_steps": (1, None, _GE), "seed": (0, None, _GE), "save_steps": (0, None, _GE),
    "save_total_limit": (0, None, _GE), "eval_steps": (0, None, _GE), "logging_steps": (1, None, _GE),
}
_INTEGER_FIELDS = {
    "num_generations", "k_specific", "k_general", "max_candidates", "window_size", "max_new_tokens",
    "answer_batch_size", "clip_length", "min_true_clips", "max_true_clips", "num_distractor_clips", "ppo_epochs",
    "warmup_steps", "batch_size", "max_steps", "seed", "save_steps", "save_total_limit", "eval_steps",
    "logging_steps",
}


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
        "Weight dtype of saved checkpoints: float32, bfloat16 or float16 (default: the initial checkpoint's, "
        "bfloat16 for released agents)."))
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
    max_grad_norm: float | None = _opt(1.0, help="Gradient norm clipping (None or 0: no clipping).")
    lr_scheduler: str = _opt("constant", help=f"Learning-rate schedule, one of {', '.join(SCHEDULERS)}.")
    warmup_steps: int = _opt(0, help="Linear warm-up steps of the learning rate.")
    batch_size: int = _opt(1, help="Questions per optimisation step on each process.")
    num_epochs: float = _opt(1.0, help="Passes over the training rows.")
    max_steps: int | None = _opt(None, help="Total optimisation steps (overrides num_epochs).")
    seed: int = _opt(42, help="Random seed (data order, Gumbel noise, composed rows).")
    # --- bookkeeping --------------------------------------------------------------------------------
    save_steps: int | None = _opt(500, help="Save a checkpoint every this many steps (None: only at the end).")
    save_total_limit: int | None = _opt(3, help="Keep at most this many checkpoints (>= 1; None or 0: keep all).")
    eval_steps: int | None = _opt(None, help="Evaluate eval_data every this many steps (None: never).")
    logging_steps: int = _opt(1, help="Log metrics every this many steps.")
    resume: bool | str = _opt(False, help=(
        "True: continue from the newest checkpoint-* in output_dir; a path: from that checkpoint. Refused when "
        "the checkpoint was trained with other settings (see resume_anyway)."))
    resume_anyway: bool = _opt(False, help=(
        "Resume although the checkpoint's training_config.json differs in settings that shape training "
        "(k, rewards, optimiser ...); without it such a resume is refused, naming the changes."))
    overwrite: bool = _opt(False, help=(
        "Start again in an output_dir that holds an earlier run (its checkpoints, metrics and trainer state are "
        "deleted first); without it (or resume) such a run is refused."))
    push_to_hub: str | None = _opt(None, help="Hub repository id to push the final agent to.")
    report_to: list[str] = _opt(factory=lambda: ["jsonl", "tensorboard"], help=(
        "Metric sinks: jsonl (output_dir/metrics.jsonl), tensorboard (when installed), or none."))
    progress: bool = _opt(True, help="Show a progress bar.")
    device: str | None = _opt(None, help=(
        "Device of single-process runs, e.g. cpu or cuda (default: accelerate's); one this machine lacks is refused."))

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent option, before anything loads.

        Every number is checked for type, finiteness and range (:data:`NUMERIC_RANGES`), every choice against
        its valid values, and ``device`` against this machine.
        """
        if not isinstance(self.estimator, str) or self.estimator.replace("_", "-") not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        self.estimator = self.estimator.replace("_", "-")
        _choice("answer_mode", self.answer_mode, ANSWER_MODES)
        _choice("accuracy", self.accuracy, ACCURACY_MODES)
        _choice("temporal_reward", self.temporal_reward, TEMPORAL_REWARD_MODES)
        _choice("lr_scheduler", self.lr_scheduler, SCHEDULERS)
        _choice("ppo_ratio", self.ppo_ratio, PPO_RATIOS)
        for name, bounds in NUMERIC_RANGES.items():
            setattr(self, name, _check_number(name, getattr(self, name), *bounds))
        if self.max_true_clips < self.min_true_clips:
            raise ValueError(f"max_true_clips ({self.max_true_clips}) must be >= min_true_clips "
                             f"({self.min_true_clips})")
        from .._device import check_device, check_dtype  # imports torch: not at module level (fast --help)

        for name in ("save_dtype", "mllm_dtype"):  # names only: they are written to training_config.json
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or check_dtype(value, name) is None):
                raise ValueError(f"{name} must be one of {', '.join(SAVE_DTYPES)}, got {value!r}")
        self.report_to = _sinks(self.report_to)
        for name in ("resume_anyway", "overwrite", "progress", "compose_specific", "local_files_only"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.resume, (bool, str)) or self.resume == "":
            raise ValueError(f"resume must be true, false or a checkpoint directory, got {self.resume!r}")
        if not isinstance(self.output_dir, str) or not self.output_dir:
            raise ValueError(f"output_dir must be a directory path, got {self.output_dir!r}")
        if self.device is not None:
            check_device(self.device, "device")

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

        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:  # "mapping values are not allowed here" + a multi-line excerpt
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ValueError(f"{p}: not valid YAML{where}: {problem}") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{p}: a config file must hold a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in values.items()}


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_number(name: str, value: Any, low: float | None, high: float | None, low_ok: bool) -> Any:
    """``value`` if it is a finite number of the field's kind within its range (``None`` where optional)."""
    if value is None:
        if name in ("max_candidates", "answer_batch_size", "max_grad_norm", "max_steps", "save_steps",
                    "save_total_limit", "eval_steps"):
            return None
        raise ValueError(f"{name} must be a number, got None")
    integer = name in _INTEGER_FIELDS
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = " (a string: in YAML write 5.0e-4, not 5e-4)" if isinstance(value, str) else ""
        raise ValueError(f"{name} must be {kind}, got {value!r}{hint}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if integer:
        if value != int(value):
            raise ValueError(f"{name} must be {kind}, got {value!r}")
        value = int(value)
    if low is not None and (value < low or (value == low and not low_ok)):
        raise ValueError(f"{name} must be {'>=' if low_ok else '>'} {low:g}, got {value:g}")
    if high is not None and value >= high:
        raise ValueError(f"{name} must be < {high:g}, got {value:g}")
    return value


def _sinks(report_to: Any) -> list[str]:
    """``report_to`` as a list of known sinks: a list, or a comma/space separated string; ``none`` is none."""
    items = report_to.replace(",", " ").split() if isinstance(report_to, str) else report_to
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) for s in items):
        raise ValueError(f"report_to must be a list of {', '.join(REPORT_SINKS)} or none, got {report_to!r}")
    unknown = [s for s in items if s not in (*REPORT_SINKS, "none")]
    if unknown:
        raise ValueError(f"report_to: unknown sink {unknown[0]!r}; valid: {', '.join(REPORT_SINKS)}, none")
    return [s for s in items if s != "none"]
