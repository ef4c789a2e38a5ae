"""Answer a question about a video with InternVL (Hugging Face form), on the frames TSPO picks.

    python examples/internvl.py --video match.mp4 --question "Who scores the second goal?" --k 16

Prints where the chosen frames lie in time, then the answer. ``--time-instruction`` writes the chosen
frames' times into the prompt (see docs/adapters/internvl.md).
"""

from __future__ import annotations

import argparse

from _common import device_and_dtype, example_parser, select


def parse_args(argv=None) -> argparse.Namespace:
    p = example_parser(
        __doc__.splitlines()[0],
        default_mllm="OpenGVLab/InternVL3-8B-hf",
        k_help="frames to select (one 448 px tile each)",
    )
    p.add_argument("--time-instruction", action="store_true", help="list the chosen frames' times in the prompt")
    return p.parse_args(argv)


def main(argv=None) -> None:
    from transformers import AutoProcessor, InternVLForConditionalGeneration

    from tspo_sampler.adapters import internvl

    args = parse_args(argv)
    device, dtype = device_and_dtype(args)
    selection = select(args, device)

    model = InternVLForConditionalGeneration.from_pretrained(args.mllm, dtype=dtype, device_map=device)
    processor = AutoProcessor.from_pretrained(args.mllm)
    answerer = internvl.InternVLAnswerer(model, processor, time_instruction=args.time_instruction)
    answer = answerer.answer(selection, args.question, max_new_tokens=args.max_new_tokens)[0]
    print("Answer:", answer)


if __name__ == "__main__":
    main()
