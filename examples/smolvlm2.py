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

from _common import answer_with_auto_model, device_and_dtype, example_parser, select


def parse_args(argv=None) -> argparse.Namespace:
    return example_parser(
        __doc__.splitlines()[0], default_mllm="HuggingFaceTB/SmolVLM2-2.2B-Instruct", k_help="frames (at most 64)"
    ).parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    device, dtype = device_and_dtype(args)
    answer_with_auto_model(args, device, dtype, select(args, device))


if __name__ == "__main__":
    main()
