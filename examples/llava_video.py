"""Answer a question about a video with LLaVA-Video (Hugging Face form), on the frames TSPO picks.

    python examples/llava_video.py --video match.mp4 --question "Who scores the second goal?" --k 16

Prints where the chosen frames lie in time, then the answer. ``--time-instruction`` writes the chosen
frames' times into the prompt (see docs/adapters/llava_video.md).
"""

from __future__ import annotations

import argparse

import torch


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", required=True, help="video file")
    p.add_argument("--question", required=True)
    p.add_argument("--k", type=int, default=16, help="frames to select (all selections of a batch share k)")
    p.add_argument("--mllm", default="llava-hf/LLaVA-Video-7B-Qwen2-hf", help="Hub id or directory")
    p.add_argument("--sampler", default="hzf666/TSPO-0.4B", help="TSPO checkpoint: Hub id or directory")
    p.add_argument("--time-instruction", action="store_true", help="list the chosen frames' times in the prompt")
    p.add_argument("--method", default="topk", help="selection method (topk, bin-max, uniform, ...)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    from transformers import AutoProcessor, LlavaOnevisionForConditionalGeneration

    from tspo_sampler import TemporalSampler
    from tspo_sampler.adapters import llava_video

    args = parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32

    sampler = TemporalSampler.from_pretrained(args.sampler, device=device)
    selection = sampler.select_frames(args.video, args.question, k=args.k, method=args.method)
    print(f"{selection.k} frames of {selection.duration or 0:.1f} s chosen at:")
    print("  " + ", ".join(f"{t:.2f}s" for t in selection.timestamps))

    model = LlavaOnevisionForConditionalGeneration.from_pretrained(args.mllm, dtype=dtype, device_map=device)
    processor = AutoProcessor.from_pretrained(args.mllm)
    answerer = llava_video.LlavaVideoAnswerer(model, processor, time_instruction=args.time_instruction)
    answer = answerer.answer(selection, args.question, max_new_tokens=args.max_new_tokens)[0]
    print("Answer:", answer)


if __name__ == "__main__":
    main()
