"""``tspo select VIDEO QUESTION``: the k frames of one video most relevant to a question, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ._common import (
    add_model_arguments,
    add_selection_arguments,
    check_device,
    check_selection_arguments,
    load_sampler,
)

NAME = "select"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="pick the frames of a video most relevant to a question",
        description="Pick the k frames of VIDEO most relevant to QUESTION and print where they lie in time.",
        usage="%(prog)s (VIDEO | --example) QUESTION [options]",
    )
    p.add_argument("video", nargs="?", help="video file (left out with --example)")
    p.add_argument("question", nargs="?", help="the question the frames should answer")
    p.add_argument("--example", action="store_true",
                   help="use the bundled 45 s example video (tspo_sampler.example_video()) in place of VIDEO")
    add_selection_arguments(p, k_help="number of frames (default 16)", window_size_default=12,
                            window_size_help="agent attention window (default 12)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--save-grid", metavar="PNG", default=None,
                   help="write a contact sheet of the chosen frames with the score curve")
    add_model_arguments(p)
    return p


def format_scores(scores: Sequence[float]) -> list[str]:
    """The scores with as many significant digits (4 at least) as it takes for different ones to print
    differently (CLIP similarities often agree to three decimals); ``n/a`` for a score never computed."""
    finite = sorted({s for s in scores if math.isfinite(s)})
    digits = next((d for d in range(4, 12) if len({f"{s:.{d}g}" for s in finite}) == len(finite)), 17)
    return [f"{s:.{digits}g}" if math.isfinite(s) else "n/a" for s in scores]


def take_example(args: argparse.Namespace) -> None:
    """With ``--example`` the one positional is the question and the video is the bundled example."""
    if args.example:
        if args.question is not None:
            raise ValueError("--example takes the place of VIDEO: give only the QUESTION")
        if args.video is None:
            raise ValueError('missing QUESTION: --example needs the question the frames should answer, '
                             'e.g. tspo select --example "what is drawn on the board?"')
        from .._example import example_video

        args.question, args.video = args.video, str(example_video())
    elif args.video is None:
        raise ValueError("missing VIDEO and QUESTION: give VIDEO QUESTION, or --example QUESTION to use the "
                         "bundled example video")
    elif args.question is None:
        raise ValueError(f"missing QUESTION after VIDEO {args.video!r}: give VIDEO QUESTION, or --example QUESTION "
                         "to use the bundled example video")


def check_arguments(args: argparse.Namespace) -> Any:
    """Everything that can be refused without the model: the device, the options, the question, the files."""
    from ..video._inputs import check_question

    take_example(args)
    from ..io import check_writable
    from ..video._sources import check_path

    check_device(args.device)
    settings = check_selection_arguments(args)
    check_question(args.question, "QUESTION")
    check_path(args.video)
    if args.save_grid:
        from ..visualize import check_image_path

        check_image_path(args.save_grid, "--save-grid")
        check_writable(args.save_grid)
    return settings


def run(args: argparse.Namespace) -> int:
    from ..visualize import format_time

    settings = check_arguments(args)
    sampler = load_sampler(args)
    selection = sampler.select_frames(
        args.video, args.question, return_frames=args.save_grid is not None, progress=None, **asdict(settings)
    )
    if args.save_grid:
        from ..visualize import contact_sheet

        contact_sheet(selection, args.save_grid)
    chosen = [float(selection.scores[p]) for p in selection.positions]
    if args.json:
        out = selection.to_dict(include_scores=False)
        out["scores"] = [s if math.isfinite(s) else None for s in chosen]
        if args.save_grid:
            out["grid"] = args.save_grid
        print(json.dumps(out, indent=2))
        return 0
    duration = f"{selection.duration:.1f} s" if selection.duration is not None else "unknown"
    print(f"{args.video}: {len(selection)} of {len(selection.candidate_indices)} candidates "
          f"(method {selection.method}, duration {duration})")
    shown = format_scores(chosen)
    width = max([9, *map(len, shown)])
    print(f"{'rank':>4}  {'frame':>7}  {'time':>10}  {'score':>{width}}")
    order = sorted(range(len(selection)), key=lambda i: -chosen[i] if math.isfinite(chosen[i]) else math.inf)
    rank = {i: r + 1 for r, i in enumerate(order)}
    for i, (idx, ts) in enumerate(zip(selection.indices, selection.timestamps, strict=True)):
        print(f"{rank[i]:>4}  {idx:>7}  {format_time(ts):>10}  {shown[i]:>{width}}")
    if args.save_grid:
        print(f"contact sheet written to {args.save_grid}")
    return 0
