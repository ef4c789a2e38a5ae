"""Damaged files: what the decoder serves when zeroed bytes are swept over small stamped files.

Each file (4 s at 10 fps, 160x120, H.264, every frame stamped with its time) is copied with a stretch of
zeroed bytes starting at every ``--step`` of the file, for three lengths (1%, 5%, 20% of the file), and every
frame is asked for with ``backend="pyav"``.  Per container the table counts the cases where:

* ``wrong``: a served frame shows another time than it claims (the defect: a wrong picture, said nowhere);
* ``lost, said``: frames were left out and a ``VideoDamageWarning`` said so (or nothing was lost);
* ``lost, silent``: frames were left out without a word (an MPEG-TS that lost its tail states no duration);
* ``refused``: ``VideoReadError`` (the index is gone, or over half of the frames).

Matroska (clusters every 0.5 s) skips unreadable bytes without an error, MPEG-TS loses packets, MP4 hands
the zeros to the decoder.  A second sweep asks for each GOP alone (``get_frames``, as the coarse-to-fine
search's refinement units are) with ``auto``, ``pyav`` and a forced ``decord``.  Then the cost of asking the
decoder to report its errors (``err_detect=explode``) is timed on 20 s of 720p ``testsrc2`` with film grain,
against the default (conceal and say nothing) and against one decoding thread, the only mode in which every
error is reported; and one-GOP requests of 4 frames with ``auto`` (PyAV) against decord.

    python benchmarks/damaged_files.py [--step 0.02] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from common import cpu_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import media  # noqa: E402
from tspo_sampler import VideoReadError  # noqa: E402
from tspo_sampler.video import VideoDamageWarning, VideoDecoder  # noqa: E402
from tspo_sampler.video._decord import import_decord  # noqa: E402

LENGTHS = (0.01, 0.05, 0.2)


def shows_another_time(timestamps: np.ndarray, frames: np.ndarray) -> bool:
    """Whether any frame's stamp differs from the time it is served with (an unreadable stamp counts)."""
    for t, frame in zip(timestamps, frames, strict=True):
        try:
            if abs(media.read_stamp(frame) - t) > 1e-6:
                return True
        except ValueError:
            return True
    return False


def sweep(src: Path, work: Path, step: float) -> dict[str, int]:
    counts = {"cases": 0, "wrong": 0, "lost, said": 0, "lost, silent": 0, "refused": 0}
    for start in np.arange(0.05, 0.95, step):
        for length in LENGTHS:
            counts["cases"] += 1
            holed = media.make_hole(src, work / f"hole{src.suffix}", float(start), length)
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always", VideoDamageWarning)
                try:
                    with VideoDecoder(holed, backend="pyav") as dec:
                        idx, _ = dec.candidates(fps=dec.metadata.fps)
                        batches = list(dec.iter_frames(idx, short_side=64))
                except VideoReadError:
                    counts["refused"] += 1
                    continue
            times = np.concatenate([b.timestamps for b in batches]) if batches else np.zeros(0)
            frames = np.concatenate([b.data for b in batches]) if batches else np.zeros((0, 1, 1, 3), np.uint8)
            wrong = shows_another_time(times, frames)
            lost = len(times) < 40  # the whole file's frames
            key = "wrong" if wrong else ("lost, silent" if lost and not said else "lost, said")
            counts[key] += 1
    return counts


def gop_sweep(src: Path, work: Path, step: float, backend: str) -> dict[str, int]:
    """Each GOP asked for alone (``get_frames``), as the coarse-to-fine search's units and the returned frames
    are: which backend serves a wrong picture then."""
    counts = {"cases": 0, "wrong": 0, "refused": 0}
    for start in np.arange(0.05, 0.95, step):
        for length in LENGTHS:
            counts["cases"] += 1
            holed = media.make_hole(src, work / f"gop_hole{src.suffix}", float(start), length)
            wrong = False
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    with VideoDecoder(holed, backend=backend) as dec:
                        bounds = [*map(int, dec.keyframe_indices()), dec.metadata.num_frames]
                        for first, stop in zip(bounds[:-1], bounds[1:], strict=True):
                            try:
                                batch = dec.get_frames(range(first, stop), short_side=64)
                            except VideoReadError:
                                continue  # a lost frame refuses get_frames: said, not served
                            wrong |= shows_another_time(batch.timestamps, batch.data)
                except VideoReadError:
                    counts["refused"] += 1
                    continue
            counts["wrong"] += wrong
    return counts


