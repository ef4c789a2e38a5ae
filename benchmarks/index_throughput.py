"""Questions per second of ``tspo index`` on a dataset with 3 questions per video (like VideoMME), cache cold
and warm.

Generates ``--videos`` H.264 videos (ffmpeg ``testsrc2``, ``--size``, ``--minutes`` long each) and a JSONL
dataset of 3 questions per video, listed question-major so rows about one video are not adjacent, then runs
:func:`tspo_sampler.indexing.index_dataset` twice in this process with a ViT-B/32-shaped random CLIP:

- ``cold``: empty feature cache: every video is decoded and encoded once (its 3 questions share the pass);
- ``warm``: a fresh output with the cache filled by the cold run: no video is decoded, only text encoding
  and the agent run.

    python benchmarks/index_throughput.py --json bench_out/index_throughput.json --markdown

For more processes or GPUs, run the same dataset with ``accelerate launch -m tspo_sampler.cli index``.

``--engine ray`` instead compares engines with the feature cache off (every run decodes and encodes every video):
the single-process engine, then ``tspo index --engine ray`` (:func:`tspo_sampler.indexing._ray_engine.
index_dataset_ray`) with 1 and 2 workers (``--workers``) on a local Ray (or ``--ray-address``). Ray's start-up
(``ray.init``) is timed on its own; each Ray run reports its wall time, the time to its first record (workers
starting: Python, torch and the model in every actor, plus the first batch) and rows/s after that first record.
All outputs must be identical. On a GPU machine add ``--gpus-per-worker 1`` (or 0.5)::

    python benchmarks/index_throughput.py --engine ray --videos 6 --minutes 1 --size 640x360 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import make_vit_b32_checkpoint, peak_rss_mb, print_table  # noqa: E402

QUESTIONS = (
    "when does the colour turn blue?",
    "what number is shown on the clock at the end?",
    "how many moving objects are there?",
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=8, help="number of videos (3 questions each)")
    p.add_argument("--minutes", type=float, default=2.0, help="length of each video")
    p.add_argument("--size", default="1280x720", help="video size WxH")
    p.add_argument("--video-fps", type=float, default=10.0, help="frame rate of the generated videos")
    p.add_argument("-k", type=int, default=16, help="frames per question")
    p.add_argument("--fps", type=float, default=1.0, help="candidates per second")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    p.add_argument("--workdir", default=None, help="keep videos, checkpoint and outputs here")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--markdown", action="store_true", help="also print a markdown table")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: cold and warm cache, one process; ray: single process vs Ray workers, no cache")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts (--engine ray)")
    p.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs per Ray worker (--engine ray)")
    p.add_argument("--ray-address", default=None, help="Ray cluster to join (default: a local Ray)")
    args = p.parse_args()

    import torch

    from media import make_long_video
    from tspo_sampler import TemporalSampler
    from tspo_sampler.indexing import index_dataset, read_dataset

    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    width, height = (int(x) for x in args.size.lower().split("x"))

    t0 = time.perf_counter()
    videos = []
    for v in range(args.videos):
        path = work / f"video{v:03d}.mp4"
        if not path.exists():
            # distinct content per video: identical files would share one cache entry
            make_long_video(path, args.minutes, size=(width, height), fps=args.video_fps, hue_offset=37.0 * v)
        videos.append(path.name)
    dataset = work / "dataset.jsonl"
    with dataset.open("w") as f:
        for qi, q in enumerate(QUESTIONS):
            for v, name in enumerate(videos):
                f.write(json.dumps({"id": f"{v:03d}-{qi}", "video": name, "question": q}) + "\n")
    print(f"generated {len(videos)} videos in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    model = make_vit_b32_checkpoint(work / "vit-b32-checkpoint")
    if args.engine == "ray":
        from index_throughput_ray import compare_engines

        compare_engines(args, model, dataset, work)
        if tmp is not None:
            tmp.cleanup()
        return 0
    cache = work / "feature-cache"
    sampler = TemporalSampler.from_pretrained(model, device="cpu", feature_cache_dir=cache)
    rows = read_dataset(dataset)
    results = []
    for phase in ("cold", "warm"):
        if phase == "cold" and cache.exists():
            import shutil

            shutil.rmtree(cache)
        out = work / f"frames.{phase}.jsonl"
        stats = index_dataset(sampler, rows, out, k=args.k, fps=args.fps, video_roots=[work], overwrite=True,
                              progress=False)
        recs = [json.loads(x) for x in out.read_text().splitlines()]
        assert len(recs) == len(rows) and all(r["status"] == "ok" for r in recs), "index run failed"
        results.append({
            "phase": phase,
            "questions": stats.written,
            "videos_decoded": 0 if phase == "warm" else stats.videos,
            "seconds": round(stats.seconds, 2),
            "questions_per_s": round(stats.written / stats.seconds, 2),
            "candidates_per_video": recs[0]["num_candidates"],
        })
    cold, warm = results
    assert (work / "frames.cold.jsonl").read_text() == (work / "frames.warm.jsonl").read_text()
    columns = ["phase", "questions", "videos_decoded", "seconds", "questions_per_s", "candidates_per_video"]
    print_table(results, columns)
    speedup = warm["questions_per_s"] / cold["questions_per_s"]
    print(f"peak RSS {peak_rss_mb():.0f} MB; warm/cold speed-up {speedup:.1f}x")
    setup = {"videos": args.videos, "minutes": args.minutes, "size": args.size, "video_fps": args.video_fps,
             "k": args.k, "fps": args.fps, "threads": args.threads, "encoder": "ViT-B/32-shaped CLIP (random)"}
    if args.markdown:
        print()
        print("| cache | questions | videos decoded | wall time (s) | questions / s |")
        print("|---|---:|---:|---:|---:|")
        for r in results:
            cells = (r["phase"], r["questions"], r["videos_decoded"], r["seconds"], r["questions_per_s"])
            print("| " + " | ".join(str(c) for c in cells) + " |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"setup": setup, "results": results}, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
