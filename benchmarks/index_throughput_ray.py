"""``index_throughput.py --engine ray``: the single-process engine against Ray workers on the same dataset.

Every run has the feature cache off, so each decodes and encodes every video once (its questions share the pass).
Ray's start-up is timed apart from the runs; each Ray run also reports the time to its first record (the workers
starting and the first batch) and its rate after that.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from common import cpu_name, print_table


def compare_engines(args: Any, model: Path, dataset: Path, work: Path) -> list[dict[str, Any]]:
    import ray

    from tspo_sampler import TemporalSampler
    from tspo_sampler.indexing import index_dataset, read_dataset
    from tspo_sampler.indexing._ray_engine import index_dataset_ray

    rows = read_dataset(dataset)
    device = "cuda" if args.gpus_per_worker else "cpu"
    results = []
    sampler = TemporalSampler.from_pretrained(model, device=device, feature_cache=False)
    out = work / "frames.local.jsonl"
    stats = index_dataset(sampler, rows, out, k=args.k, fps=args.fps, video_roots=[work], overwrite=True,
                          progress=False)
    expected = out.read_text()
    results.append({"engine": "single process", "workers": 1, "rows": stats.written,
                    "wall_s": round(stats.seconds, 2), "rows_per_s": round(stats.written / stats.seconds, 3),
                    "first_record_s": None, "rows_per_s_after_first": None})
    del sampler

    t0 = time.perf_counter()
    if args.ray_address:
        ray.init(address=args.ray_address, logging_level="WARNING", log_to_driver=False)
    else:
        ray.init(include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    ray_init_s = time.perf_counter() - t0
    try:
        for w in args.workers:
            out = work / f"frames.ray{w}.jsonl"
            arrivals: list[float] = []
            start = time.perf_counter()
            stats = index_dataset_ray(str(model), rows, out, k=args.k, fps=args.fps, video_roots=[work],
                                      overwrite=True, progress=False, feature_cache=False, device=device,
                                      num_workers=w, gpus_per_worker=args.gpus_per_worker or 0.0,
                                      on_record=lambda _r, a=arrivals: a.append(time.perf_counter()))
            wall = time.perf_counter() - start
            assert out.read_text() == expected, f"Ray with {w} workers wrote other records"
            first = arrivals[0] - start
            after = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if arrivals[-1] > arrivals[0] else None
            results.append({"engine": "ray", "workers": w, "rows": stats.written, "wall_s": round(wall, 2),
                            "rows_per_s": round(stats.written / wall, 3), "first_record_s": round(first, 2),
                            "rows_per_s_after_first": None if after is None else round(after, 3)})
    finally:
        ray.shutdown()

    columns = ["engine", "workers", "rows", "wall_s", "rows_per_s", "first_record_s", "rows_per_s_after_first"]
    print_table(results, columns)
    print(f"ray.init (local Ray start-up): {ray_init_s:.1f} s; CPU: {cpu_name()} ({os.cpu_count()} cores)")
    if args.markdown:
        print()
        print("| engine | workers | rows | wall time (s) | rows / s | first record after (s) | rows / s after it |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in results:
            print(f"| {r['engine']} | {r['workers']} | {r['rows']} | {r['wall_s']} | {r['rows_per_s']} | "
                  f"{r['first_record_s'] if r['first_record_s'] is not None else '-'} | "
                  f"{r['rows_per_s_after_first'] if r['rows_per_s_after_first'] is not None else '-'} |")
    if args.json:
        setup = {"videos": args.videos, "minutes": args.minutes, "size": args.size, "video_fps": args.video_fps,
                 "k": args.k, "fps": args.fps, "cpu": cpu_name(), "ray_init_s": round(ray_init_s, 2),
                 "gpus_per_worker": args.gpus_per_worker, "encoder": "ViT-B/32-shaped CLIP (random)"}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"setup": setup, "results": results}, indent=2))
    sys.stdout.flush()
    return results
