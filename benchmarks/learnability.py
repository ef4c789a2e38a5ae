"""Which GRPO estimator teaches the temporal agent fastest? A simulated environment with known spans.

The environment (``tspo_sampler.training._simulation``): CLIP-like features where raw similarity is an
imperfect guide (lure segments resemble the question more than the answer does) and an answerer whose
chance of answering right grows with the share of relevant frames it is shown. The real
:class:`~tspo_sampler.training.GRPOTrainer` runs on it unchanged but for the answerer. The rows carry
their span, so (as for the paper's "specific" samples) the reward is accuracy plus the temporal reward
(``temporal_reward="known"``); one variant trains on accuracy alone for comparison.

Printed and written (``--json``): held-out hit rate (share of top-k frames inside the span) of uniform
sampling, raw-CLIP top-k, the agent before training and after training with each estimator, with the
number of answerer calls (MLLM answers, one per rollout) each run made and the number after which the
held-out hit rate (measured every ``--eval-every`` steps) first reached the target
(+0.30 over uniform and +0.15 over raw CLIP).

    python benchmarks/learnability.py [--steps N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch

from tspo_sampler.scoring._agent import TemporalAgent
from tspo_sampler.training import GRPOConfig, GRPOTrainer
from tspo_sampler.training._simulation import SimulatedAnswerer, SyntheticVideos

# Every variant gets the paper's temporal reward (share of chosen frames inside the span) on top of
# accuracy: the rows carry their span, as "specific" rows do in the paper, and ``temporal_reward="known"``
# applies it to them. "reference (accuracy only)" shows what accuracy alone does in the same budget.
TEMPORAL = dict(temporal_reward="known")
VARIANTS = {
    # name: GRPOConfig overrides
    "reference": dict(estimator="reference", ppo_epochs=1, **TEMPORAL),  # the paper's loss, on-policy
    "reference+ppo": dict(estimator="reference", ppo_epochs=4, **TEMPORAL),
    "plackett-luce": dict(estimator="plackett-luce", ppo_epochs=1, **TEMPORAL),
    "plackett-luce+ppo": dict(estimator="plackett-luce", ppo_epochs=4, **TEMPORAL),
    "reference+kl": dict(estimator="reference", ppo_epochs=1, kl_beta=0.05, **TEMPORAL),
    "reference (accuracy only)": dict(estimator="reference", ppo_epochs=1, temporal_reward="never"),
}
TARGET_VS_UNIFORM = 0.30
TARGET_VS_CLIP = 0.15


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
        goal = max(before["uniform/hit_rate"] + TARGET_VS_UNIFORM, before["clip/hit_rate"] + TARGET_VS_CLIP)
        t0 = time.perf_counter()
        curve = []
        calls_to_target = None
        while trainer.global_step < trainer.max_steps:
            trainer.train_step()
            if args.eval_every and trainer.global_step % args.eval_every == 0:
                hit = trainer.evaluate()["agent/hit_rate"]
                curve.append((trainer.global_step, round(hit, 4)))
                if calls_to_target is None and hit >= goal:
                    calls_to_target = answerer.rollouts
        seconds = time.perf_counter() - t0
        after = trainer.evaluate()
        if calls_to_target is None and after["agent/hit_rate"] >= goal:
            calls_to_target = answerer.rollouts
    return {
        "variant": name,
        "config": overrides,
        "uniform": before["uniform/hit_rate"],
        "clip_topk": before["clip/hit_rate"],
        "agent_before": before["agent/hit_rate"],
        "agent_after": after["agent/hit_rate"],
        "answerer_calls": answerer.rollouts,
        "answerer_calls_to_target": calls_to_target,
        "answerer_batches": answerer.calls,
        "seconds": round(seconds, 1),
        "curve": curve,
    }


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=800, help="optimisation steps per estimator")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--dim", type=int, default=128, help="feature dimension (released agents: 768)")
    p.add_argument("--frames", type=int, default=64, help="candidates per video")
    p.add_argument("--train", type=int, default=1024,
                   help="training questions (one video each; with a few hundred the agent memorises them)")
    p.add_argument("--held-out", type=int, default=128, help="held-out questions")
    p.add_argument("--k", type=int, default=8, help="frames per rollout")
    p.add_argument("--generations", type=int, default=8, help="G, rollouts per question")
    p.add_argument("--batch-size", type=int, default=8, help="questions per step")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-every", type=int, default=50,
                   help="held-out hit rate every N steps (learning curve, answerer calls to reach the target)")
    p.add_argument("--seed", type=int, default=0)
    # The agent's matrices are tiny: one thread is several times faster than two on a shared machine.
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2, help="variants trained at the same time (processes)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    results = []
    t0 = time.perf_counter()
    if args.jobs > 1 and len(args.variants) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(args.threads,)) as pool:
            futures = [pool.submit(run_variant, name, VARIANTS[name], args) for name in args.variants]
            runs = [f.result() for f in futures]
    else:
        runs = (run_variant(name, VARIANTS[name], args) for name in args.variants)
    for r in runs:
        name = r["variant"]
        results.append(r)
        print(f"{name:>32}: hit rate before {r['agent_before']:.3f} -> after {r['agent_after']:.3f} "
              f"({r['answerer_calls']} answerer calls, {r['seconds']} s)", flush=True)
    base = results[0]
    print()
    print(f"held-out hit rate (k={args.k}, {args.frames} candidates, {args.held_out} questions, "
          f"{args.steps} steps of {args.batch_size} questions x G={args.generations}):")
    print(f"{'uniform':>32}: {base['uniform']:.3f}")
    print(f"{'raw CLIP top-k':>32}: {base['clip_topk']:.3f}")
    print(f"{'agent before':>32}: {base['agent_before']:.3f}")
    for r in results:
        reach = r["answerer_calls_to_target"]
        after = r["agent_after"]
        print(f"{'after ' + r['variant']:>32}: {after:.3f}   ({after - r['uniform']:+.3f} vs uniform, "
              f"{after - r['clip_topk']:+.3f} vs CLIP; {r['answerer_calls']} answerer calls, target reached "
              f"after {reach if reach is not None else 'never'}; {r['seconds']} s)")
    best = max(results, key=lambda r: r["agent_after"])
    target = (best["agent_after"] - best["uniform"] >= TARGET_VS_UNIFORM
              and best["agent_after"] - best["clip_topk"] >= TARGET_VS_CLIP)
    total = time.perf_counter() - t0
    print(f"best: {best['variant']}; target (+{TARGET_VS_UNIFORM:.2f} vs uniform, +{TARGET_VS_CLIP:.2f} vs CLIP) "
          f"{'met' if target else 'NOT met'}; total {total:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "results": results, "best": best["variant"], "target_met": target,
                       "total_seconds": round(total, 1)}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
