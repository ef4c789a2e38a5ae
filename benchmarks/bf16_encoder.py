"""The CPU bfloat16 encoder path against float32 (issue 10, item 3): speed, feature cosine, and selections.

``from_pretrained(..., dtype=torch.bfloat16)`` on the CPU runs the image tower's matrix products in
bfloat16 under autocast (weights as stored) with float32 norms, embeddings and residuals. This script
measures, in one process and interleaving the two so that machine load hits both alike:

1. images per CPU-second of ``encode_images`` (one torch thread, so a busy machine does not skew it) for
   random ViT-B/32- and ViT-L/14-shaped TSPO checkpoints (released format, bfloat16 weights, loaded with
   ``from_pretrained`` as a user would), float32 (the CPU default: compact weights) vs bfloat16, and the
   cosine between their features;
2. whether ``topk``, ``bin-max`` and ``aks`` pick the same candidates on the reference fixture cases;
3. the same on benchmark videos with the ViT-B/32-shaped checkpoint, for several questions and k.

    nice -n 5 python benchmarks/bf16_encoder.py                      # everything (about 10 minutes on 2 cores)
    nice -n 5 python benchmarks/bf16_encoder.py --shapes b32 --skip-videos
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import FIXTURE_CHECKPOINT, cpu_line, print_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import media  # noqa: E402

SHAPES = {
    "b32": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
            "patch_size": 32, "image_size": 224, "projection_dim": 512},
    "l14": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
            "patch_size": 14, "image_size": 224, "projection_dim": 768},
}  # fmt: skip
QUESTIONS = (
    "when does the bar reach the right edge?",
    "what colour is the background at the start?",
    "how many circles are on screen?",
    "what happens after the colours change?",
    "where is the counter in the frame?",
    "what is the last thing shown?",
)
METHODS = ("topk", "bin-max", "aks")


def make_checkpoint(directory: Path, shape: str, seed: int = 0) -> Path:
    """A random CLIP of ``shape`` plus agent, saved by the library in the released format (bfloat16)."""
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    from tspo_sampler.features._encoders import HFCLIPEncoder, ImagePreprocessing
    from tspo_sampler.hub._hub import save_checkpoint
    from tspo_sampler.scoring._agent import TemporalAgent

    if (directory / "model.safetensors").is_file():
        return directory
    torch.manual_seed(seed)
    vision = dict(SHAPES[shape])
    dim = vision.pop("projection_dim")
    text = {"vocab_size": 522, "bos_token_id": 520, "eos_token_id": 521, "pad_token_id": 521, "hidden_size": 256,
            "intermediate_size": 1024, "num_attention_heads": 4, "num_hidden_layers": 2}  # fmt: skip
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=dim))
    encoder = HFCLIPEncoder(model, AutoTokenizer.from_pretrained(FIXTURE_CHECKPOINT), ImagePreprocessing())
    save_checkpoint(directory, encoder, TemporalAgent(dim), dtype=torch.bfloat16)
    return directory


def load(checkpoint: Path, dtype: torch.dtype | None):
    from tspo_sampler import TemporalSampler

    return TemporalSampler.from_pretrained(checkpoint, device="cpu", dtype=dtype, feature_cache=False)


def cosines(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    c = torch.nn.functional.cosine_similarity(a, b)
    return c.min().item(), c.mean().item()


def speed(checkpoint: Path, shape: str, frames: torch.Tensor, repeats: int) -> dict:
    """Images per second of ``encode_images``, by the thread's CPU time (what the work costs, whatever else
    the machine runs; exact with one torch thread) and by the wall clock."""
    f32, b16 = load(checkpoint, None), load(checkpoint, torch.bfloat16)
    cpu: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    wall: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    outs = {}
    for rep in range(repeats + 1):  # the first round warms up (oneDNN picks its kernels) and is not timed
        for name, sampler in (("float32", f32), ("bfloat16", b16)):
            c0, w0 = time.thread_time(), time.perf_counter()
            outs[name] = sampler.encoder.encode_images(frames)
            if rep:
                cpu[name].append(time.thread_time() - c0)
                wall[name].append(time.perf_counter() - w0)
    n = len(frames)
    fp, bf = (n / statistics.median(cpu[k]) for k in ("float32", "bfloat16"))
    wfp, wbf = (n / statistics.median(wall[k]) for k in ("float32", "bfloat16"))
    cmin, cmean = cosines(outs["bfloat16"], outs["float32"])
    return {"encoder": shape, "batch": n, "rounds": repeats, "float32 img/CPU-s": f"{fp:.2f}",
            "bfloat16 img/CPU-s": f"{bf:.2f}", "speed-up": f"{bf / fp:.2f}x", "wall speed-up": f"{wbf / wfp:.2f}x",
            "min cosine": f"{cmin:.6f}", "mean cosine": f"{cmean:.7f}"}  # fmt: skip


def fixture_agreement() -> list[dict]:
    import json

    ref = FIXTURE_CHECKPOINT.parent
    f32, b16 = load(FIXTURE_CHECKPOINT, None), load(FIXTURE_CHECKPOINT, torch.bfloat16)
    rows = []
    for case in json.loads((ref / "expected.json").read_text()):
        with np.load(ref / f"case{case['case']}.npz") as z:
            frames = z["frames"]
        a_feats = f32.encoder.encode_images(torch.from_numpy(frames))
        b_feats = b16.encoder.encode_images(torch.from_numpy(frames))
        cmin = cosines(a_feats, b_feats)[0]
        row = {"case": case["case"], "T": len(frames), "k": case["k"], "min cosine": f"{cmin:.6f}"}
        for method in METHODS:
            kw = {"window_size": case["window"], "method": method}
            a = f32.select_frames(frames, case["question"], case["k"], **kw).indices
            b = b16.select_frames(frames, case["question"], case["k"], **kw).indices
            row[method] = "same" if a == b else f"{len(set(a) & set(b))}/{len(a)}"
        rows.append(row)
    return rows


def video_agreement(checkpoint: Path, videos: dict[str, Path], ks: tuple[int, ...]) -> list[dict]:
    f32, b16 = load(checkpoint, None), load(checkpoint, torch.bfloat16)
    rows = []
    for name, path in videos.items():
        t0 = time.perf_counter()
        fa = f32.encode_video(path, progress=False)
        t1 = time.perf_counter()
        fb = b16.encode_video(path, progress=False)
        t2 = time.perf_counter()
        for k in ks:
            same = {m: 0 for m in METHODS}
            overlap = {m: 0 for m in METHODS}
            drift, gaps = 0.0, []
            for q in QUESTIONS:
                for m in METHODS:
                    sa = f32.select_from_features(fa, q, k, method=m)
                    sb = b16.select_from_features(fb, q, k, method=m)
                    same[m] += sa.indices == sb.indices
                    overlap[m] += len(set(sa.indices) & set(sb.indices))
                # how far bfloat16 moves a score, next to the float32 gap between the k-th and (k+1)-th best
                drift = max(drift, float(np.abs(np.asarray(sa.scores) - np.asarray(sb.scores)).max()))
                ranked = np.sort(np.asarray(sa.scores))[::-1]
                gaps.append(float(ranked[k - 1] - ranked[k]) if len(ranked) > k else float("nan"))
            row = {"video": name, "candidates": len(fa), "k": k, "questions": len(QUESTIONS),
                   "float32 s": f"{t1 - t0:.1f}", "bfloat16 s": f"{t2 - t1:.1f}",
                   "min cosine": f"{cosines(fb.features, fa.features)[0]:.6f}",
                   "max |d score|": f"{drift:.3f}", "median k-th gap": f"{np.nanmedian(gaps):.3f}"}  # fmt: skip
            for m in METHODS:
                row[f"{m} same"] = f"{same[m]}/{len(QUESTIONS)}"
                row[f"{m} overlap"] = f"{overlap[m] / (k * len(QUESTIONS)):.3f}"
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="b32,l14", help="encoders to time: b32, l14 (comma-separated)")
    parser.add_argument("--batch-b32", type=int, default=32, help="images per timed batch, ViT-B/32")
    parser.add_argument("--batch-l14", type=int, default=4, help="images per timed batch, ViT-L/14")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per precision (median)")
    parser.add_argument("--video-minutes", type=float, default=3.0, help="length of the testsrc2 video")
    parser.add_argument("--skip-videos", action="store_true", help="only speed and the fixture")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is exact per image)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep checkpoints and videos here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from tspo_sampler.features._weights import cpu_has_bf16

    print(cpu_line())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16 (tspo_sampler): {cpu_has_bf16()}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clip = media.make_video(work / "stamped.mp4", duration=60.0, fps=10.0, size=(320, 240))
        frames_source = media.make_long_video(work / "testsrc2.mp4", args.video_minutes, size=(640, 360), fps=2.0)
        from tspo_sampler import TemporalSampler

        probe = TemporalSampler.from_pretrained(FIXTURE_CHECKPOINT, device="cpu", feature_cache=False)
        candidates = probe.encode_video(frames_source, progress=False).candidate_indices  # 1 per second
        pool = probe.get_frames(frames_source, [int(i) for i in candidates[:64]])  # real-looking frames

        rows = []
        for shape in [s.strip() for s in args.shapes.split(",") if s.strip()]:
            checkpoint = make_checkpoint(work / f"ckpt-{shape}", shape)
            batch = args.batch_b32 if shape == "b32" else args.batch_l14
            frames = torch.from_numpy(pool[np.arange(batch) % len(pool)])
            rows.append(speed(checkpoint, shape, frames, args.repeats))
            print_table(rows[-1:], list(rows[-1]))
            print(flush=True)
        print("\n## encode_images, float32 vs bfloat16 (same process, interleaved)")
        print_table(rows, list(rows[0]))

        print("\n## reference fixture: the same picks? (tiny CLIP, reference checkpoint)")
        fixture = fixture_agreement()
        print_table(fixture, list(fixture[0]))

        if not args.skip_videos:
            checkpoint = make_checkpoint(work / "ckpt-b32", "b32")
            videos = {"stamped 60 s": clip, f"testsrc2 {args.video_minutes:g} min": frames_source}
            agree = video_agreement(checkpoint, videos, ks=(8, 16))
            print("\n## benchmark videos, ViT-B/32-shaped checkpoint: the same picks?")
            print_table(agree, list(agree[0]))
        print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