def one_gop_cost(path: Path, backends: list[str]) -> list[tuple[str, float]]:
    """Seconds per request of 4 frames in the middle of one GOP (a refinement unit), median of 12 GOPs."""
    rows = []
    for backend in backends:
        with VideoDecoder(path, backend=backend) as dec:
            bounds = dec.keyframe_indices()
            spent = []
            for g in range(1, min(13, len(bounds) - 1)):
                first = int(bounds[g])
                request = [first + 10, first + 20, first + 30, first + 40]
                start = time.perf_counter()
                dec.get_frames(request, short_side=224)
                spent.append(time.perf_counter() - start)
        rows.append((backend, float(np.median(spent))))
    return rows


def decode_cost(path: Path) -> list[tuple[str, float]]:
    import av

    rows = []
    for name, threads, options in (
        ("default (frame threads, errors concealed)", 0, {}),
        ("err_detect=explode, frame threads", 0, {"err_detect": "explode"}),
        ("err_detect=explode, one thread", 1, {"err_detect": "explode"}),
    ):
        best = float("inf")
        for _ in range(2):
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                stream.codec_context.thread_count = threads
                stream.codec_context.options = options
                start = time.perf_counter()
                for packet in container.demux(stream):
                    stream.decode(packet)
                best = min(best, time.perf_counter() - start)
        rows.append((name, best))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=float, default=0.02, help="hole start positions, as a fraction of the file")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here (default: temporary)")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("needs the ffmpeg program")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tspo_damaged_"))
    work.mkdir(parents=True, exist_ok=True)
    print(cpu_line())
    print(f"holes of {', '.join(f'{x:.0%}' for x in LENGTHS)} every {args.step:.0%} of each file")
    files = {
        "Matroska": media.make_small_cluster_mkv(work / "whole.mkv", duration=4.0),
        "MP4": media.make_video(work / "whole.mp4", duration=4.0),
        "MPEG-TS": media.make_mpegts(work / "whole.ts", duration=4.0),
    }
    print(f"{'container':<10} {'cases':>5} {'wrong':>5} {'lost, said':>10} {'lost, silent':>12} {'refused':>7}")
    for name, src in files.items():
        c = sweep(src, work, args.step)
        print(
            f"{name:<10} {c['cases']:>5} {c['wrong']:>5} {c['lost, said']:>10} {c['lost, silent']:>12} "
            f"{c['refused']:>7}"
        )
    backends = ["auto", "pyav"] + (["decord"] if import_decord() is not None else [])
    print("\neach GOP asked for alone (get_frames), as a search's refinement units are")
    print(f"{'container':<10} {'backend':<8} {'cases':>5} {'wrong':>5} {'refused':>7}")
    for name in ("Matroska", "MP4"):
        for backend in backends:
            c = gop_sweep(files[name], work, args.step, backend)
            print(f"{name:<10} {backend:<8} {c['cases']:>5} {c['wrong']:>5} {c['refused']:>7}")
    clip = work / "grain_720p.mp4"
    if not clip.exists():
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=30,noise=alls=20:allf=t",
                "-t",
                "20",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-g",
                "60",
                str(clip),
            ],
            check=True,
        )
    print("\ndecoding 600 frames of 720p H.264 (best of 2)")
    for name, seconds in decode_cost(clip):
        print(f"{name:<45} {seconds:6.2f} s")
    print("\n4 frames inside one 2 s GOP of the same clip, full decode to 224 px (median of 12 GOPs)")
    for backend, seconds in one_gop_cost(clip, [b for b in backends if b != "pyav"]):
        print(f"{backend:<8} {seconds * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
