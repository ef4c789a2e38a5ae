"""What the feature cache's safety costs (issue 11, items 4-5): file identity, sampled vs full hash, and the
checksum of an entry on write and on every read.

    nice -n 5 python benchmarks/cache_identity.py            # a 512 MB file, an hour of ViT-L/14 features
    nice -n 5 python benchmarks/cache_identity.py --mb 2048

The file is read from the page cache (it was just written); from a cold disk the full hash runs at the
disk's read speed instead.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import print_table

from tspo_sampler.features._cache import FeatureCache, VideoFeatures, file_identity


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=512, help="size of the video-like file, MB")
    parser.add_argument("--candidates", type=int, default=3600, help="candidates per entry (an hour at 1 fps)")
    parser.add_argument("--dim", type=int, default=768, help="feature size (768: ViT-L/14)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "video.bin"
        block = rng.integers(0, 256, 1 << 24, dtype=np.uint8).tobytes()
        with video.open("wb") as f:
            for _ in range(args.mb // 16):
                f.write(block)
        size_mb = video.stat().st_size / 1e6
        rows = []
        for mode in ("sampled", "full"):
            s = timed(lambda m=mode: file_identity(video, hashing=m), args.repeats)
            rows.append({"what": f"file identity, {mode}", "size": f"{size_mb:.0f} MB", "median s": f"{s:.4f}",
                         "MB/s": f"{size_mb / s:.0f}" if mode == "full" else "-"})  # fmt: skip

        cache = FeatureCache(Path(tmp) / "cache")
        n = args.candidates
        feats = VideoFeatures(torch.randn(n, args.dim), np.arange(n), np.arange(n) * 1.0, float(n), 1.0, "v", {})
        entry_mb = n * args.dim * 4 / 1e6
        put = timed(lambda: cache.put("ab" * 20, feats), args.repeats)
        get = timed(lambda: cache.get("ab" * 20), args.repeats)
        from safetensors.torch import load_file

        raw = timed(lambda: load_file(str(cache.path_for("ab" * 20))), args.repeats)
        rows.append({"what": "cache put (checksum + write)", "size": f"{entry_mb:.1f} MB", "median s": f"{put:.4f}",
                     "MB/s": "-"})  # fmt: skip
        rows.append({"what": "cache get (read + verify)", "size": f"{entry_mb:.1f} MB", "median s": f"{get:.4f}",
                     "MB/s": "-"})  # fmt: skip
        rows.append({"what": "plain safetensors read", "size": f"{entry_mb:.1f} MB", "median s": f"{raw:.4f}",
                     "MB/s": "-"})  # fmt: skip
        print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
