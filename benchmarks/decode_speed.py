"""Decoding speed for 1-fps candidates of long 720p videos, every way we can decode them, in one run.

For each length (``--minutes``) a 720p H.264 video at a realistic source rate (25 fps, a keyframe
every 250 frames = 10 s, x264's default interval) is generated once under ``--workdir`` (reruns reuse
it; lengths that are multiples of ``--segment-minutes`` are stream-copied from one generated segment,
so an hour costs no more to make than ten minutes).  Then, on the same file:

* ``ffmpeg fps=1``: ``ffmpeg -vf fps=1 -s WxH -f null -``, the pure-decoding floor;
* ``ffmpeg keyframes``: ``ffmpeg -skip_frame nokey ... -f null -``, the floor of keyframe decoding;
* ``decord batch``: ``decord.VideoReader(width, height).get_batch`` on the 1-fps indices, 64 a call;
* ``pyav sequential``: PyAV with frame threads decoding every frame, converting the 1-fps ones (swscale straight
  to the small size, and again through the full-size RGB frame and the resize every backend shares);
* ``ours iter_frames``: ``VideoDecoder(...).iter_frames(candidates(fps=1), short_side=224,
  batch_size=64)`` as the sampler calls it (``backend="auto"``, including opening the file);
* ``ours keyframes``: the same with ``candidates(fps=1, mode="keyframes")``, plus the mean and
  max distance (s) between each 1-fps target instant and the keyframe that stands for it;
* ``ours get_frames k=8`` / ``decord get_frames k=8``: 8 far-apart frames at full resolution (what
  the sampler decodes for the chosen frames).

Every row gives wall time and CPU time (this process plus ffmpeg children): on a shared machine the
CPU time is the steadier of the two.

    python benchmarks/decode_speed.py --minutes 10 30 60 --json bench_out/decode_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av  # noqa: F401  (before decord: see tspo_sampler.video._decord.import_decord)
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402  (also puts tests/ on sys.path for media)

import media  # noqa: E402
from tspo_sampler.video import VideoDecoder  # noqa: E402
from tspo_sampler.video._decord import import_decord as _import_decord  # noqa: E402
from tspo_sampler.video._types import resize_frames  # noqa: E402

BATCH = 64
SHORT_SIDE = 224


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn):  # noqa: ANN001, ANN202
    t0, c0 = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - t0, _cpu() - c0


def make_video(workdir: Path, minutes: float, *, fps: float, gop: int, segment: float) -> Path:
    """The benchmark file for ``minutes`` (cached), stream-copied from segments where possible."""
    tag = f"{fps:g}fps_gop{gop}"
    path = workdir / f"long_{minutes:g}min_720p_{tag}.mp4"
    if path.is_file() and path.stat().st_size > 0:
        return path
    copies = minutes / segment
    if minutes > segment and abs(copies - round(copies)) < 1e-9:
        seg = make_video(workdir, segment, fps=fps, gop=gop, segment=segment)
        listing = workdir / f"concat_{minutes:g}_{tag}.txt"
        listing.write_text(f"file '{seg.resolve()}'\n" * int(round(copies)))
        tmp = path.with_suffix(".part.mp4")
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(tmp)],
            check=True, stdin=subprocess.DEVNULL, capture_output=True,
        )  # fmt: skip
        tmp.replace(path)
        listing.unlink()
        return path
    print(f"generating {path.name} (ffmpeg testsrc2, ultrafast) ...", flush=True)
    tmp = path.with_suffix(".part.mp4")
    media.make_long_video(tmp, minutes, size=(1280, 720), fps=fps, gop=gop)
    tmp.replace(path)
    return path


def _scaled(width: int, height: int) -> tuple[int, int]:
    scale = SHORT_SIDE / min(width, height)
    if width <= height:
        return SHORT_SIDE, int(round(height * scale))
    return int(round(width * scale)), SHORT_SIDE


def bench_ffmpeg(path: Path, size: tuple[int, int], keyframes: bool) -> int:
    args = ["ffmpeg", "-v", "error", "-nostdin"]
    if keyframes:
        args += ["-skip_frame", "nokey", "-i", str(path), "-fps_mode", "passthrough"]
    else:
        args += ["-i", str(path), "-vf", "fps=1"]
    args += ["-s", f"{size[0]}x{size[1]}", "-f", "null", "-"]
    subprocess.run(args, check=True, capture_output=True)
    return 0


def bench_decord(path: Path, idx: np.ndarray, size: tuple[int, int]) -> int:
    decord = _import_decord()
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), width=size[0], height=size[1], num_threads=0)
    n = 0
    for s in range(0, len(idx), BATCH):
        n += len(vr.get_batch(idx[s : s + BATCH].tolist()).asnumpy())
    return n


def bench_pyav(path: Path, ts: np.ndarray, size: tuple[int, int], shared: bool = False) -> int:
    """Plain PyAV: frame threads, every frame decoded, the 1-fps ones (by pts) converted: straight to the small
    size by swscale, or (``shared``) to full-size RGB and then by the resize every backend of ours shares."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = float(stream.time_base)
        start = stream.start_time or 0
        wanted = set(np.round(ts, 6).tolist())
        n = 0
        for frame in container.decode(stream):
            if round((frame.pts - start) * tb, 6) in wanted:
                if shared:
                    resize_frames(frame.to_ndarray(format="rgb24")[None], size)
                else:
                    frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_ndarray()
                n += 1
    return n


