"""select_frames time and peak memory on long generated videos, beside the reference pipeline and pure decoding.

Every pipeline runs in its own process (so peak RSS is its own) on the same file, in the same run:

- ``ours``: ``TemporalSampler.select_frames`` (chunked decode at encoder size, weights kept in their
  stored bfloat16 and widened per layer, banded attention, full resolution only for the k returned
  frames), feature cache off.
- ``ours-warm``: a second question about the same video with the feature cache warm.
- ``ours-widened`` (not run by default): ``ours`` with ``compact_weights=False``, every weight widened to
  float32 at load, the way it was before compact weights.
- ``reference``: what the TSPO reference does: decord decodes every candidate at full resolution into memory,
  ``CLIPProcessor`` preprocesses each frame through PIL, one encoder pass, dense T x T attention.
- ``decode``: PyAV decoding the same candidates at full resolution and dropping them (the decoding floor).

The encoder is a randomly initialised ViT-B/32-shaped CLIP (weights do not change the cost).

    python benchmarks/select_speed.py --minutes 10 30 60 --json bench_out/select_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import make_vit_b32_checkpoint, peak_rss_mb, print_table  # noqa: E402

QUESTION = "when does the colour change to blue?"
SECOND_QUESTION = "what is written on the screen at the end?"


def worker(kind: str, video: str, model: str, k: int, fps: float, cache_dir: str | None) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    base_rss = peak_rss_mb()
    out: dict = {"pipeline": kind}
    if kind in ("ours", "ours-warm", "ours-widened"):
        from tspo_sampler import TemporalSampler

        sampler = TemporalSampler.from_pretrained(
            model, device="cpu", feature_cache=bool(cache_dir), feature_cache_dir=cache_dir or None,
            compact_weights=kind != "ours-widened",
        )
        if kind == "ours-warm":
            sampler.select_frames(video, QUESTION, k, fps=fps, progress=False)  # fills the cache
        t0 = time.perf_counter()
        question = SECOND_QUESTION if kind == "ours-warm" else QUESTION
        sel = sampler.select_frames(video, question, k, fps=fps, progress=False)
        out["seconds"] = time.perf_counter() - t0
        out["candidates"] = len(sel.candidate_indices)
        out["frames_shape"] = list(sel.frames.shape)
    elif kind == "reference":
        import decord
        from PIL import Image
        from transformers import CLIPProcessor

        from tspo_sampler.hub._hub import load_checkpoint
        from tspo_sampler.scoring._agent import dense_reference_scores

        loaded = load_checkpoint(Path(model), device=torch.device("cpu"), dtype=torch.float32)
        processor = CLIPProcessor.from_pretrained(model)
        clip = loaded.encoder.model
        t0 = time.perf_counter()
        vr = decord.VideoReader(video, ctx=decord.cpu(0), num_threads=0)
        step = max(1, round(vr.get_avg_fps() / fps))
        idx = list(range(0, len(vr), step))
        frames = vr.get_batch(idx).asnumpy()  # every candidate at full resolution, in memory
        with torch.no_grad():
            text = processor(text=QUESTION, return_tensors="pt", padding=True, truncation=True)
            tf = clip.text_projection(clip.text_model(**text).pooler_output)
            pixels = processor(images=[Image.fromarray(f) for f in frames], return_tensors="pt")["pixel_values"]
            imf = clip.visual_projection(clip.vision_model(pixel_values=pixels).pooler_output)
            cs = torch.nn.functional.cosine_similarity(tf, imf)
            scores = dense_reference_scores(loaded.agent, imf, tf, cs, window_size=12)
        chosen = torch.sort(torch.topk(scores, k).indices).values.numpy()
        picked = frames[chosen]
        out["seconds"] = time.perf_counter() - t0
        out["candidates"] = len(idx)
        out["frames_shape"] = list(picked.shape)
        del frames
    elif kind == "decode":
        import av

        t0 = time.perf_counter()
        n = 0
        with av.open(video) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            tb = float(stream.time_base)
            next_t = 0.0
            for frame in container.decode(stream):
                t = frame.pts * tb
                if t + 1e-6 >= next_t:
                    frame.to_ndarray(format="rgb24")
                    n += 1
                    next_t += 1.0 / fps
        out["seconds"] = time.perf_counter() - t0
        out["candidates"] = n
    else:
        raise ValueError(kind)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["start_rss_mb"] = round(base_rss, 1)
    out["seconds"] = round(out["seconds"], 2)
    return out


def reference_memory_gb(video: Path, fps: float) -> float:
    """What the reference pipeline holds at once: every candidate at full resolution, twice (array + PIL)."""
    import av

    with av.open(str(video)) as c:
        st = c.streams.video[0]
        seconds = float(st.duration * st.time_base) if st.duration else float(c.duration) / 1e6
        return 2 * seconds * fps * st.codec_context.width * st.codec_context.height * 3 / 1e9


def available_gb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1e6
    return float("inf")


def run_worker(kind: str, video: Path, model: Path, k: int, fps: float, cache_dir: str | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--video", str(video), "--model", str(model),
           "-k", str(k), "--fps", str(fps)]
    if cache_dir:
        cmd += ["--cache-dir", cache_dir]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if res.returncode != 0:
        last = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        return {"pipeline": kind, "error": last}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[30.0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--source-fps", type=float, default=5.0, help="frame rate of the generated video")
    ap.add_argument("--fps", type=float, default=1.0, help="candidates per second")
    ap.add_argument("-k", type=int, default=16)
    ap.add_argument("--pipelines", nargs="+", default=["ours", "ours-warm", "reference", "decode"],
                    choices=["ours", "ours-warm", "ours-widened", "reference", "decode"])
    ap.add_argument("--workdir", default=None, help="where videos and the checkpoint are kept (default: a temp dir)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--video", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.video, args.model, args.k, args.fps, args.cache_dir)))
        return

    from media import make_long_video

    work = Path(args.workdir or tempfile.mkdtemp(prefix="tspo-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    model = make_vit_b32_checkpoint(work / "vit-b32-tspo")
    w, h = (int(x) for x in args.size.split("x"))
    rows = []
    for minutes in args.minutes:
        video = work / f"long_{int(minutes)}min_{h}p_{args.source_fps:g}fps.mp4"
        if not video.exists():
            t0 = time.perf_counter()
            make_long_video(video, minutes, size=(w, h), fps=args.source_fps, threads=os.cpu_count() or 1)
            took = time.perf_counter() - t0
            print(f"generated {video.name} ({video.stat().st_size / 1e6:.1f} MB) in {took:.1f}s", flush=True)
        for kind in args.pipelines:
            if kind == "reference":
                need_gb = reference_memory_gb(video, args.fps)
                if need_gb > 0.7 * available_gb():
                    r = {"pipeline": kind, "minutes": minutes,
                         "error": f"skipped: would hold ~{need_gb:.0f} GB of frames, "
                                  f"{available_gb():.0f} GB available"}
                    rows.append(r)
                    print(json.dumps(r), flush=True)
                    continue
            cache = tempfile.mkdtemp(prefix="tspo-cache-", dir=work) if kind == "ours-warm" else None
            r = run_worker(kind, video, model, args.k, args.fps, cache)
            r["minutes"] = minutes
            rows.append(r)
            print(json.dumps(r), flush=True)
        ref = next(
            (r for r in rows if r["minutes"] == minutes and r["pipeline"] == "reference" and "seconds" in r), None
        )
        for r in rows:
            if r["minutes"] == minutes and ref and "seconds" in r:
                r["x_reference"] = round(r["seconds"] / ref["seconds"], 2)
    print()
    print_table(rows, ["minutes", "pipeline", "candidates", "seconds", "x_reference", "peak_rss_mb", "error"])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        report = {"size": args.size, "source_fps": args.source_fps, "rows": rows}
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
