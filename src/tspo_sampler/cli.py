"""The ``tspo`` command line: ``tspo select`` here; ``index``, ``export`` and ``train-grpo`` register themselves."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

DEFAULT_MODEL = "hzf666/TSPO-0.4B"
# Modules that add subcommands through ``register_cli(subparsers)``.
COMMAND_MODULES = ("tspo_sampler.indexing", "tspo_sampler.training.cli")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that loads a sampler."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"Hub id or checkpoint directory (default {DEFAULT_MODEL})")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    parser.add_argument("--cache-dir", default=None, help="feature cache directory (default $TSPO_SAMPLER_CACHE or ~/.cache/tspo_sampler)")
    parser.add_argument("--local-files-only", action="store_true", help="never download; use the Hugging Face cache only")


def load_sampler(args: argparse.Namespace):  # noqa: ANN201 - imported lazily to keep `tspo --help` fast
    from ._sampler import TemporalSampler

    cache: object = False if args.no_cache else (args.cache_dir or True)
    return TemporalSampler.from_pretrained(
        args.model,
        device=args.device,
        revision=args.revision,
        local_files_only=args.local_files_only,
        feature_cache=cache,
    )


def _add_select(subparsers: argparse._SubParsersAction) -> None:
    from ._selection import SELECTION_METHODS

    p = subparsers.add_parser(
        "select",
        help="pick the frames of a video most relevant to a question",
        description="Pick the k frames of VIDEO most relevant to QUESTION and print where they lie in time.",
    )
    p.add_argument("video", help="video file")
    p.add_argument("question", help="the question the frames should answer")
    p.add_argument("-k", type=int, default=16, help="number of frames (default 16)")
    p.add_argument("--method", default="topk", choices=list(SELECTION_METHODS), help="selection method (default topk)")
    p.add_argument("--fps", type=float, default=1.0, help="candidate frames per second (default 1)")
    p.add_argument("--max-candidates", type=int, default=None, help="cap on candidates, spread evenly")
    p.add_argument("--candidates", choices=["fps", "keyframes"], default="fps",
                   help="candidate frames: at --fps per second (default), or the nearest keyframes (fast on very long videos)")
    p.add_argument("--window-size", type=int, default=12, help="agent attention window (default 12)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--save-grid", metavar="PNG", default=None, help="write a contact sheet of the chosen frames with the score curve")
    add_model_arguments(p)
    p.set_defaults(func=run_select)


def run_select(args: argparse.Namespace) -> int:
    from .visualize import format_time

    sampler = load_sampler(args)
    selection = sampler.select_frames(
        args.video,
        args.question,
        args.k,
        method=args.method,
        fps=args.fps,
        max_candidates=args.max_candidates,
        window_size=args.window_size,
        candidate_mode=args.candidates,
        return_frames=args.save_grid is not None,
        progress=None,
    )
    if args.save_grid:
        from .visualize import contact_sheet

        contact_sheet(selection, args.save_grid)
    if args.json:
        out = selection.to_dict(include_scores=False)
        out["scores"] = [float(selection.scores[p]) for p in selection.positions]
        if args.save_grid:
            out["grid"] = args.save_grid
        print(json.dumps(out, indent=2))
        return 0
    duration = f"{selection.duration:.1f} s" if selection.duration is not None else "unknown"
    print(f"{args.video}: {len(selection)} of {len(selection.candidate_indices)} candidates "
          f"(method {selection.method}, duration {duration})")
    print(f"{'rank':>4}  {'frame':>7}  {'time':>10}  {'score':>9}")
    order = sorted(range(len(selection)), key=lambda i: -float(selection.scores[selection.positions[i]]))
    rank = {i: r + 1 for r, i in enumerate(order)}
    for i, (idx, ts) in enumerate(zip(selection.indices, selection.timestamps)):
        score = float(selection.scores[selection.positions[i]])
        print(f"{rank[i]:>4}  {idx:>7}  {format_time(ts):>10}  {score:>9.3f}")
    if args.save_grid:
        print(f"contact sheet written to {args.save_grid}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="tspo", description="Question-aware keyframe selection for video language models.")
    parser.add_argument("--version", action="version", version=f"tspo-sampler {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_select(subparsers)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register_cli(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tspo`` console script."""
    from ._errors import TSPOError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (TSPOError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"tspo {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
