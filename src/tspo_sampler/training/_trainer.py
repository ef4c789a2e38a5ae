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
import dataclasses
import json
import logging
import math
import os
import random
import re
import shutil
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from .._result import Selection
from ._config import GRPOConfig
from ._data import Episode, TrainExample, general_episode, load_examples, specific_episode
from ._losses import categorical_kl, entropy, group_advantages, gumbel_topk, policy_loss, sample_log_probs
from ._rewards import accuracy_reward, parse_answer_letter, temporal_reward

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_STATE = "optimizer.pt"
CONFIG_NAME = "training_config.json"
FEATURE_MEMORY = 512  # videos whose features are kept in memory (LRU)


class Answerer(Protocol):
    """What the trainer needs from an MLLM adapter (``tspo_sampler.adapters``)."""

    def answer(self, selections: Sequence[Selection], questions: Sequence[str], **gen_kwargs: Any) -> list[str]: ...

    def option_logprobs(
        self, selections: Sequence[Selection], questions: Sequence[str], options: Sequence[str] = ...
    ) -> torch.Tensor: ...


def load_answerer(config: GRPOConfig, device: torch.device) -> Answerer:
    """Load ``config.mllm`` (Hub id or directory) and wrap it in its adapter's :class:`Answerer`.

    Supported through ``tspo_sampler.adapters.answerer_for``: Qwen2.5-VL, LLaVA-OneVision/LLaVA-Video
    and InternVL (transformers forms).
    """
    if not config.mllm:
        raise ValueError("GRPOConfig.mllm is required: the MLLM that answers from the chosen frames")
    import transformers

    from ..adapters import answerer_for

    kwargs: dict[str, Any] = {"local_files_only": config.local_files_only}
    if config.mllm_dtype:
        kwargs["dtype"] = getattr(torch, config.mllm_dtype)
    processor = transformers.AutoProcessor.from_pretrained(config.mllm, **{"local_files_only": config.local_files_only})
    model_cls = getattr(transformers, "AutoModelForImageTextToText", None) or transformers.AutoModelForVision2Seq
    model = model_cls.from_pretrained(config.mllm, **kwargs).to(device).eval()
    model.requires_grad_(False)
    return answerer_for(model, processor)


def _frozen_modules(obj: Any) -> list[torch.nn.Module]:
    """The torch modules inside an encoder/answerer object (the object itself or its attributes)."""
    if isinstance(obj, torch.nn.Module):
        return [obj]
    found = []
    for value in vars(obj).values() if hasattr(obj, "__dict__") else []:
        if isinstance(value, torch.nn.Module):
            found.append(value)
    return found


def _has_accelerator_device() -> bool:
    if torch.cuda.is_available():
        return True
    xpu = getattr(torch, "xpu", None)
    return bool(xpu is not None and xpu.is_available())


