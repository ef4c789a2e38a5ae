"""Answer a question about a video with Qwen3-VL (or Qwen3-VL-MoE, Qwen3.5), on the frames TSPO picks.

    python examples/qwen3_vl.py --video match.mp4 --question "Who scores the second goal?" --k 16

Prints where the chosen frames lie in time, the ``<t seconds>`` markers the model reads (the real
presentation times, variable-frame-rate files included), then the answer. ``--own-patches`` gives
every frame its own temporal patch (its own exact time, twice the visual tokens). See
docs/adapters/qwen3_vl.md.
"""

from __future__ import annotations

import argparse

from _common import answer_with_auto_model, device_and_dtype, example_parser, select


def parse_args(argv=None) -> argparse.Namespace:
    p = example_parser(
        __doc__.splitlines()[0],
        default_mllm="Qwen/Qwen3-VL-8B-Instruct",
        k_help="frames to select (odd k: last frame repeated)",
    )
    p.add_argument("--timestamps", choices=("metadata", "prompt"), default="metadata")
    p.add_argument("--own-patches", action="store_true", help="one temporal patch per frame (2x visual tokens)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    device, dtype = device_and_dtype(args)
    selection = select(args, device)
    answer_with_auto_model(args, device, dtype, selection, timestamps=args.timestamps, own_patches=args.own_patches)


if __name__ == "__main__":
    main()
