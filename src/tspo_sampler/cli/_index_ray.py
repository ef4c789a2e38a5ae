"""``tspo index --engine ray``: its options, their checks, and the run (Ray is imported only by the run)."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Any

ENGINES = ("local", "ray")


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """``--engine`` and the Ray options of ``tspo index``."""
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: this process (or the processes of `accelerate launch`); ray: actors on a Ray "
                        "cluster, same output (needs the ray extra)")
    p.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                   help="Ray cluster to join (default: start a local Ray on this machine)")
    p.add_argument("--num-workers", type=int, default=None, metavar="N",
                   help="Ray workers, each holding the model (default: one per GPU, else CPUs / 4)")
    p.add_argument("--gpus-per-worker", type=float, default=None, metavar="G",
                   help="GPUs per Ray worker, e.g. 0.5 for two workers per GPU (default: 1 when the cluster has "
                        "GPUs, else 0)")
    p.add_argument("--ray-batch-size", type=int, default=None, metavar="ROWS",
                   help="rows per Ray batch; a worker that dies redoes its batch (default 32 with GPUs, else 8)")


def check_engine_arguments(args: argparse.Namespace) -> None:
    """The cheap checks of the engine options, before anything loads."""
    if getattr(args, "engine", "local") != "ray":
        given = [flag for flag, value in (("--ray-address", args.ray_address), ("--num-workers", args.num_workers),
                                          ("--gpus-per-worker", args.gpus_per_worker),
                                          ("--ray-batch-size", args.ray_batch_size)) if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply to --engine ray")
        if Path(args.out).suffix.lower() == ".parquet":
            raise ValueError(f"--out {args.out}: Parquet output is written by --engine ray; use a .jsonl file "
                             "or add --engine ray")
        return
    if args.num_workers is not None and args.num_workers < 1:
        raise ValueError(f"--num-workers must be >= 1, got {args.num_workers}")
    if args.ray_batch_size is not None and args.ray_batch_size < 1:
        raise ValueError(f"--ray-batch-size must be >= 1, got {args.ray_batch_size}")
    if args.gpus_per_worker is not None and not args.gpus_per_worker >= 0:
        raise ValueError(f"--gpus-per-worker must be >= 0, got {args.gpus_per_worker}")
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise ValueError("--engine ray runs from one process; start it without accelerate launch or torchrun")
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ImportError('--engine ray needs Ray Data: pip install "tspo-sampler[ray]"')


def output_to_check(args: argparse.Namespace) -> str:
    """The file a run appends to (checked writable first): ``--out``, or the journal of a Parquet output."""
    if getattr(args, "engine", "local") == "ray":
        from ..indexing._ray_engine import journal_path

        return str(journal_path(args.out))
    return args.out


def _model_options(args: argparse.Namespace) -> argparse.Namespace:
    """The plain-valued options (what :func:`load_sampler` reads), to send to every worker."""
    plain = (str, int, float, bool, type(None))
    return argparse.Namespace(**{k: v for k, v in vars(args).items() if isinstance(v, plain)})


def run_ray(args: argparse.Namespace, rows: list[Any], model: str, roots: list[str]) -> int:
    """Run ``tspo index`` on Ray and report as the local engine does; 0 when every row has a record."""
    from ..indexing._ray_engine import index_dataset_ray
    from ._common import load_sampler

    if args.device not in (None, "cpu") and not str(args.device).startswith("cuda"):
        raise ValueError(f"--engine ray: --device {args.device} is not a device Ray schedules (use cpu or cuda)")
    from ..hub._hub import resolve_checkpoint

    # a missing checkpoint is one line here, not an error in every worker; a Hub id is fetched once first
    resolve_checkpoint(args.model, revision=args.revision, local_files_only=args.local_files_only)
    gpus = args.gpus_per_worker
    if gpus is None and args.device == "cpu":
        gpus = 0.0
    stats = index_dataset_ray(
        functools.partial(load_sampler, _model_options(args)), rows, args.out, k=args.k, method=args.method,
        fps=args.fps, max_candidates=args.max_candidates, window_size=args.window_size, candidate_mode=args.candidates,
        model_name=model, video_roots=roots, include_scores=args.scores, retry_errors=args.retry_errors,
        overwrite=args.overwrite, resume_anyway=args.resume_anyway, fail_fast=args.fail_fast,
        progress=not args.no_progress, search=args.search, decoder=args.decoder, ray_address=args.ray_address,
        num_workers=args.num_workers, gpus_per_worker=gpus, batch_size=args.ray_batch_size,
    )
    return report(stats, "ray", args.out, len(rows))


def report(stats: Any, label: str, out: str, rows: int) -> int:
    """The summary of a ``tspo index`` process on stderr; its exit status (1 when rows still lack a record)."""
    print(
        f"tspo index [{label}]: {stats.written} rows written ({stats.errors} errors) from {stats.videos} videos in "
        f"{stats.seconds:.1f} s ({stats.questions_per_second:.2f} q/s); {stats.skipped} already done",
        file=sys.stderr,
    )
    if not stats.merged:  # another process merges
        return 0
    if stats.missing:
        print(f"tspo index: {stats.missing} rows have no record yet; rerun the same command to finish",
              file=sys.stderr)
        return 1
    print(f"tspo index: {out} complete ({rows} rows)", file=sys.stderr)
    return 0
