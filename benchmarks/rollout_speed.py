"""Rollouts per second: batched option-letter logits vs the reference's one-generate-call-per-rollout loop.

The rollout step (the frozen MLLM answering from each rollout's frames) is where GRPO training spends
its time. Same run, same tiny random Qwen2.5-VL (``tests/tiny_mllms.py``), same G selections of k frames:

* ``letter-logits``: one forward pass over the G rollouts, reading the option letters' next-token
  log-probabilities (:meth:`Answerer.option_logprobs`, the trainer's default ``answer_mode="logits"``);
* ``generate-loop``: the reference's loop, one greedy ``generate`` call per rollout producing
  ``--new-tokens`` tokens (256 in the reference; forced to that length with ``min_new_tokens`` so the
  random model's early EOS does not flatter it);
* ``generate-batched``: the same generation as one batched call (the trainer's ``answer_mode="generate"``).

    python benchmarks/rollout_speed.py [--G 8] [--k 16] [--repeats 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--G", type=int, default=8, help="rollouts per question")
    p.add_argument("--k", type=int, default=16, help="frames per rollout")
    p.add_argument("--new-tokens", type=int, default=256, help="tokens generated per rollout by the loop")
    p.add_argument("--size", type=int, default=56, help="frame side in pixels")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from tiny_mllms import build_qwen2_5_vl, make_selection
    from tspo_sampler.adapters import answerer_for

    model, processor = build_qwen2_5_vl(seed=0)
    answerer = answerer_for(model, processor)
    sels = [make_selection(args.k, seed=g, size=args.size) for g in range(args.G)]
    question = "What happens in the video?\nA. a\nB. b\nC. c\nD. d"
    qs = [question] * args.G

    def letter_logits() -> None:
        answerer.option_logprobs(sels, qs, options=("A", "B", "C", "D"))

    def generate_loop() -> None:
        for s in sels:
            answerer.answer([s], [question], max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)

    def generate_batched() -> None:
        answerer.answer(sels, qs, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)

    results = {}
    for name, fn in (("letter-logits", letter_logits), ("generate-loop", generate_loop),
                     ("generate-batched", generate_batched)):
        fn()  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        best = min(times)
        results[name] = {"seconds_per_question": best, "rollouts_per_s": args.G / best}
        print(f"{name:>17}: {args.G / best:8.2f} rollouts/s  ({best * 1000:.0f} ms for G={args.G}, k={args.k})",
              flush=True)
    speedup = results["letter-logits"]["rollouts_per_s"] / results["generate-loop"]["rollouts_per_s"]
    print(f"letter-logits vs generate-loop: {speedup:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results, "speedup": speedup}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
