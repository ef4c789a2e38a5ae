"""Long videos: exhaustive vs coarse-to-fine search (issue 10), per decoder, plus a replay on saved features.

Makes a scene-structured video (scenes of 20-70 s, each a different ffmpeg ``lavfi`` source with its own
hue, joined without re-encoding), then runs ``select_frames`` with ``search="exhaustive"`` and
``search="coarse-to-fine"`` for each decoder backend, each run in a fresh process (clean peak RSS).
Per run: wall time, peak RSS, frames requested from the decoder (= candidates encoded), encoded frames,
and agreement with the exhaustive top-k of the same backend: overlap, and picks in the exhaustive top 2%
by score. Each coarse-to-fine run also reports the search's own time (estimates, bounds, span scoring), why
it stopped and its rounds. The replay takes the exhaustive run's features (its feature cache) and replays the
policy for several questions without decoding.

    nice -n 10 python benchmarks/long_video.py --minutes 30                       # tiny test encoder
    nice -n 10 python benchmarks/long_video.py --minutes 60 --size 1280x720 --encoder vit-b32 --backends pyav
    nice -n 10 python benchmarks/long_video.py --minutes 30 --scenes 20-70,8-30 --backends auto
    nice -n 10 python benchmarks/long_video.py --minutes 60 --size 1280x720 --encoder vit-l14 --backends auto \
        --dtypes float32,bfloat16 --sample 32 --k 8,16,32      # exhaustive extrapolated from 32 candidates
    ... --sample 32 --reference-cache DIR   # agreement from whole float32 features made once into DIR by
                                            # TemporalSampler.from_pretrained(CKPT, feature_cache_dir=DIR)
                                            # .encode_video(VIDEO)

On a CUDA machine it also prints NVDEC (torchcodec on the GPU) vs CPU decoding and the encoder in float16 vs
float32 on the same video.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import FIXTURE_CHECKPOINT, cpu_line, make_vit_b32_checkpoint, peak_rss_mb, print_table

SOURCES = ("testsrc2=", "smptehdbars=", "rgbtestsrc=", "gradients=speed=0.05:", "testsrc=", "color=c={color}:")
QUESTIONS = (
    "when does the bar reach the right edge?",
    "what colour is the background at the start?",
    "how many circles are on screen?",
    "which scene shows moving stripes?",
    "what happens after the colours change?",
    "where is the counter in the frame?",
    "is there text on the screen?",
    "what is the last thing shown?",
)


def make_scene_video(
    path: Path, minutes: float, size: tuple[int, int], fps: float, *, noise: float = 8.0, seed: int = 0,
    scenes: tuple[int, int] = (20, 70),
) -> list[float]:
    """Scenes of ``scenes`` seconds (20-70 by default) from varied lavfi sources, H.264 with a 10 s GOP;
    returns the scene start times."""
    rng = np.random.default_rng(seed)
    total = minutes * 60.0
    starts, durations = [], []
    t = 0.0
    while t < total - 1e-6:
        d = float(min(total - t, rng.integers(scenes[0], scenes[1] + 1)))
        starts.append(t)
        durations.append(d)
        t += d
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is not on PATH")
    w, h = size
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for i, d in enumerate(durations):
            src = SOURCES[int(rng.integers(len(SOURCES)))].format(color=f"0x{int(rng.integers(1 << 24)):06x}")
            hue, sat = int(rng.integers(0, 360)), float(rng.uniform(0.5, 2.0))
            vf = f"hue=h={hue}+t*{float(rng.uniform(0, 3)):.2f}:s={sat:.2f}"
            vf += f",noise=alls={noise:g}:allf=t" if noise > 0 else ""
            part = Path(tmp) / f"s{i:04d}.mp4"
            args = [
                ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i", f"{src}size={w}x{h}:rate={fps}:duration={d}", "-vf", vf,
                "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-g", str(int(fps * 10)),
                "-pix_fmt", "yuv420p", "-threads", "2", str(part),
            ]  # fmt: skip
            subprocess.run(args, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=900)
            parts.append(part)
        listing = Path(tmp) / "list.txt"
        listing.write_text("".join(f"file '{p}'\n" for p in parts))
        args = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                "-c", "copy", str(path)]  # fmt: skip
        subprocess.run(args, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=900)
    return starts


def sample_worker(sampler, spec: dict) -> dict:
    """Exhaustive cost from a fixed number of candidates: decode and encode the first ``sample`` 1-fps candidates
    (as the exhaustive pass does, in order), then extrapolate to all of them. One encoder pass runs untimed first:
    an hour's pass pays the model's first-touch cost once, not once per ``sample`` candidates."""
    import torch

    from tspo_sampler.video import VideoDecoder

    with VideoDecoder(spec["video"], backend=spec["backend"]) as dec:
        indices, _ = dec.candidates(fps=1.0)
        warm = next(iter(dec.iter_frames(indices[:8], short_side=224, batch_size=8)))
        sampler.encode_frames(torch.from_numpy(warm.data), progress=False)
        start = time.perf_counter()
        for batch in dec.iter_frames(indices[: spec["sample"]], short_side=224, batch_size=8):
            sampler.encode_frames(torch.from_numpy(batch.data), progress=False)
        per_frame = (time.perf_counter() - start) / min(spec["sample"], len(indices))
    return {"wall_s": per_frame * len(indices), "per_frame_s": per_frame, "peak_rss_mb": peak_rss_mb(),
            "encoded": len(indices), "candidates": len(indices), "positions": [], "scores": [], "sampled": True}


class KeepSearchResult:
    """Keeps the :class:`SearchResult` of a ``select_frames(search="coarse-to-fine")`` call (the search's own time,
    why it stopped, its rounds), so the run that is timed goes through the library's own path."""

    def __enter__(self) -> list:
        from tspo_sampler.scoring import _search_video

        self.results: list = []
        self.search = _search_video.coarse_to_fine

        def keep(*args, **kwargs):
            self.results.append(self.search(*args, **kwargs))
            return self.results[-1]

        _search_video.coarse_to_fine = keep
        return self.results

    def __exit__(self, *exc) -> None:
        from tspo_sampler.scoring import _search_video

        _search_video.coarse_to_fine = self.search


