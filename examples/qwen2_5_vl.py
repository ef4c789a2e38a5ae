"""Answer a question about a video with Qwen2.5-VL, on the frames TSPO picks.

    python examples/qwen2_5_vl.py --video match.mp4 --question "Who scores the second goal?" --k 16

Prints where the chosen frames lie in time, then the answer. ``--timestamps`` picks how time reaches
the model (``uniform``: the paper's behaviour, default; ``metadata``; ``prompt``), see
docs/adapters/qwen2_5_vl.md.
"""

from __future__ import annotations

import argparse

from _common import device_and_dtype, example_parser, select


def parse_args(argv=None) -> argparse.Namespace:
    p = example_parser(
        __doc__.splitlines()[0],
        default_mllm="Qwen/Qwen2.5-VL-7B-Instruct",
        k_help="frames to select (odd k: last frame repeated)",
    )
    p.add_argument("--timestamps", choices=("uniform", "metadata", "prompt"), default="uniform")
    return p.parse_args(argv)


def main(argv=None) -> None:
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from tspo_sampler.adapters import qwen2_5_vl

    args = parse_args(argv)
    device, dtype = device_and_dtype(args)
    selection = select(args, device)

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(args.mllm, dtype=dtype, device_map=device)
    processor = AutoProcessor.from_pretrained(args.mllm)
    answerer = qwen2_5_vl.Qwen2_5_VLAnswerer(model, processor, timestamps=args.timestamps)
    answer = answerer.answer(selection, args.question, max_new_tokens=args.max_new_tokens)[0]
    print("Answer:", answer)


if __name__ == "__main__":
    main()