def _rng_state(np_rng: np.random.Generator, gen: torch.Generator) -> dict[str, Any]:
    return {
        "numpy": np_rng.bit_generator.state,
        "torch_generator": gen.get_state(),
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy_global": np.random.get_state(),
    }


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
        if accelerator is None:
            # Without an accelerator device, processes started by `accelerate launch --multi_gpu` (torchrun)
            # form a gloo CPU group only when the Accelerator is told to use the CPU.
            accelerator = Accelerator(cpu=not _has_accelerator_device())
        self.accelerator = accelerator
        acc = self.accelerator
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
        self._videos = sorted({e.video for e in self.train_examples})

        # --- models ------------------------------------------------------------------------------------
        if sampler is None:
            from .._sampler import TemporalSampler

            sampler = TemporalSampler.from_pretrained(
                config.init,
                device=self.device,
                revision=config.revision,
                local_files_only=config.local_files_only,
                feature_cache=config.cache_dir if config.cache_dir else True,
                require_agent=False,
            )
        self.sampler = sampler
        if getattr(sampler, "agent", None) is None:
            from .._agent import TemporalAgent

            sampler.agent = TemporalAgent(dim=int(sampler.encoder.embed_dim))
        agent = sampler.agent.to(device=self.device, dtype=torch.float32)
        agent.train()
        for name, p in agent.named_parameters():
            # ffn_o is stored in checkpoints but not used by the forward pass (as in the reference).
            p.requires_grad_(not name.startswith("temporal.ffn_o"))
        for module in _frozen_modules(getattr(sampler, "encoder", None)):
            module.requires_grad_(False)
        self.agent = agent
        self.ref_agent = copy.deepcopy(agent).eval().requires_grad_(False) if config.kl_beta > 0 else None
        if answerer is None:
            answerer = load_answerer(config, self.device)
        self.answerer = answerer
        for module in _frozen_modules(answerer):
            module.requires_grad_(False)

        params = [p for p in agent.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.weight_decay,
        )
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            config.lr_scheduler, optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=self.max_steps
        )
        self.model, self.optimizer = acc.prepare(agent, optimizer)

        # --- state -------------------------------------------------------------------------------------
        self.global_step = 0
        self.answerer_calls = 0
        self.rollouts_answered = 0
        self.np_rng = np.random.default_rng([config.seed, 1, self.rank])
        self.generator = torch.Generator().manual_seed(config.seed * 1000 + 17 + self.rank)
        self._features: OrderedDict[str, Any] = OrderedDict()
        self._text: dict[str, torch.Tensor] = {}
        self._writer = None
        self._metrics_file = None
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ features and episodes
    def tau_at(self, step: int) -> float:
        """Linear annealing from ``tau_start`` (step 0) to ``tau_end`` (last step)."""
        c = self.config
        frac = min(1.0, step / max(1, self.max_steps))
        return c.tau_start - (c.tau_start - c.tau_end) * frac

    def video_features(self, video: str) -> Any:
        feats = self._features.get(video)
        if feats is None:
            with torch.no_grad():
                feats = self.sampler.encode_video(
                    video, fps=self.config.fps, max_candidates=self.config.max_candidates, progress=False
                )
            # a plain (not inference-mode) float32 copy: the agent's backward pass saves it
            feats = dataclasses.replace(feats, features=torch.as_tensor(feats.features).detach().float().clone())
            self._features[video] = feats
            if len(self._features) > FEATURE_MEMORY:
                self._features.popitem(last=False)
        else:
            self._features.move_to_end(video)
        return feats

    def text_features(self, question: str) -> torch.Tensor:
        t = self._text.get(question)
        if t is None:
            with torch.no_grad():
                t = self.sampler.encode_text([question]).detach().float().cpu().reshape(1, -1).clone()
            self._text[question] = t
        return t

    def build_episode(self, example: TrainExample, rng: np.random.Generator) -> Episode:
        c = self.config
        own = self.video_features(example.video)
        if example.type == "specific" and c.compose_specific:
            pool = [v for v in self._videos if v != example.video]
            if not pool:
                logger.warning("line %d: no other video to compose a 'specific' episode; using it as is", example.line)
            else:
                n = c.num_distractor_clips
                chosen = rng.choice(len(pool), size=n, replace=n > len(pool)) if n else []
                distractors = [(pool[int(i)], self.video_features(pool[int(i)])) for i in chosen]
                n_true = int(rng.integers(c.min_true_clips, c.max_true_clips + 1))
                return specific_episode(
                    example, own, distractors, rng, k=c.k_specific, clip_length=c.clip_length,
                    num_true_clips=n_true, fps=c.fps,
                )
        k = c.k_specific if example.type == "specific" else c.k_general
        return general_episode(example, own, k)

    def agent_logits(self, model: Any, episode: Episode, tau: float) -> torch.Tensor:
        text = self.text_features(episode.example.question).to(self.device)
        return model(episode.features.to(self.device), text, window_size=self.config.window_size, tau=tau).float()

    # ------------------------------------------------------------------ rollouts
    def _frames(self, episode: Episode, positions: np.ndarray) -> dict[int, np.ndarray]:
        """Real frames of the given candidate positions, resized to the question video's frame size."""
        out: dict[int, np.ndarray] = {}
        positions = np.unique(positions)
        for v in np.unique(episode.source_video[positions]):
            pos = positions[episode.source_video[positions] == v]
            frames = np.asarray(self.sampler.get_frames(episode.videos[int(v)], episode.source_index[pos].tolist()))
            for p, f in zip(pos.tolist(), frames):
                out[p] = f
        shapes = {f.shape for f in out.values()}
        if len(shapes) > 1:
            own = [f.shape for p, f in out.items() if episode.source_video[p] == 0]
            h, w = (own[0] if own else max(shapes))[:2]
            out = {p: _resize(f, h, w) for p, f in out.items()}
        return out

    def make_selection(
        self, episode: Episode, positions: Sequence[int], scores: np.ndarray, frames: dict[int, np.ndarray] | None
    ) -> Selection:
        pos = sorted(int(p) for p in positions)
        composed = episode.composed
        cand = list(range(episode.num_candidates)) if composed else episode.source_index.tolist()
        return Selection(
            indices=pos if composed else episode.source_index[pos].tolist(),
            timestamps=episode.timestamps[pos].tolist(),
            frames=None if frames is None else np.stack([frames[p] for p in pos]),
            scores=scores,
            candidate_indices=cand,
            candidate_timestamps=episode.timestamps.tolist(),
            method="gumbel-topk",
            question=episode.example.prompt(),
            positions=pos,
            video=episode.example.video,
        )

    def answer(self, selections: list[Selection], example: TrainExample) -> tuple[list[str | None], torch.Tensor | None]:
        """Predicted letters for each selection, and (logits mode) the options' log-probabilities."""
        c = self.config
        prompt = example.prompt()
        letters = list(example.letters)
        chunk = c.answer_batch_size or len(selections)
        preds: list[str | None] = []
        logps = []
        for start in range(0, len(selections), chunk):
            part = selections[start : start + chunk]
            with torch.no_grad():
                if c.answer_mode == "logits":
                    lp = self.answerer.option_logprobs(part, [prompt] * len(part), options=letters)
                    lp = torch.log_softmax(torch.as_tensor(lp, dtype=torch.float32).cpu(), dim=-1)
                    logps.append(lp)
                    preds += [letters[int(i)] for i in lp.argmax(dim=-1)]
                else:
                    texts = self.answerer.answer(
                        part, [prompt] * len(part), max_new_tokens=c.max_new_tokens, do_sample=False
                    )
                    preds += [parse_answer_letter(t, letters, example.options) for t in texts]
            self.answerer_calls += 1
            self.rollouts_answered += len(part)
        return preds, (torch.cat(logps) if logps else None)

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
        frames = self._frames(episode, positions.reshape(-1))
        selections = [self.make_selection(episode, positions[g], scores, frames) for g in range(G)]
        preds, logps = self.answer(selections, episode.example)
        ex = episode.example
        if c.accuracy == "soft" and logps is not None:
            acc = logps[:, ex.letters.index(ex.answer)].exp()
        else:
            acc = torch.tensor([accuracy_reward(p, ex.answer) for p in preds])
        use_temporal = episode.mask is not None and (
            c.temporal_reward == "known" or (c.temporal_reward == "specific" and ex.type == "specific")
        )
        hits = torch.tensor([temporal_reward(positions[g], episode.mask) for g in range(G)]) if episode.mask is not None else None
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

    def _gather(self, m: dict[str, float]) -> dict[str, float]:
        """Average metrics over processes (a key missing on a process does not count there)."""
        if self.world == 1:
            return dict(m)
        keys = sorted(KNOWN_METRICS | set(m))
        vals = torch.tensor([[m.get(k, 0.0), 1.0 if k in m else 0.0] for k in keys], dtype=torch.float64,
                            device=self.device)
        tot = self.accelerator.reduce(vals, reduction="sum")
        out = {}
        for k, (s, n) in zip(keys, tot.tolist()):
            if n > 0:
                out[k] = s if k == "num_rollouts" else s / n
        return out

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
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
        composed with a fixed seed, so every method and every call sees the same ones.
        """
        from .._selection import select_indices

        examples = self.eval_examples if examples is None else list(examples)
        tau = self.tau_at(self.global_step)
        sums: dict[str, float] = defaultdict(float)
        for i in range(self.rank, len(examples), self.world):
            ex = examples[i]
            ep = self.build_episode(ex, np.random.default_rng([self.config.seed, 11, i]))
            text = self.text_features(ex.question).to(self.device)
            feats = ep.features.to(self.device)
            for method in methods:
                if method == "agent":
                    scores = self.agent_logits(self.agent, ep, tau)
                    pos = select_indices(scores.cpu(), ep.k, "topk")
                elif method == "clip":
                    scores = F.cosine_similarity(text, feats, dim=-1)
                    pos = select_indices(scores.cpu(), ep.k, "topk")
                elif method == "uniform":
                    scores = torch.zeros(ep.num_candidates)
                    pos = select_indices(scores, ep.k, "uniform")
                else:
                    raise ValueError(f"unknown evaluation method {method!r}")
                if ep.mask is not None:
                    sums[f"{method}/hit_rate"] += temporal_reward(pos, ep.mask)
                    sums[f"{method}/n_hit"] += 1
                if answers:
                    sel = self.make_selection(ep, pos, scores.detach().cpu().numpy(), self._frames(ep, np.asarray(pos)))
                    pred, _ = self.answer([sel], ex)
                    sums[f"{method}/accuracy"] += accuracy_reward(pred[0], ex.answer)
                    sums[f"{method}/n_acc"] += 1
        keys = [f"{m}/{s}" for m in methods for s in ("hit_rate", "n_hit", "accuracy", "n_acc")]
        vals = torch.tensor([sums.get(k, 0.0) for k in keys], dtype=torch.float64, device=self.device)
        if self.world > 1:
            vals = self.accelerator.reduce(vals, reduction="sum")
        tot = dict(zip(keys, vals.tolist()))
        out = {}
        for m in methods:
            if tot[f"{m}/n_hit"]:
                out[f"{m}/hit_rate"] = tot[f"{m}/hit_rate"] / tot[f"{m}/n_hit"]
            if tot[f"{m}/n_acc"]:
                out[f"{m}/accuracy"] = tot[f"{m}/accuracy"] / tot[f"{m}/n_acc"]
        return out

    # ------------------------------------------------------------------ checkpoints
    def _save_released(self, directory: Path) -> None:
        save = self.sampler.save_pretrained
        dtype = getattr(torch, self.config.save_dtype) if self.config.save_dtype else None
        try:
            save(directory, dtype=dtype) if dtype is not None else save(directory)
        except TypeError:
            save(directory)

    def save_checkpoint(self, directory: str | os.PathLike | None = None) -> Path:
        """Write ``checkpoint-<step>``: the released format + optimizer/scheduler/step + per-process RNG."""
        acc = self.accelerator
        ckpt = Path(directory) if directory is not None else self.output_dir / f"{CHECKPOINT_PREFIX}{self.global_step}"
        acc.wait_for_everyone()
        if acc.is_main_process:
            ckpt.mkdir(parents=True, exist_ok=True)
            self._save_released(ckpt)
            torch.save(
                {
                    "agent": {k: v.detach().cpu().clone() for k, v in self.agent.state_dict().items()},
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                },
                ckpt / OPTIMIZER_STATE,
            )
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
        acc.wait_for_everyone()
        torch.save(_rng_state(self.np_rng, self.generator), ckpt / f"rng_state_{self.rank}.pt")
        acc.wait_for_everyone()
        if acc.is_main_process and directory is None:
            self._rotate_checkpoints()
        return ckpt

    def _rotate_checkpoints(self) -> None:
        limit = self.config.save_total_limit
        if not limit:
            return
        ckpts = list_checkpoints(self.output_dir)
        for old in ckpts[:-limit]:
            shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, directory: str | os.PathLike) -> None:
        """Restore agent, optimizer, scheduler, step and this process's RNG from a checkpoint."""
        ckpt = Path(directory)
        state = json.loads((ckpt / TRAINER_STATE).read_text())
        blob = torch.load(ckpt / OPTIMIZER_STATE, map_location="cpu", weights_only=False)
        self.agent.load_state_dict(blob["agent"])
        self.optimizer.load_state_dict(blob["optimizer"])
        self.scheduler.load_state_dict(blob["scheduler"])
        self.global_step = int(state["global_step"])
        self.answerer_calls = int(state.get("answerer_calls", 0))
        self.rollouts_answered = int(state.get("rollouts_answered", 0))
        rng_file = ckpt / f"rng_state_{self.rank}.pt"
        if rng_file.is_file():
            rng = torch.load(rng_file, map_location="cpu", weights_only=False)
            self.np_rng.bit_generator.state = rng["numpy"]
            self.generator.set_state(rng["torch_generator"])
            torch.set_rng_state(rng["torch"])
            random.setstate(rng["python"])
            np.random.set_state(rng["numpy_global"])
        else:
            logger.warning("%s has no RNG state for process %d (different process count?): reseeding", ckpt, self.rank)
            self.np_rng = np.random.default_rng([self.config.seed, 2, self.rank, self.global_step])
            self.generator.manual_seed(self.config.seed * 1000 + 31 + self.rank + self.global_step)
        if int(state.get("steps_per_epoch", self.steps_per_epoch)) != self.steps_per_epoch:
            logger.warning("steps per epoch changed since the checkpoint: the data order after resuming differs")

    # ------------------------------------------------------------------ logging
    def _open_sinks(self) -> None:
        if not self.accelerator.is_main_process:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if "jsonl" in self.config.report_to:
            self._metrics_file = open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if "tensorboard" in self.config.report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"))
            except Exception:  # tensorboard not installed
                self._writer = None

    def _close_sinks(self) -> None:
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def log(self, metrics: dict[str, Any]) -> None:
        record = {"step": self.global_step, "epoch": round(self.global_step / self.steps_per_epoch, 4), **metrics}
        self.history.append(record)
        if not self.accelerator.is_main_process:
            return
        if self._metrics_file is not None:
            self._metrics_file.write(json.dumps(record) + "\n")
            self._metrics_file.flush()
        if self._writer is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self._writer.add_scalar(k, v, self.global_step)

    # ------------------------------------------------------------------ main loop
    def train(self) -> Path:
        """Run to ``max_steps``; returns the output directory (released format, loadable by from_pretrained)."""
        c = self.config
        acc = self.accelerator
        if c.resume:
            ckpt = Path(c.resume) if isinstance(c.resume, str) else latest_checkpoint(self.output_dir)
            if ckpt is None:
                if acc.is_main_process:
                    logger.warning("resume requested but %s has no checkpoint: starting from scratch", self.output_dir)
            else:
                self.load_checkpoint(ckpt)
                if acc.is_main_process:
                    logger.info("resumed from %s at step %d", ckpt, self.global_step)
        self._open_sinks()
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
                m = self._gather(self.train_step())
                window.append(m)
                bar.update(1)
                if self.global_step % c.logging_steps == 0 or self.global_step == self.max_steps:
                    agg = {k: float(np.mean([w[k] for w in window if k in w])) for k in set().union(*window)}
                    agg["num_rollouts"] = float(sum(w.get("num_rollouts", 0.0) for w in window))
                    elapsed = time.perf_counter() - t_start
                    agg["steps_per_s"] = (self.global_step - first) / max(elapsed, 1e-9)
                    agg["rollouts_per_s"] = agg["num_rollouts"] / max(sum(w.get("step_s", 0.0) for w in window), 1e-9)
                    agg["answerer_calls"] = float(self.answerer_calls)
                    window = []
                    self.log(agg)
                    bar.set_postfix({k: f"{agg[k]:.3f}" for k in ("reward", "accuracy", "hit_rate", "entropy") if k in agg})
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
        self._close_sinks()
        return self.output_dir

    def end_training(self) -> None:
        """Close the logs and leave the process group; call it last, after ``train`` and ``evaluate``.

        In a data-parallel run a gloo group still alive at interpreter exit can be torn down while its
        threads run, which aborts the process (``terminate called without an active exception``) after
        all the work is done. ``train_grpo`` calls this for you.
        """
        self._close_sinks()
        self.accelerator.end_training()


KNOWN_METRICS = {
    "reward", "reward_std", "accuracy", "entropy", "tau", "lr", "rollout_s", "step_s", "loss", "clip_frac",
    "grad_norm", "kl", "temporal_reward", "hit_rate", "num_rollouts",
}


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """``checkpoint-<step>`` directories of a run, oldest first (complete ones only)."""
    d = Path(output_dir)
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        m = re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", p.name)
        if m and p.is_dir() and (p / TRAINER_STATE).is_file() and (p / OPTIMIZER_STATE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    ckpts = list_checkpoints(output_dir)
    return ckpts[-1] if ckpts else None


def _resize(frame: np.ndarray, h: int, w: int) -> np.ndarray:
    if frame.shape[:2] == (h, w):
        return frame
    t = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0).float()
    t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return t.squeeze(0).permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


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