def refuse_to_encode(cache: str, video: str):
    """An encoder that stops the benchmark: saved features are read, never made on the way (a whole pass over the
    ViT-L hour is an hour)."""

    def refuse(frames):
        raise SystemExit(f"{cache} holds no float32 features of {video}: make them first with "
                         "TemporalSampler.from_pretrained(CKPT, feature_cache_dir=DIR).encode_video(VIDEO)")

    return refuse


def worker(spec: dict) -> dict:
    """One run in this process: select_frames on one backend with one search mode."""
    import torch

    from tspo_sampler import TemporalSampler

    torch.set_num_threads(spec["threads"])
    sampler = TemporalSampler.from_pretrained(spec["checkpoint"], device="cpu", feature_cache=bool(spec["cache"]),
                                              feature_cache_dir=spec["cache"] or None,
                                              dtype=getattr(torch, spec["dtype"]))
    if spec.get("sample"):
        return sample_worker(sampler, spec)
    if spec.get("reference"):
        sampler.encoder.encode_images = refuse_to_encode(spec["cache"], spec["video"])
    calls = []  # frames per encoder call: each costs ceil(frames / pass_rows) forward passes (the last one padded)
    encode_images = sampler.encoder.encode_images
    sampler.encoder.encode_images = lambda frames: calls.append(len(frames)) or encode_images(frames)
    with KeepSearchResult() as searches:
        start = time.perf_counter()
        sel = sampler.select_frames(
            spec["video"], spec["question"], spec["k"], return_frames=False, search=spec["search"],
            decoder=spec["backend"],
        )
        wall = time.perf_counter() - start
    rows = sampler.encoder.pass_rows
    search = {"policy_s": searches[0].policy_seconds, "stopped": searches[0].stopped,
              "rounds": searches[0].rounds, "passes": sum(-(-n // rows) for n in calls),
              "padded": sum(-n % rows for n in calls)} if searches else {}
    return {
        **search,
        "wall_s": wall,
        "peak_rss_mb": peak_rss_mb(),
        "encoded": int(sel.encoded_frames),
        "candidates": len(sel.candidate_indices),
        "positions": list(map(int, sel.positions)),
        "scores": [None if not np.isfinite(s) else float(s) for s in np.asarray(sel.scores, dtype=np.float64)],
    }


def gpu_report(video: Path, checkpoint: Path, k: int) -> None:
    """On a CUDA machine: NVDEC (torchcodec on the GPU) vs CPU decoding of every candidate, and the encoder
    in float16 vs float32, both on this video."""
    import torch

    from tspo_sampler import TemporalSampler
    from tspo_sampler.video import VideoDecoder

    rows = []
    for name, kwargs in (("pyav (CPU)", {"backend": "pyav"}), ("torchcodec (CPU)", {"backend": "torchcodec"}),
                         ("torchcodec (NVDEC)", {"backend": "torchcodec", "device": "cuda"})):
        try:
            with VideoDecoder(str(video), **kwargs) as dec:
                idx, _ = dec.candidates(fps=1.0)
                start = time.perf_counter()
                for chunk in np.array_split(idx, max(1, len(idx) // 128)):
                    dec.get_frames(chunk, short_side=224)
                rows.append({"decoding": name, "frames": len(idx), "wall_s": time.perf_counter() - start})
        except Exception as exc:  # a backend missing on this machine is a row, not a crash
            rows.append({"decoding": name, "frames": 0, "wall_s": float("nan"), "error": str(exc)[:60]})
    print("\ndecoding every 1-fps candidate at 224 px")
    print_table(rows, ["decoding", "frames", "wall_s", "error"])
    nvdec = any(r["decoding"] == "torchcodec (NVDEC)" and r["frames"] for r in rows)
    rows = []
    for dtype in (torch.float32, torch.float16):
        sampler = TemporalSampler.from_pretrained(str(checkpoint), device="cuda", dtype=dtype, feature_cache=False)
        decoder = "torchcodec" if nvdec else "auto"
        torch.cuda.synchronize()
        start = time.perf_counter()
        sel = sampler.select_frames(str(video), QUESTIONS[0], k, return_frames=False, decoder=decoder)
        torch.cuda.synchronize()
        rows.append({"dtype": str(dtype).replace("torch.", ""), "decoder": decoder, "candidates":
                     len(sel.candidate_indices), "wall_s": time.perf_counter() - start,
                     "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20})
    print("\nselect_frames on the GPU (exhaustive)")
    print_table(rows, ["dtype", "decoder", "candidates", "wall_s", "peak_gpu_mb"])


def run_worker(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def with_picks(ex: dict, k: int) -> dict:
    """An exhaustive run's result with its top-``k`` picks (``select_frames``' ``topk``: best scores, in time
    order), for another ``k`` than the one it ran with."""
    if ex.get("sampled"):
        return ex
    scores = np.asarray(ex["scores"], dtype=np.float64)
    return {**ex, "positions": sorted(np.argsort(-scores, kind="stable")[:k].tolist())}


def agreement(exhaustive: np.ndarray, picks: list[int], k: int) -> tuple[int, int]:
    """(overlap with the exhaustive top-k, picks in the exhaustive top 2% by score)."""
    top = set(np.argsort(-exhaustive, kind="stable")[:k].tolist())
    threshold = np.quantile(exhaustive, 0.98)
    return len(top & set(picks)), int(sum(exhaustive[p] >= threshold for p in picks))


def table_rows(backend: str, dtype: str, ex: dict, cf: dict, reference: np.ndarray | None, k: int) -> list[dict]:
    """Both searches of one backend and dtype; agreement is with the backend's exhaustive float32 top-k
    (``None``: the exhaustive run was extrapolated from a sample and no --reference-cache scored it whole)."""
    rows = []
    for name, r in (("exhaustive", ex), ("coarse-to-fine", cf)):
        overlap, top2 = agreement(reference, r["positions"], k) if reference is not None else ("n/a", "n/a")
        name = "exhaustive (extrapolated)" if r.get("sampled") else name
        rows.append({
            "backend": backend, "dtype": dtype, "search": name, "wall_s": f"{r['wall_s']:.1f}",
            "x_exhaustive": f"{r['wall_s'] / ex['wall_s']:.2f}", "peak_rss_mb": f"{r['peak_rss_mb']:.0f}",
            "decoded": r["encoded"], "encoded": f"{r['encoded']} ({r['encoded'] / r['candidates']:.1%})",
            "overlap": f"{overlap}/{k}", "in_top2%": f"{top2}/{k}",
        })
    return rows


def replay(checkpoint: str, cache: str, video: str, ks: list[int]) -> dict[int, list[dict]]:
    """The policy on saved whole features (the exhaustive run's, or --reference-cache), for several questions and
    each ``k`` (no decoding). Features that record the file's keyframes replay the live file search; older ones
    (saved before features recorded them) search with the in-memory grid, and the benchmark says so."""
    from tspo_sampler import TemporalSampler

    sampler = TemporalSampler.from_pretrained(checkpoint, device="cpu", feature_cache_dir=cache)
    sampler.encoder.encode_images = refuse_to_encode(cache, video)
    feats = sampler.encode_video(video)  # a cache hit: the exhaustive run stored them
    if "keyframes" not in feats.metadata:
        print(f"note: the saved features of {video} record no keyframes (saved by an older version): these replays "
              "use the in-memory grid, not the live file search's", flush=True)
    rows: dict[int, list[dict]] = {k: [] for k in ks}
    for q in QUESTIONS:
        scores = np.asarray(sampler.select_from_features(feats, q, 1).scores, dtype=np.float64)
        for k in ks:
            with KeepSearchResult() as searches:
                start = time.perf_counter()
                cf = sampler.select_from_features(feats, q, k, search="coarse-to-fine")
                wall = time.perf_counter() - start
            overlap, top2 = agreement(scores, cf.positions, k)
            rows[k].append({"question": q[:32], "encoded": f"{cf.encoded_frames / len(feats.features):.1%}",
                            "stopped": searches[0].stopped, "overlap": f"{overlap}/{k}", "in_top2%": f"{top2}/{k}",
                            "policy_s": f"{wall:.2f}"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--encoder", choices=("tiny", "vit-b32", "vit-l14"), default="tiny")
    parser.add_argument("--scenes", default="20-70", help="scene lengths in seconds, one video per range: 20-70,8-30")
    parser.add_argument("--backends", default="pyav,decord")
    parser.add_argument("--dtypes", default="float32", help="encoder dtypes, e.g. float32,bfloat16")
    parser.add_argument("--k", default="8", help="frames to select, e.g. 8,16,32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample", type=int, default=0,
                        help="time exhaustive runs on this many candidates and extrapolate (0: run them whole)")
    parser.add_argument("--bf16-sample", type=int, default=8, help="candidates a bfloat16 exhaustive run times")
    parser.add_argument("--no-replay", action="store_true", help="skip the replay on saved features")
    parser.add_argument("--reference-cache", default=None,
                        help="feature cache holding whole float32 features of these videos (made once, e.g. by "
                             "TemporalSampler.encode_video with this cache): with --sample, agreement is measured "
                             "against the exhaustive top-k scored from them")
    parser.add_argument("--noise", type=float, default=8.0, help="film grain strength (0: none; faster to make)")
    parser.add_argument("--workdir", default=None, help="keep the video and checkpoints here (default: temporary)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    print(cpu_line(), flush=True)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="tspo-long-"))
    work.mkdir(parents=True, exist_ok=True)
    w, h = map(int, args.size.split("x"))
    checkpoint = FIXTURE_CHECKPOINT if args.encoder == "tiny" else make_vit_b32_checkpoint(
        work / args.encoder, shape=args.encoder)
    backends, dtypes, ks = args.backends.split(","), args.dtypes.split(","), [int(k) for k in args.k.split(",")]
    rows, policy_rows = [], []
    cache = str(work / "cache")
    shutil.rmtree(cache, ignore_errors=True)  # the first exhaustive run must really encode (the replay reads it)
    videos = []
    for scenes in args.scenes.split(","):
        lo, hi = map(int, scenes.split("-"))
        video = work / f"scenes_{args.minutes:g}min_{w}x{h}_{lo}-{hi}s.mp4"
        if not video.is_file():
            t0 = time.perf_counter()
            starts = make_scene_video(video, args.minutes, (w, h), args.fps, noise=args.noise, scenes=(lo, hi))
            print(f"made {video.name}: {len(starts)} scenes in {time.perf_counter() - t0:.0f} s", flush=True)
        videos.append(video)
    exhaustive: dict[tuple, dict] = {}  # an exhaustive run does not depend on k (its picks do): run it once
    read: dict[tuple, dict] = {}  # exhaustive float32 scores from --reference-cache, per video and backend
    for k in ks:  # every video at the first k before any at the next, so a cut-short run still compares them
        for video in videos:
            for backend in backends:
                reference = None  # the exhaustive float32 (first dtype) run of this backend
                for dtype in dtypes:
                    base = {"checkpoint": str(checkpoint), "video": str(video), "question": QUESTIONS[0], "k": k,
                            "threads": args.threads, "backend": backend, "dtype": dtype}
                    first = video == videos[0] and backend == backends[0] and dtype == dtypes[0] and k == ks[0]
                    sample = args.bf16_sample if dtype == "bfloat16" else args.sample
                    key = (str(video), backend, dtype)
                    if key in exhaustive:
                        ex = with_picks(exhaustive[key], k)
                    else:
                        ex = run_worker({**base, "search": "exhaustive", "cache": cache if first else None,
                                         "sample": sample})
                        exhaustive[key] = ex
                    print(f"[{video.stem}, {backend}, {dtype}, k={k}] exhaustive{' (sampled)' if sample else ''}: "
                          f"{ex['wall_s']:.1f} s", flush=True)
                    if dtype == "bfloat16" and reference is not None and ex["wall_s"] > reference["wall_s"]:
                        rows.append({"video": video.stem[-9:], "backend": backend, "dtype": dtype, "k": k,
                                     "search": "exhaustive (sampled)", "wall_s": f"{ex['wall_s']:.0f}",
                                     "x_exhaustive": f"{ex['wall_s'] / reference['wall_s']:.2f} of float32",
                                     "peak_rss_mb": f"{ex['peak_rss_mb']:.0f}"})
                        continue  # bfloat16 does not help on this CPU: no coarse-to-fine run for it
                    if ex.get("sampled") and args.reference_cache and (str(video), backend) not in read:
                        read[str(video), backend] = run_worker({**base, "search": "exhaustive", "dtype": "float32",
                                                                "cache": args.reference_cache, "reference": True})
                    cf = run_worker({**base, "search": "coarse-to-fine", "cache": None})
                    print(f"[{video.stem}, {backend}, {dtype}, k={k}] coarse-to-fine: {cf['wall_s']:.1f} s, "
                          f"{cf['encoded']} encoded, peak RSS {cf['peak_rss_mb']:.0f} MB", flush=True)
                    reference = reference or ex
                    scored = read.get((str(video), backend)) if reference.get("sampled") else reference
                    ref = None if scored is None else np.asarray(scored["scores"], dtype=np.float64)
                    for row in table_rows(backend, dtype, ex, cf, ref, k):
                        rows.append({"video": video.stem[-9:], "k": k, **row})
                    policy_rows.append({"video": video.stem[-9:], "dtype": dtype, "k": k,
                                        "wall_s": f"{cf['wall_s']:.1f}", "policy_s": f"{cf['policy_s']:.2f}",
                                        "policy_share": f"{cf['policy_s'] / cf['wall_s']:.1%}",
                                        "encoded": f"{cf['encoded'] / cf['candidates']:.1%}",
                                        "stopped": cf["stopped"], "rounds": cf["rounds"],
                                        "passes": f"{cf['passes']} ({cf['padded']} padded)"})
    print(f"\nencoder {args.encoder}, {args.minutes:g} min at {w}x{h}, {args.threads} threads"
          + (f"; exhaustive extrapolated from {args.sample} candidates" if args.sample else ""))
    print_table(rows, ["video", "backend", "dtype", "k", "search", "wall_s", "x_exhaustive", "peak_rss_mb", "decoded",
                       "encoded", "overlap", "in_top2%"])
    if policy_rows:
        print("\neach coarse-to-fine run: the search's own work (estimates, bounds, span scoring), why it stopped, "
              "and its encoder passes (frames the encoder padded them with)")
        print_table(policy_rows, ["video", "dtype", "k", "wall_s", "policy_s", "policy_share", "encoded", "stopped",
                                  "rounds", "passes"])
    import torch

    if torch.cuda.is_available():
        gpu_report(videos[0], checkpoint, ks[0])
    if not args.no_replay and (args.reference_cache or not args.sample):
        saved = args.reference_cache or cache
        for video in videos if args.reference_cache else videos[:1]:  # the exhaustive runs cache the first
            for k, rows_k in replay(str(checkpoint), saved, str(video), ks).items():
                print(f"\nreplay on the saved float32 features of {video.name} ({saved}; no decoding), k={k}")
                print_table(rows_k, ["question", "encoded", "stopped", "overlap", "in_top2%", "policy_s"])


if __name__ == "__main__":
    main()
