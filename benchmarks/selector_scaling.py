"""Time and peak memory of the temporal agent as the number of candidates T grows: ours vs the dense form.

``ours`` is :class:`tspo_sampler.TemporalAgent` (attention over a band of ``window_size`` neighbours, so time
and memory grow with ``T * w``); ``dense`` is :func:`tspo_sampler.scoring._agent.dense_reference_scores`, the
reference's formulation with a ``T x T`` mask and ``T x T`` attention per head. T = 10,800 is three hours at
1 fps. Every (method, T) runs in a fresh process so its peak RSS is its own; the memory column is the peak
RSS growth over the process's state just before the call (inputs and weights already in memory). Where
both run, the largest absolute score difference between them is reported.

    python benchmarks/selector_scaling.py                      # T = 900 ... 10,800, D = 768, w = 12
    python benchmarks/selector_scaling.py --json bench_out/selector_scaling.json --markdown

Dense runs whose attention matrices would not fit in ``--dense-max-gb`` are skipped and marked.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb, print_table  # noqa: E402

DEFAULT_T = (900, 1800, 3600, 5400, 7200, 10800)


def dense_bytes(t: int, heads: int = 8) -> float:
    """A lower bound on what the dense form holds at once: mask, per-head logits and softmax (float32)."""
    return 4.0 * t * t * (1 + 2 * heads)


def worker(method: str, t: int, dim: int, window: int, repeats: int, threads: int) -> dict:
    import numpy as np
    import torch

    from tspo_sampler.scoring._agent import TemporalAgent, dense_reference_scores

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    agent = TemporalAgent(dim).eval()
    feats = torch.nn.functional.normalize(torch.randn(t, dim), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(1, dim), dim=-1)
    fn = (lambda: agent(feats, text, window_size=window)) if method == "ours" else (
        lambda: dense_reference_scores(agent, feats, text, window_size=window))
    base = peak_rss_mb()
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            scores = fn()
            times.append(time.perf_counter() - t0)
    out = {"method": method, "T": t, "seconds": float(np.median(times)), "peak_mb": peak_rss_mb() - base}
    np.save(os.environ["SCALING_SCORES"], scores.numpy())
    return out


def run_one(method: str, t: int, args: argparse.Namespace, scores_path: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--T", str(t), "--dim", str(args.dim),
           "--window", str(args.window), "--repeats", str(args.repeats), "--threads", str(args.threads)]
    env = {**os.environ, "SCALING_SCORES": str(scores_path), "OMP_NUM_THREADS": str(args.threads)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if res.returncode != 0:
        return {"method": method, "T": t, "error": (res.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--T", type=int, nargs="+", default=list(DEFAULT_T), help="candidate counts")
    p.add_argument("--dim", type=int, default=768, help="feature dimension (768: the released agent)")
    p.add_argument("--window", type=int, default=12, help="attention window")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per run (median reported)")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads")
    p.add_argument("--dense-max-gb", type=float, default=8.0, help="skip dense runs needing more than this")
    p.add_argument("--timeout", type=float, default=900, help="seconds per run")
    p.add_argument("--json", default=None, help="write the rows here")
    p.add_argument("--markdown", action="store_true", help="also print a markdown table (for docs/benchmarks.md)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.T[0], args.dim, args.window, args.repeats, args.threads)))
        return 0

    import tempfile

    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in args.T:
            ours_path, dense_path = Path(tmp) / f"ours{t}.npy", Path(tmp) / f"dense{t}.npy"
            ours = run_one("ours", t, args, ours_path)
            if dense_bytes(t) / 2**30 > args.dense_max_gb:
                dense = {"error": f"skipped: needs > {dense_bytes(t) / 2**30:.1f} GB"}
            else:
                dense = run_one("dense", t, args, dense_path)
            row = {
                "T": t,
                "ours_s": round(ours.get("seconds", float("nan")), 4),
                "ours_peak_mb": round(ours.get("peak_mb", float("nan")), 1),
                "dense_s": round(dense["seconds"], 4) if "seconds" in dense else dense.get("error"),
                "dense_peak_mb": round(dense["peak_mb"], 1) if "peak_mb" in dense else "-",
            }
            if "seconds" in dense and "seconds" in ours:
                row["speedup"] = round(dense["seconds"] / ours["seconds"], 1)
                row["max_abs_diff"] = float(np.abs(np.load(ours_path) - np.load(dense_path)).max())
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    columns = ["T", "ours_s", "ours_peak_mb", "dense_s", "dense_peak_mb", "speedup", "max_abs_diff"]
    print_table(rows, columns)
    if args.markdown:
        print()
        print("| T | ours: time (s) | ours: peak (MB) | dense: time (s) | dense: peak (MB) | speed-up "
              "| max abs diff |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-"
            print(f"| {r['T']:,} | {r['ours_s']} | {r['ours_peak_mb']} | {r['dense_s']} | {r['dense_peak_mb']} | "
                  f"{r.get('speedup', '-')} | {diff} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"dim": args.dim, "window": args.window, "threads": args.threads,
                                               "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
