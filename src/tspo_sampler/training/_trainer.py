"""GRPO training of the temporal agent on accelerate: CLIP and the MLLM stay frozen, the agent learns.

One optimisation step, on every process:

1. take ``batch_size`` questions (a disjoint shard of a seeded permutation per epoch);
2. build each question's episode from cached CLIP features (its own video, or for "specific" rows a
   composed long video with the mask of where the answer lies);
3. score the candidates once with the agent and draw ``G`` rollouts of ``k`` frames by Gumbel top-k;
4. let the frozen MLLM answer from each rollout's real frames (one batched call; letter logits or
   generation) and compute accuracy (+ temporal) rewards and group-relative advantages;
5. run ``ppo_epochs`` inner epochs of the clipped policy loss (+ optional KL to the initial agent) on
   the same rollouts, with gradients all-reduced across processes.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._device import check_dtype, has_accelerator
from .._result import Selection
from ._answerer import Answerer, ask, freeze, load_answerer
from ._checkpoint import (
    CHECKPOINT_PREFIX,
    CONFIG_NAME,
    OPTIMIZER_STATE,
    TRAINER_STATE,
    load_state,
    open_checkpoint,
    refuse_legacy,
    restore_rng_state,
    rng_file,
    rng_state,
    rotate_checkpoints,
    save_state,
)
from ._config import GRPOConfig
from ._data import Episode, TrainExample, load_examples
from ._distributed import average_gradients, broadcast_parameters
from ._episodes import EpisodeSource, make_selection
from ._evaluation import evaluate
from ._guards import check_finite_step, clear_earlier_run, resume_checkpoint
from ._losses import categorical_kl, entropy, group_advantages, gumbel_topk, policy_loss, sample_log_probs
from ._metrics import MetricSinks, gather_metrics, summarise_window
from ._rewards import accuracy_reward, temporal_reward

logger = logging.getLogger(__name__)


class GRPOTrainer:
    """Fine-tune a sampler's temporal agent with GRPO.

    Args:
        config: the training configuration.
        sampler: a :class:`~tspo_sampler.TemporalSampler` (default: loaded from ``config.init``). Its
            ``agent`` is trained in place; its encoder stays frozen. Anything with ``agent``,
            ``encode_video``, ``encode_text``, ``get_frames`` and ``save_pretrained`` works.
        answerer: the frozen MLLM (default: loaded from ``config.mllm`` through the adapters).
        train_examples / eval_examples: rows already parsed (default: read ``config.data`` / ``eval_data``).
        accelerator: an ``accelerate.Accelerator`` (default: a new one).
    """

    def __init__(
        self,
        config: GRPOConfig,
        *,
        sampler: Any = None,
        answerer: Answerer | None = None,
        train_examples: Sequence[TrainExample] | None = None,
        eval_examples: Sequence[TrainExample] | None = None,
        accelerator: Any = None,
    ) -> None:
        from accelerate import Accelerator

        config.validate()
        self.config = config
        self.resume_from = resume_checkpoint(config)  # refuses a bad resume or an earlier run before loading
        if accelerator is None:
            # Without an accelerator device, processes started by `accelerate launch --multi_gpu` (torchrun)
            # form a gloo CPU group only when the Accelerator is told to use the CPU.
            accelerator = Accelerator(cpu=not has_accelerator() or str(config.device).startswith("cpu"))
        self.accelerator = acc = accelerator
        self.device = acc.device
        self.rank = acc.process_index
        self.world = acc.num_processes
        self.output_dir = Path(config.output_dir)
        self.bad_rows: list[Any] = []

        # --- data --------------------------------------------------------------------------------------
        if train_examples is None:
            if not config.data:
                raise ValueError("GRPOConfig.data is required (a JSONL file of training rows)")
            train_examples, bad = load_examples(config.data, video_root=config.video_root, log=acc.is_main_process)
            self.bad_rows = bad
        if eval_examples is None and config.eval_data:
            eval_examples, _ = load_examples(config.eval_data, video_root=config.video_root, log=acc.is_main_process)
        self.train_examples = list(train_examples)
        self.eval_examples = list(eval_examples or [])
        if not self.train_examples:
            raise ValueError("no usable training rows")
        self.global_batch = config.batch_size * self.world
        self.steps_per_epoch = len(self.train_examples) // self.global_batch
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(self.train_examples)} training rows are fewer than one global batch "
                f"({config.batch_size} per process x {self.world} processes)"
            )
        self.max_steps = config.max_steps or max(1, math.ceil(config.num_epochs * self.steps_per_epoch))

        # --- models ------------------------------------------------------------------------------------
        if sampler is None:
            from .._sampler import TemporalSampler

            sampler = TemporalSampler.from_pretrained(
                config.init,
                device=self.device,
                revision=config.revision,
                local_files_only=config.local_files_only,
                feature_cache_dir=config.cache_dir or None,
                require_agent=False,
            )
        self.sampler = sampler
        if getattr(sampler, "agent", None) is None:
            from ..scoring._agent import TemporalAgent

            sampler.agent = TemporalAgent(dim=int(sampler.encoder.embed_dim))
        agent = sampler.agent.to(device=self.device, dtype=torch.float32)
        agent.train()
        for name, p in agent.named_parameters():
            # ffn_o is stored in checkpoints but not used by the forward pass (as in the reference).
            p.requires_grad_(not name.startswith("temporal.ffn_o"))
        freeze(getattr(sampler, "encoder", None))
        broadcast_parameters(agent, self.world)  # a randomly initialised agent starts the same everywhere
        self.agent = agent
        self.ref_agent = copy.deepcopy(agent).eval().requires_grad_(False) if config.kl_beta > 0 else None
        if answerer is None:
            answerer = load_answerer(config, self.device)
        self.answerer = answerer
        freeze(answerer)

        params = [p for p in agent.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.weight_decay,
        )
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            config.lr_scheduler, optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=self.max_steps
        )
        # No DDP wrapper: gradients are averaged by average_gradients (see _distributed for why);
        # prepare_model still applies the launch's mixed precision.
        self.model = acc.prepare_model(agent, evaluation_mode=True)
        self.optimizer = acc.prepare_optimizer(optimizer)
        self._params = params

        # --- state -------------------------------------------------------------------------------------
        self.global_step = 0
        self.answerer_calls = 0
        self.rollouts_answered = 0
        self.np_rng = np.random.default_rng([config.seed, 1, self.rank])
        self.generator = torch.Generator().manual_seed(config.seed * 1000 + 17 + self.rank)
        self.episodes = EpisodeSource(sampler, config, [e.video for e in self.train_examples])
        self.sinks = MetricSinks(self.output_dir, config.report_to if acc.is_main_process else ())
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ features and episodes
    def tau_at(self, step: int) -> float:
        """Linear annealing from ``tau_start`` (step 0) to ``tau_end`` (last step)."""
        c = self.config
        frac = min(1.0, step / max(1, self.max_steps))
        return c.tau_start - (c.tau_start - c.tau_end) * frac

    def video_features(self, video: str) -> Any:
        return self.episodes.video_features(video)

    def text_features(self, question: str) -> torch.Tensor:
        return self.episodes.text_features(question)

    def build_episode(self, example: TrainExample, rng: np.random.Generator) -> Episode:
        return self.episodes.build(example, rng)

    def agent_logits(self, model: Any, episode: Episode, tau: float) -> torch.Tensor:
        text = self.text_features(episode.example.question).to(self.device)
        return model(episode.features.to(self.device), text, window_size=self.config.window_size, tau=tau).float()

    # ------------------------------------------------------------------ rollouts
    def answer(
        self, selections: list[Selection], example: TrainExample
    ) -> tuple[list[str | None], torch.Tensor | None]:
        """Predicted letters for each selection, and (logits mode) the options' log-probabilities."""
        preds, logps, calls = ask(self.answerer, selections, example, self.config)
        self.answerer_calls += calls
        self.rollouts_answered += len(selections)
        return preds, logps

    def rollout(self, episode: Episode, tau: float) -> dict[str, Any]:
        """G rollouts of one episode: samples, rewards, advantages and the old log-probs."""
        c = self.config
        G = c.num_generations
        with torch.no_grad():
            logits = self.agent_logits(self.agent, episode, tau)
            ref_logits = self.agent_logits(self.ref_agent, episode, tau) if self.ref_agent is not None else None
        samples = gumbel_topk(logits, episode.k, G, generator=self.generator)
        old_lp = sample_log_probs(logits, samples, c.estimator).detach()
        scores = logits.detach().cpu().numpy()
        positions = samples.cpu().numpy()
        frames = self.episodes.frames(episode, positions.reshape(-1))
        selections = [make_selection(episode, positions[g], scores, frames) for g in range(G)]
        preds, logps = self.answer(selections, episode.example)
        ex = episode.example
        if c.accuracy == "soft" and logps is not None:
            acc = logps[:, ex.letters.index(ex.answer)].exp()
        else:
            acc = torch.tensor([accuracy_reward(p, ex.answer) for p in preds])
        use_temporal = episode.mask is not None and (
            c.temporal_reward == "known" or (c.temporal_reward == "specific" and ex.type == "specific")
        )
        hits = None
        if episode.mask is not None:
            hits = torch.tensor([temporal_reward(positions[g], episode.mask) for g in range(G)])
        rewards = c.accuracy_weight * acc.float()
        if use_temporal:
            rewards = rewards + c.temporal_weight * hits
        adv = group_advantages(rewards)
        return {
            "episode": episode,
            "samples": samples,
            "old_lp": old_lp,
            "ref_logits": ref_logits,
            "advantages": adv.to(self.device),
            "rewards": rewards,
            "accuracy": acc.float(),
            "hits": hits,
            "temporal": hits if use_temporal else None,
            "entropy": float(entropy(logits)),
        }

    # ------------------------------------------------------------------ optimisation
    def optimise(self, rollouts: list[dict[str, Any]], tau: float) -> dict[str, float]:
        c = self.config
        stats: dict[str, list[float]] = defaultdict(list)
        for _ in range(c.ppo_epochs):
            total = 0.0
            for r in rollouts:
                logits = self.agent_logits(self.model, r["episode"], tau)
                new_lp = sample_log_probs(logits, r["samples"], c.estimator)
                loss, st = policy_loss(new_lp, r["old_lp"], r["advantages"], clip_range=c.clip_range,
                                       ratio_level=c.ppo_ratio)
                if r["ref_logits"] is not None:
                    kl = categorical_kl(logits, r["ref_logits"])
                    loss = loss + c.kl_beta * kl
                    stats["kl"].append(float(kl.detach()))
                total = total + loss
                stats["clip_frac"].append(st["clip_frac"])
            total = total / len(rollouts)
            self.accelerator.backward(total)
            average_gradients(self._params, self.world)
            check_finite_step(total, self._params, self.global_step + 1, self.world, self.output_dir)
            if c.max_grad_norm:
                gn = self.accelerator.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
                stats["grad_norm"].append(float(gn))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            stats["loss"].append(float(total.detach()))
        self.scheduler.step()
        return {k: float(np.mean(v)) for k, v in stats.items()}

    def _step_examples(self, step: int) -> list[TrainExample]:
        epoch, within = divmod(step, self.steps_per_epoch)
        perm = np.random.default_rng([self.config.seed, 7, epoch]).permutation(len(self.train_examples))
        start = within * self.global_batch + self.rank * self.config.batch_size
        return [self.train_examples[int(i)] for i in perm[start : start + self.config.batch_size]]

    def train_step(self) -> dict[str, float]:
        """One optimisation step; returns this process's metrics (before gathering)."""
        tau = self.tau_at(self.global_step)
        t0 = time.perf_counter()
        episodes = [self.build_episode(ex, self.np_rng) for ex in self._step_examples(self.global_step)]
        rollouts = [self.rollout(ep, tau) for ep in episodes]
        t_roll = time.perf_counter() - t0
        opt = self.optimise(rollouts, tau)
        self.global_step += 1
        m: dict[str, float] = {
            "reward": float(torch.cat([r["rewards"] for r in rollouts]).mean()),
            "reward_std": float(np.mean([float(r["rewards"].std()) for r in rollouts])),
            "accuracy": float(torch.cat([r["accuracy"] for r in rollouts]).mean()),
            "entropy": float(np.mean([r["entropy"] for r in rollouts])),
            "tau": tau,
            "lr": float(self.scheduler.get_last_lr()[0]),
            "rollout_s": t_roll,
            "step_s": time.perf_counter() - t0,
            **opt,
        }
        temporal = [r["temporal"] for r in rollouts if r["temporal"] is not None]
        hits = [r["hits"] for r in rollouts if r["hits"] is not None]
        if temporal:
            m["temporal_reward"] = float(torch.cat(temporal).mean())
        if hits:
            m["hit_rate"] = float(torch.cat(hits).mean())
        m["num_rollouts"] = float(sum(len(r["rewards"]) for r in rollouts))
        return m

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self,
        examples: Sequence[TrainExample] | None = None,
        methods: Sequence[str] = ("agent",),
        *,
        answers: bool = False,
    ) -> dict[str, float]:
        """Held-out hit rate (share of top-k frames inside the known span/mask) per method.

        ``methods``: ``agent`` (top-k of the agent's scores), ``clip`` (top-k of raw CLIP similarity),
        ``uniform``. With ``answers``, also the MLLM's accuracy on each method's frames. Episodes are
        composed with a fixed seed, so every method and every call sees the same ones. Every process
        must call it (the sums are reduced over processes).
        """
        return evaluate(self, self.eval_examples if examples is None else list(examples), methods, answers=answers)

    # ------------------------------------------------------------------ checkpoints
    def _save_released(self, directory: Path) -> None:
        save = self.sampler.save_pretrained
        dtype = check_dtype(self.config.save_dtype, "save_dtype")
        try:
            save(directory, dtype=dtype) if dtype is not None else save(directory)
        except TypeError:
            save(directory)

    def save_checkpoint(self, directory: str | os.PathLike | None = None) -> Path:
        """Write ``checkpoint-<step>``: the released format, the exact agent with optimizer and scheduler
        state, the step, and each process's RNG (safetensors and JSON only)."""
        acc = self.accelerator
        ckpt = Path(directory) if directory is not None else self.output_dir / f"{CHECKPOINT_PREFIX}{self.global_step}"
        acc.wait_for_everyone()
        if acc.is_main_process:
            ckpt.mkdir(parents=True, exist_ok=True)
            self._save_released(ckpt)
            state = {
                "global_step": self.global_step,
                "max_steps": self.max_steps,
                "steps_per_epoch": self.steps_per_epoch,
                "num_processes": self.world,
                "answerer_calls": self.answerer_calls,
                "rollouts_answered": self.rollouts_answered,
            }
            (ckpt / TRAINER_STATE).write_text(json.dumps(state, indent=2) + "\n")
            self.config.save(ckpt / CONFIG_NAME)
            # written last: a checkpoint counts as complete (list_checkpoints) once this file exists
            blob = {
                "agent": dict(self.agent.state_dict()),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
            }
            if self.ref_agent is not None:  # the KL anchor: the initial agent, random when init had none
                blob["ref_agent"] = dict(self.ref_agent.state_dict())
            save_state(ckpt / OPTIMIZER_STATE, blob)
        acc.wait_for_everyone()
        save_state(rng_file(ckpt, self.rank), rng_state(self.np_rng, self.generator))
        acc.wait_for_everyone()
        if acc.is_main_process and directory is None:
            rotate_checkpoints(self.output_dir, self.config.save_total_limit)
        return ckpt

    def load_checkpoint(self, directory: str | os.PathLike) -> None:
        """Restore agent, optimizer, scheduler, step and this process's RNG from a checkpoint.

        Nothing is unpickled: pickles an older version wrote (``optimizer.pt``) raise :class:`CheckpointError`.
        """
        ckpt, state = open_checkpoint(directory)
        blob = load_state(ckpt / OPTIMIZER_STATE)
        self.agent.load_state_dict(blob["agent"])
        if self.ref_agent is not None and "ref_agent" in blob:
            self.ref_agent.load_state_dict(blob["ref_agent"])
        self.optimizer.load_state_dict(blob["optimizer"])
        self.scheduler.load_state_dict(blob["scheduler"])
        self.global_step = int(state["global_step"])
        self.answerer_calls = int(state.get("answerer_calls", 0))
        self.rollouts_answered = int(state.get("rollouts_answered", 0))
        rng = rng_file(ckpt, self.rank)
        if rng.is_file():
            restore_rng_state(load_state(rng), self.np_rng, self.generator)
        else:
            logger.warning("%s has no RNG state for process %d (different process count?): reseeding", ckpt, self.rank)
            self.np_rng = np.random.default_rng([self.config.seed, 2, self.rank, self.global_step])
            self.generator.manual_seed(self.config.seed * 1000 + 31 + self.rank + self.global_step)
        if int(state.get("steps_per_epoch", self.steps_per_epoch)) != self.steps_per_epoch:
            logger.warning("steps per epoch changed since the checkpoint: the data order after resuming differs")

    # ------------------------------------------------------------------ logging
    def log(self, metrics: dict[str, Any]) -> None:
        record = {"step": self.global_step, "epoch": round(self.global_step / self.steps_per_epoch, 4), **metrics}
        self.history.append(record)
        self.sinks.write(record, self.global_step)

    # ------------------------------------------------------------------ main loop
    def train(self) -> Path:
        """Run to ``max_steps``; returns the output directory (released format, loadable by from_pretrained)."""
        c = self.config
        acc = self.accelerator
        if self.resume_from is not None:
            self.load_checkpoint(self.resume_from)
            if acc.is_main_process:
                logger.info("resumed from %s at step %d", self.resume_from, self.global_step)
        elif c.resume:
            refuse_legacy(self.output_dir)
            if acc.is_main_process:
                logger.warning("resume requested but %s has no checkpoint: starting from scratch", self.output_dir)
        elif c.overwrite and acc.is_main_process:
            clear_earlier_run(self.output_dir)
        acc.wait_for_everyone()
        self.sinks.open()
        if acc.is_main_process:
            c.save(self.output_dir / CONFIG_NAME)
        from tqdm.auto import tqdm

        bar = tqdm(total=self.max_steps, initial=self.global_step, desc="GRPO", unit="step",
                   disable=not (c.progress and acc.is_main_process))
        window: list[dict[str, float]] = []
        t_start = time.perf_counter()
        first = self.global_step
        try:
            while self.global_step < self.max_steps:
                m = gather_metrics(acc, self.train_step(), self.device)
                window.append(m)
                bar.update(1)
                if self.global_step % c.logging_steps == 0 or self.global_step == self.max_steps:
                    agg = summarise_window(window, steps=self.global_step - first,
                                           elapsed_s=time.perf_counter() - t_start)
                    agg["answerer_calls"] = float(self.answerer_calls)
                    window = []
                    self.log(agg)
                    shown = ("reward", "accuracy", "hit_rate", "entropy")
                    bar.set_postfix({k: f"{agg[k]:.3f}" for k in shown if k in agg})
                if c.eval_steps and self.eval_examples and self.global_step % c.eval_steps == 0:
                    self.log({f"eval/{k}": v for k, v in self.evaluate().items()})
                if c.save_steps and self.global_step % c.save_steps == 0 and self.global_step < self.max_steps:
                    self.save_checkpoint()
        finally:
            bar.close()
        self.save_checkpoint()
        if acc.is_main_process:
            self._save_released(self.output_dir)
            (self.output_dir / TRAINER_STATE).write_text(
                json.dumps({"global_step": self.global_step, "max_steps": self.max_steps,
                            "answerer_calls": self.answerer_calls, "rollouts_answered": self.rollouts_answered},
                           indent=2) + "\n"
            )
            if c.push_to_hub:
                self.sampler.push_to_hub(c.push_to_hub)
        acc.wait_for_everyone()
        self.sinks.close()
        return self.output_dir

    def end_training(self) -> None:
        """Close the logs and leave the process group; call it last, after ``train`` and ``evaluate``.

        A data-parallel process that exits with its gloo group alive can abort after all its work is
        done (see ``_distributed``). ``train_grpo`` calls this for you.
        """
        self.sinks.close()
        self.accelerator.end_training()


def train_grpo(config: GRPOConfig | None = None, **kwargs: Any) -> Path:
    """Train the temporal agent with GRPO; returns the output directory (load it with ``from_pretrained``).

    ``kwargs`` are :class:`GRPOConfig` fields when ``config`` is ``None``, else objects passed to
    :class:`GRPOTrainer` (``sampler=``, ``answerer=``, ``accelerator=``, ...).
    """
    if config is None:
        trainer_keys = {"sampler", "answerer", "train_examples", "eval_examples", "accelerator"}
        config = GRPOConfig(**{k: v for k, v in kwargs.items() if k not in trainer_keys})
        kwargs = {k: v for k, v in kwargs.items() if k in trainer_keys}
    trainer = GRPOTrainer(config, **kwargs)
    try:
        return trainer.train()
    finally:
        if kwargs.get("accelerator") is None:  # a caller's own Accelerator stays theirs to end
            trainer.end_training()
