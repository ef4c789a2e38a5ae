"""Answer a question about a video with Qwen2.5-VL, on the frames TSPO picks.

    python examples/qwen2_5_vl.py --video match.mp4 --question "Who scores the second goal?" --k 16

Prints where the chosen frames lie in time, then the answer. ``--timestamps`` picks how time reaches
the model (``uniform``: the paper's behaviour, default; ``metadata``; ``prompt``), see
docs/adapters/qwen2_5_vl.md.
"""

from __future__ import annotations

import argparse

import torch


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", required=True, help="video file")
    p.add_argument("--question", required=True)
    p.add_argument("--k", type=int, default=16, help="frames to select (odd k: last frame repeated)")
    p.add_argument("--mllm", default="Qwen/Qwen2.5-VL-7B-Instruct", help="Hub id or directory")
    p.add_argument("--sampler", default="hzf666/TSPO-0.4B", help="TSPO checkpoint: Hub id or directory")
    p.add_argument("--timestamps", choices=("uniform", "metadata", "prompt"), default="uniform")
    p.add_argument("--method", default="topk", help="selection method (topk, bin-max, uniform, ...)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from tspo_sampler import TemporalSampler
    from tspo_sampler.adapters import qwen2_5_vl

    args = parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32

    sampler = TemporalSampler.from_pretrained(args.sampler, device=device)
    selection = sampler.select_frames(args.video, args.question, k=args.k, method=args.method)
    print(f"{selection.k} frames of {selection.duration or 0:.1f} s chosen at:")
    print("  " + ", ".join(f"{t:.2f}s" for t in selection.timestamps))

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(args.mllm, dtype=dtype, device_map=device)
    processor = AutoProcessor.from_pretrained(args.mllm)
    answerer = qwen2_5_vl.Qwen2_5_VLAnswerer(model, processor, timestamps=args.timestamps)
    answer = answerer.answer(selection, args.question, max_new_tokens=args.max_new_tokens)[0]
    print("Answer:", answer)


if __name__ == "__main__":
    main()
