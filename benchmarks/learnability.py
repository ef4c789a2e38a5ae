"""Which GRPO estimator teaches the temporal agent fastest? A simulated environment with known spans.

The environment (``tspo_sampler.training.simulation``): CLIP-like features where raw similarity is an
imperfect guide (lure segments resemble the question more than the answer does) and an answerer whose
chance of answering right grows with the share of relevant frames it is shown. The real
:class:`~tspo_sampler.training.GRPOTrainer` runs on it unchanged but for the answerer.

Printed and written (``--json``): held-out hit rate (share of top-k frames inside the span) of uniform
sampling, raw-CLIP top-k, the agent before training and after training with each estimator, with the
number of answerer calls (MLLM forward passes over one rollout) each run needed.

    python benchmarks/learnability.py [--steps N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch

from tspo_sampler.agent import TemporalAgent
from tspo_sampler.training import GRPOConfig, GRPOTrainer
from tspo_sampler.training.simulation import SimulatedAnswerer, SyntheticVideos

VARIANTS = {
    # name: GRPOConfig overrides
    "reference": dict(estimator="reference", ppo_epochs=1),  # the paper's loss, on-policy
    "reference+ppo": dict(estimator="reference", ppo_epochs=4),
    "plackett-luce": dict(estimator="plackett-luce", ppo_epochs=1),
    "plackett-luce+ppo": dict(estimator="plackett-luce", ppo_epochs=4),
}


def make_env(args: argparse.Namespace) -> SyntheticVideos:
    return SyntheticVideos(num_videos=args.train + args.held_out, num_frames=args.frames, dim=args.dim, seed=args.seed)


def fresh_agent(dim: int, seed: int) -> TemporalAgent:
    torch.manual_seed(seed)
    return TemporalAgent(dim=dim)


def run_variant(name: str, overrides: dict, args: argparse.Namespace) -> dict:
    env = make_env(args)
    env.agent = fresh_agent(args.dim, args.seed)
    train, held = env.examples[: args.train], env.examples[args.train :]
    answerer = SimulatedAnswerer(env, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = GRPOConfig(
            output_dir=tmp, max_steps=args.steps, batch_size=args.batch_size, k_general=args.k,
            num_generations=args.generations, learning_rate=args.lr, save_steps=None, progress=False, report_to=[],
            seed=args.seed, **overrides,
        )
        trainer = GRPOTrainer(cfg, sampler=env, answerer=answerer, train_examples=train, eval_examples=held)
        before = trainer.evaluate(methods=("uniform", "clip", "agent"))
        t0 = time.perf_counter()
        curve = []
        while trainer.global_step < trainer.max_steps:
            trainer.train_step()
            if args.eval_every and trainer.global_step % args.eval_every == 0:
                curve.append((trainer.global_step, trainer.evaluate()["agent/hit_rate"]))
        seconds = time.perf_counter() - t0
        after = trainer.evaluate()
    return {
        "variant": name,
        "config": overrides,
        "uniform": before["uniform/hit_rate"],
        "clip_topk": before["clip/hit_rate"],
        "agent_before": before["agent/hit_rate"],
        "agent_after": after["agent/hit_rate"],
        "answerer_calls": answerer.rollouts,
        "answerer_batches": answerer.calls,
        "seconds": round(seconds, 1),
        "curve": curve,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=150, help="optimisation steps per estimator")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--dim", type=int, default=256, help="feature dimension (released agents: 768)")
    p.add_argument("--frames", type=int, default=96, help="candidates per video")
    p.add_argument("--train", type=int, default=256, help="training questions (one video each)")
    p.add_argument("--held-out", type=int, default=128, help="held-out questions")
    p.add_argument("--k", type=int, default=8, help="frames per rollout")
    p.add_argument("--generations", type=int, default=8, help="G, rollouts per question")
    p.add_argument("--batch-size", type=int, default=8, help="questions per step")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-every", type=int, default=0, help="held-out hit rate every N steps (learning curve)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    results = []
    t0 = time.perf_counter()
    for name in args.variants:
        r = run_variant(name, VARIANTS[name], args)
        results.append(r)
        print(f"{name:>20}: hit rate before {r['agent_before']:.3f} -> after {r['agent_after']:.3f} "
              f"({r['answerer_calls']} answerer calls, {r['seconds']} s)", flush=True)
    base = results[0]
    print()
    print(f"held-out hit rate (k={args.k}, {args.frames} candidates, {args.held_out} questions):")
    print(f"{'uniform':>20}: {base['uniform']:.3f}")
    print(f"{'raw CLIP top-k':>20}: {base['clip_topk']:.3f}")
    print(f"{'agent before':>20}: {base['agent_before']:.3f}")
    for r in results:
        print(f"{'after ' + r['variant']:>20}: {r['agent_after']:.3f}   (+{r['agent_after'] - r['uniform']:.3f} vs uniform, "
              f"{r['agent_after'] - r['clip_topk']:+.3f} vs CLIP; {r['answerer_calls']} answerer calls)")
    best = max(results, key=lambda r: r["agent_after"])
    target = best["agent_after"] - best["uniform"] >= 0.3 and best["agent_after"] - best["clip_topk"] >= 0.15
    total = time.perf_counter() - t0
    print(f"best: {best['variant']}; target (+0.30 vs uniform, +0.15 vs CLIP) {'met' if target else 'NOT met'}; "
          f"total {total:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "results": results, "best": best["variant"], "target_met": target,
                       "total_seconds": round(total, 1)}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
