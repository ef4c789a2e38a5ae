"""``tspo index DATASET --out OUT``: frames for every row of a dataset (data-parallel under accelerate, resumable)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ._common import (
    DATASET_FORMATS,
    DEFAULT_TEXT_BATCH_SIZE,
    add_model_arguments,
    add_selection_arguments,
    check_device,
    check_selection_arguments,
    load_sampler,
)
from ._index_ray import add_engine_arguments, check_engine_arguments, output_to_check, report, run_ray

NAME = "index"

BARRIER_TIMEOUT_HOURS = 24.0


def _distributed_state(device: str | None = None) -> Any:
    """``accelerate.PartialState`` (single process when not launched), or ``None`` without accelerate.

    The process group gets a long timeout: processes wait at the final barrier until the slowest share is
    done, which can take hours on a large dataset.
    """
    try:
        from accelerate import PartialState
    except ImportError:  # pragma: no cover - accelerate is a dependency
        return None
    from datetime import timedelta

    # A first import of torch._dynamo after the group exists keeps the group alive past
    # destroy_process_group(), and its gloo threads then abort the process at exit
    # (see tspo_sampler.training._distributed): import it before the group.
    import torch._dynamo  # noqa: F401

    return PartialState(cpu=_cpu_only(device), timeout=timedelta(hours=BARRIER_TIMEOUT_HOURS))


def _cpu_only(device: str | None) -> bool:
    """Whether processes should join as CPU workers (gloo): asked for (``accelerate launch --cpu``,
    ``--device cpu``) or no accelerator exists. Without this, ``accelerate launch --multi_gpu`` or
    ``torchrun`` on a machine without GPUs would start processes that each think they are alone."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    if device is not None:
        return str(device).startswith("cpu")
    from .._device import has_accelerator

    return not has_accelerator()


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="choose frames for every row of a dataset (data-parallel under accelerate, resumable)",
        description=(
            "Choose k frames for every (video, question) row of DATASET and write one JSON line per row to "
            "--out, in input order. Runs data-parallel under `accelerate launch -m tspo_sampler.cli index ...`. "
            "Rerunning the same command resumes: rows already in OUT (or its .parts/ directory) are skipped. "
            "Rows whose video cannot be read are written as error records and the run goes on."
        ),
    )
    p.add_argument("dataset", help="JSONL, JSON, CSV or TSV file of rows {id?, video, question}")
    p.add_argument("--out", required=True, help="output JSONL file, one line per row")
    add_selection_arguments(p, k_help="frames per row (default 16; the paper evaluates 64)", per_video=" per video",
                            window_size_default=None, window_size_help="agent attention window (default: the "
                            "checkpoint's, 12)")
    p.add_argument("--video-field", default="video", help="column with the video path (default: video)")
    p.add_argument("--question-field", default="question", help="column with the question (default: question)")
    p.add_argument("--id-field", default="id", help="column with the row id (default: id)")
    p.add_argument("--format", dest="dataset_format", choices=DATASET_FORMATS, default=None,
                   help="dataset format (default: from the file suffix)")
    p.add_argument("--video-template", default=None, metavar="TEMPLATE",
                   help="build the video path from row fields instead of --video-field, e.g. '{videoID}.mp4'")
    p.add_argument("--video-root", action="append", default=None, metavar="DIR",
                   help="directory relative video paths are found in (repeatable; default: the current "
                        "directory, then the dataset's directory)")
    p.add_argument("--text-batch-size", type=int, default=DEFAULT_TEXT_BATCH_SIZE,
                   help=f"questions per text-encoder batch (default {DEFAULT_TEXT_BATCH_SIZE})")
    p.add_argument("--scores", action="store_true", help="also write every candidate's score, index and timestamp")
    p.add_argument("--retry-errors", action="store_true", help="redo rows an earlier run recorded as errors")
    p.add_argument("--overwrite", action="store_true", help="start over: delete OUT, its parts and its settings first")
    p.add_argument("--resume-anyway", action="store_true",
                   help="resume although OUT was written with other settings (each new row records its own)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first unreadable video")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_arguments(p)
    add_model_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    """``tspo index``: returns 0 when every row has a record (errors included), 1 when rows are missing."""
    from ..indexing import IndexSettings, RunOptions, index_dataset, read_dataset
    from ..indexing._dataset import check_output_is_not_dataset
    from ..indexing._records import check_resume
    from ..io import check_writable

    check_output_is_not_dataset(args.out, args.dataset)  # before --overwrite can delete it
    check_output_is_not_dataset(output_to_check(args), args.dataset)
    check_engine_arguments(args)
    check_writable(output_to_check(args))  # before anything loads: a run that cannot save its output fails at once
    check_device(args.device)
    selection = check_selection_arguments(args)
    model = args.model if args.revision is None else f"{args.model}@{args.revision}"
    settings = IndexSettings.from_selection(selection, model=model)
    rows = read_dataset(args.dataset, video_field=args.video_field, question_field=args.question_field,
                        id_field=args.id_field or None, format=args.dataset_format,
                        video_template=args.video_template)
    roots = args.video_root or [os.getcwd(), str(Path(args.dataset).resolve().parent)]
    if args.engine == "ray":  # checks the settings against OUT itself, before Ray starts
        return run_ray(args, rows, model, roots)
    if not args.overwrite:
        check_resume(args.out, rows, settings, resume_anyway=args.resume_anyway)
    state = _distributed_state(args.device)
    rank = state.process_index if state is not None else 0
    world = state.num_processes if state is not None else 1
    barrier = state.wait_for_everyone if state is not None and world > 1 else None
    if args.device is None and state is not None and world > 1:
        args.device = str(state.device)
    try:
        sampler = load_sampler(args)
        stats = index_dataset(
            sampler, rows, args.out, selection, model=model, video_roots=roots, text_batch_size=args.text_batch_size,
            include_scores=args.scores, retry_errors=args.retry_errors, overwrite=args.overwrite,
            resume_anyway=args.resume_anyway, fail_fast=args.fail_fast,
            run=RunOptions(rank=rank, world_size=world, barrier=barrier, progress=not args.no_progress),
        )
    finally:
        # Leave the process group before exit: a gloo group torn down by the interpreter's exit can abort
        # a process whose work is finished ("terminate called without an active exception").
        if state is not None and world > 1:
            state.destroy_process_group()
    return report(stats, f"{rank}/{world}", args.out, len(rows))