def bench_ours(path: Path, mode: str) -> tuple[int, str, np.ndarray]:
    with VideoDecoder(path) as dec:
        idx, _ = dec.candidates(fps=1.0, mode=mode)
        n = sum(len(b) for b in dec.iter_frames(idx, short_side=SHORT_SIDE, batch_size=BATCH))
        return n, str(dec._last_path), dec.candidate_error(1.0, mode=mode)


def bench_k8(path: Path, backend: str) -> tuple[int, str]:
    with VideoDecoder(path, backend=backend) as dec:
        n = dec.metadata.num_frames
        idx = np.linspace(0.05 * n, 0.95 * n, 8).astype(np.int64)
        return len(dec.get_frames(idx)), str(dec._last_path)


def run(args: argparse.Namespace) -> dict:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    have_decord = _import_decord() is not None
    rows: list[dict] = []
    for minutes in args.minutes:
        path = make_video(workdir, minutes, fps=args.source_fps, gop=args.gop, segment=args.segment_minutes)
        with VideoDecoder(path, backend="pyav") as dec:
            meta = dec.metadata
            idx, ts = dec.candidates(fps=1.0)
            keys = len(dec._index.keyframes)
        size = _scaled(meta.width, meta.height)
        info = {"minutes": minutes, "source_frames": meta.num_frames, "keyframes": keys}
        print(f"\n{path.name}: {meta.num_frames} frames, {keys} keyframes, {len(idx)} 1-fps candidates", flush=True)

        def add(method: str, fn, frames=None, info=info, **extra):  # noqa: ANN001, ANN202
            out, wall, cpu = _timed(fn)
            row = {**info, "method": method, "frames": frames(out) if frames else out, "wall_s": round(wall, 2),
                   "cpu_s": round(cpu, 2), **{k: v(out) if callable(v) else v for k, v in extra.items()}}
            rows.append(row)
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items() if k not in info), flush=True)

        # every call below runs its function at once, in this iteration (default arguments bind the loop's values)
        n_candidates = len(idx)
        if shutil.which("ffmpeg"):
            add("ffmpeg fps=1 (floor)", lambda p=path, z=size: bench_ffmpeg(p, z, False),
                frames=lambda _, n=n_candidates: n)
            add("ffmpeg keyframes (floor)", lambda p=path, z=size: bench_ffmpeg(p, z, True),
                frames=lambda _, n=keys: n)
        add("pyav sequential", lambda p=path, t=ts, z=size: bench_pyav(p, t, z))
        add("pyav sequential, shared resize", lambda p=path, t=ts, z=size: bench_pyav(p, t, z, shared=True))
        if have_decord:
            add("decord batch", lambda p=path, i=idx, z=size: bench_decord(p, i, z))
        add("ours iter_frames", lambda p=path: bench_ours(p, "fps"), frames=lambda o: o[0], path=lambda o: o[1])
        add(
            "ours keyframes", lambda p=path: bench_ours(p, "keyframes"), frames=lambda o: o[0], path=lambda o: o[1],
            err_mean_s=lambda o: round(float(o[2].mean()), 2), err_max_s=lambda o: round(float(o[2].max()), 2),
        )  # fmt: skip
        add("ours get_frames k=8 full", lambda p=path: bench_k8(p, "auto"), frames=lambda o: o[0], path=lambda o: o[1])
        if have_decord:
            add("decord get_frames k=8 full", lambda p=path: bench_k8(p, "decord"), frames=lambda o: o[0])
    return {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": _cpus()},
        "video": {"size": "1280x720", "codec": "h264 (x264 ultrafast, crf 36)", "source_fps": args.source_fps,
                  "gop_frames": args.gop, "candidate_fps": 1.0, "short_side": SHORT_SIDE, "batch_size": BATCH},
        "rows": rows,
    }  # fmt: skip


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[10, 30, 60])
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--workdir", type=Path, default=Path("bench_out/work"), help="generated videos (kept)")
    p.add_argument("--source-fps", type=float, default=25.0)
    p.add_argument("--gop", type=int, default=250, help="keyframe interval in frames")
    p.add_argument("--segment-minutes", type=float, default=10.0, help="longer videos are copies of this")
    args = p.parse_args(argv)
    result = run(args)
    print()
    cols = ["minutes", "method", "frames", "wall_s", "cpu_s", "path", "err_mean_s", "err_max_s"]
    print_table(result["rows"], cols)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
