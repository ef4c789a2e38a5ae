"""What several commands share: the model options, the selection options, loading the sampler."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

DEFAULT_MODEL = "hzf666/TSPO-0.4B"

# Library constants the parsers need, spelled out: building the parsers (``tspo --help``) must not import the
# library modules that define them, which import torch. tests/test_cli_fast.py checks each against its source.
SELECTION_METHOD_NAMES = ("topk", "bin-max", "aks", "uniform", "clip", "bolt")  # tspo_sampler.SELECTION_METHODS
DATASET_FORMATS = ("jsonl", "json", "csv", "tsv")  # tspo_sampler.indexing.DATASET_FORMATS
DEFAULT_TEXT_BATCH_SIZE = 64  # tspo_sampler.indexing.DEFAULT_TEXT_BATCH_SIZE
EXPORT_FORMATS = ("frame-index-json", "id-map")  # tspo_sampler.export.EXPORT_FORMATS
CACHE_KEYS = ("sampled", "full-hash")  # the feature_cache modes of TemporalSampler
DTYPES = ("float32", "bfloat16", "float16", "auto")  # encoder dtypes TemporalSampler.from_pretrained takes by name


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of every command that loads a sampler."""
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"Hub id or checkpoint directory (default {DEFAULT_MODEL})")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--dtype", choices=DTYPES, default=None,
                        help="encoder compute dtype (default: float32 on the CPU, float16 on a GPU). On the CPU, "
                             "bfloat16 is faster (about 2-3x) only on CPUs with AMX or AVX512-BF16 and about 7x "
                             "slower without them (docs/benchmarks.md); auto picks bfloat16 only where it is "
                             "faster. bfloat16 scores differ slightly from float32")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    parser.add_argument("--cache-key", choices=CACHE_KEYS, default="sampled",
                        help="how a video file is recognised in the feature cache: sampled (default: size, mtime "
                             "and sampled blocks of the content; fast) or full-hash (a hash of every byte: an "
                             "edit that keeps the size and restores the mtime is still caught)")
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
    parser.add_argument("-k", type=int, default=16, help=k_help)
    parser.add_argument("--method", default="topk", choices=SELECTION_METHOD_NAMES,
                        help="selection method (default topk)")
    parser.add_argument("--fps", type=float, default=1.0, help="candidate frames per second (default 1)")
    parser.add_argument("--max-candidates", type=int, default=None,
                        help=f"cap on candidates{per_video}, spread evenly")
    if candidates:
        parser.add_argument("--candidates", choices=["fps", "keyframes"], default="fps",
                            help="candidate frames: at --fps per second (default), or the nearest keyframes "
                                 "(fast on very long videos)")
    parser.add_argument("--window-size", type=int, default=window_size_default, help=window_size_help)
    parser.add_argument("--search", choices=["exhaustive", "coarse-to-fine"], default="exhaustive",
                        help="score every candidate (default), or a coarse grid refined around the best regions "
                             "(topk only; exact scores there, a fraction of the frames encoded)")
    parser.add_argument("--coarse-step", type=int, default=None, metavar="N",
                        help="--search coarse-to-fine: most candidates between two coarse frames (default: four times "
                             "the keyframe interval, 16 to 48; scene cuts always get one)")
    parser.add_argument("--max-encoded", type=float, default=None, metavar="SHARE",
                        help="--search coarse-to-fine: most candidates it encodes, as a share of them (default 0.1)")
    parser.add_argument("--decoder", default="auto", metavar="{auto,pyav,decord,torchcodec}",
                        help="video decoding backend (default auto: PyAV, which leaves out damaged data; torchcodec "
                             "needs the torchcodec extra); all decode the same frames")


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def error_line(exc: BaseException) -> str:
    """The exception as one line (multi-line messages joined with "; ")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def run_command(name: str, run: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command; an expected failure becomes one line ``tspo NAME: error: ...`` and exit status 2.

    Expected: bad arguments and input (``ValueError``, ``TypeError``, :class:`~tspo_sampler.TSPOError`), files
    and the network (``OSError``), a missing optional package (``ImportError``). ``--debug`` re-raises them
    with the traceback; anything else is a bug and always shows its traceback.
    """
    from .._errors import TSPOError

    try:
        return int(run(args) or 0)
    except (TSPOError, OSError, ValueError, TypeError, ImportError) as exc:
        if getattr(args, "debug", False):
            raise
        print(f"tspo {name}: error: {error_line(exc)}", file=sys.stderr)
        return 2


def check_device(device: str | None) -> None:
    """Refuse, before anything loads, a ``--device`` torch does not know or this machine does not have."""
    if device is None:
        return
    import torch

    from .._device import accelerator_device

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"--device {device!r} is not a torch device (try cpu or cuda)") from None
    if dev.type == "cpu":
        return
    accel = accelerator_device()
    if accel is None or accel.type != dev.type:
        have = "only a CPU" if accel is None else f"cpu and {accel.type}"
        raise ValueError(f"--device {device}: this machine has no {dev.type} device ({have}); use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: there are only {torch.cuda.device_count()} CUDA devices")


SELECTION_FLAGS = {
    "k": "-k", "method": "--method", "fps": "--fps", "max_candidates": "--max-candidates",
    "window_size": "--window-size", "candidate_mode": "--candidates", "search": "--search", "decoder": "--decoder",
    "coarse_step": "--coarse-step", "max_encoded": "--max-encoded",
}
"""The flag of each :class:`~tspo_sampler.SelectionSettings` field: a refused value is named as typed."""


def check_selection_arguments(args: argparse.Namespace) -> Any:
    """The selection options as :class:`~tspo_sampler.SelectionSettings`, checked before the model loads by
    the library's one rule (its messages, with the flags named)."""
    from ..scoring._settings import SelectionSettings

    values = {field: getattr(args, flag.lstrip("-").replace("-", "_")) for field, flag in SELECTION_FLAGS.items()
              if hasattr(args, flag.lstrip("-").replace("-", "_"))}
    return SelectionSettings.named(SELECTION_FLAGS, **values)


def load_sampler(args: argparse.Namespace) -> Any:
    """The sampler the model options ask for (imported here, not at the top, to keep ``tspo --help`` fast)."""
    from .._sampler import TemporalSampler

    return TemporalSampler.from_pretrained(
        args.model,
        device=args.device,
        revision=args.revision,
        local_files_only=args.local_files_only,
        dtype=getattr(args, "dtype", None),
        feature_cache=False if args.no_cache else getattr(args, "cache_key", "sampled"),
        feature_cache_dir=None if args.no_cache else args.cache_dir,
    )
