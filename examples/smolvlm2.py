"""Answer a question about a video with SmolVLM2 (or GLM-4.1V/4.6V, Gemma 4, Molmo2), on TSPO's frames.

    python examples/smolvlm2.py --video match.mp4 --question "What happens after the goal?" --k 8
    python examples/smolvlm2.py --mllm zai-org/GLM-4.1V-9B-Thinking --video match.mp4 --question "..."

These processors print a time next to each frame, read from ``VideoMetadata``; the metadata adapter
makes those the chosen frames' real presentation times and stops the processor from re-sampling the
frames. Prints where the frames lie, the prompt's time lines, then the answer. See
docs/adapters/metadata.md.
"""

from __future__ import annotations

import argparse
import re

from _common import device_and_dtype, example_parser, select


def parse_args(argv=None) -> argparse.Namespace:
    p = example_parser(
        __doc__.splitlines()[0],
        default_mllm="HuggingFaceTB/SmolVLM2-2.2B-Instruct",
        k_help="frames to select (SmolVLM2 takes up to 64)",
    )
    return p.parse_args(argv)


def main(argv=None) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from tspo_sampler.adapters import answerer_for, prepare_inputs

    args = parse_args(argv)
    device, dtype = device_and_dtype(args)
    selection = select(args, device)

    model = AutoModelForImageTextToText.from_pretrained(args.mllm, dtype=dtype, device_map=device)
    processor = AutoProcessor.from_pretrained(args.mllm)
    prompt = processor.tokenizer.decode(prepare_inputs(processor, selection, args.question)["input_ids"][0])
    print("Frame times in the prompt:", ", ".join(re.findall(r"Frame from [\d:]+", prompt)) or "(model's own format)")
    answerer = answerer_for(model, processor)
    print("Answer:", answerer.answer(selection, args.question, max_new_tokens=args.max_new_tokens)[0])


if __name__ == "__main__":
    main()
