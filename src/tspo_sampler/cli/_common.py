"""What several commands share: the model options, the selection options, loading the sampler."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_MODEL = "hzf666/TSPO-0.4B"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of every command that loads a sampler."""
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"Hub id or checkpoint directory (default {DEFAULT_MODEL})")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    parser.add_argument("--cache-dir", default=None,
                        help="feature cache directory (default $TSPO_SAMPLER_CACHE or ~/.cache/tspo_sampler)")
    parser.add_argument("--local-files-only", action="store_true",
                        help="never download; use the Hugging Face cache only")


def add_selection_arguments(
    parser: argparse.ArgumentParser,
    *,
    k_help: str,
    window_size_default: int | None,
    window_size_help: str,
    per_video: str = "",
    candidates: bool = True,
) -> None:
    """How frames are chosen: the options ``tspo select`` and ``tspo index`` share (one place to add one)."""
    from .._selection import SELECTION_METHODS

    parser.add_argument("-k", type=int, default=16, help=k_help)
    parser.add_argument("--method", default="topk", choices=list(SELECTION_METHODS),
                        help="selection method (default topk)")
    parser.add_argument("--fps", type=float, default=1.0, help="candidate frames per second (default 1)")
    parser.add_argument("--max-candidates", type=int, default=None,
                        help=f"cap on candidates{per_video}, spread evenly")
    if candidates:
        parser.add_argument("--candidates", choices=["fps", "keyframes"], default="fps",
                            help="candidate frames: at --fps per second (default), or the nearest keyframes "
                                 "(fast on very long videos)")
    parser.add_argument("--window-size", type=int, default=window_size_default, help=window_size_help)


def load_sampler(args: argparse.Namespace) -> Any:
    """The sampler the model options ask for (imported here, not at the top, to keep ``tspo --help`` fast)."""
    from .._sampler import TemporalSampler

    cache: object = False if args.no_cache else (args.cache_dir or True)
    return TemporalSampler.from_pretrained(
        args.model,
        device=args.device,
        revision=args.revision,
        local_files_only=args.local_files_only,
        feature_cache=cache,
    )
