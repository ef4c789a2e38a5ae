"""``tspo index --engine ray``: the same records as :func:`~tspo_sampler.indexing.index_dataset`, computed by
:class:`~tspo_sampler.integrations.ray.TSPOSelector` actors on a Ray cluster.

The driver (this process) reads the dataset, checks the settings against what ``OUT`` already holds, and sends
only the rows still to do. Workers return each row's record; the driver appends it to
``OUT.parts/part-ray.jsonl`` (flushed and ``fsync``-ed line by line, so a killed run resumes where it stopped)
and, when every row has one, writes ``OUT`` in dataset order as a whole (temporary file and rename).
A worker that dies is restarted by Ray and its batch redone; a row can only reach the part file once per
completed batch and the merge keeps one record per row, so the output has every row exactly once.

``OUT`` ending in ``.parquet`` is written by Ray as a directory of Parquet files (``input`` and ``settings``
as JSON text); the resumable JSONL journal of such a run lives in ``OUT.parts/index.jsonl``.
Ray is imported only when a run starts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..integrations.ray import TSPOSelector, select_dataset
from ..io import JsonlAppender, check_writable
from ._dataset import IndexRow
from ._records import IndexSettings, error_record, parts_dir_for, record_run
from ._run import IndexStats, group_by_video, load_done, merge, remove_output

logger = logging.getLogger(__name__)

RAY_PART_NAME = "part-ray.jsonl"
PARQUET_JOURNAL_NAME = "index.jsonl"

__all__ = ["RAY_PART_NAME", "index_dataset_ray", "is_parquet", "journal_path"]


def is_parquet(out: str | os.PathLike[str]) -> bool:
    return Path(out).suffix.lower() == ".parquet"


def journal_path(out: str | os.PathLike[str]) -> Path:
    """Where the JSONL records of a run live: ``OUT`` itself, or ``OUT.parts/index.jsonl`` for Parquet."""
    return parts_dir_for(out) / PARQUET_JOURNAL_NAME if is_parquet(out) else Path(out)


class _RecordSelector(TSPOSelector):
    """The selector with its whole record per row (as JSON text), for the driver to write as it is."""

    def __call__(self, batch: Any) -> dict[str, Any]:
        n = len(batch["row"])
        records = self.records(self._rows(batch, n))
        return {"row": [int(x) for x in batch["row"]], "record": [json.dumps(r) for r in records]}


def _connect(address: str | None) -> bool:
    """Join the Ray cluster at ``address`` or start a local one; ``True`` when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    return True


def _remove_output(out: Path) -> None:
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()


ERROR_COLUMNS = ("error", "reason")


def _write_parquet(out: Path, records: list[dict[str, Any]]) -> None:
    """Ray writes the records to a temporary directory next to ``out``, which then replaces ``out``."""
    import pyarrow as pa
    import ray

    keys = list(dict.fromkeys(k for r in records for k in r))
    rows = [{k: (json.dumps(r.get(k)) if k in ("input", "settings") else r.get(k)) for k in keys} for r in records]
    table = pa.Table.from_pylist(rows)
    for name in ERROR_COLUMNS:  # typed string columns, null on ok rows, whether or not any row failed
        i = table.schema.get_field_index(name)
        if i < 0:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
        else:
            table = table.set_column(i, name, table.column(i).cast(pa.string()))
    blocks = [table.slice(i, 100_000) for i in range(0, max(1, len(rows)), 100_000)]
    tmp = out.with_name(f".{out.name}.writing-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    _remove_output(tmp)
    try:
        ray.data.from_arrow(blocks).write_parquet(str(tmp))
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        _remove_output(tmp)
        _remove_output(old)


def index_dataset_ray(
    model: str | os.PathLike[str] | Callable[[], Any],
    rows: Sequence[IndexRow],
    out: str | os.PathLike[str],
    *,
    k: int = 16,
    method: str = "topk",
    fps: float = 1.0,
    max_candidates: int | None = None,
    window_size: int | None = None,
    candidate_mode: str = "fps",
    model_name: str | None = None,
    video_roots: Sequence[str | os.PathLike[str]] = (),
    include_scores: bool = False,
    retry_errors: bool = False,
    overwrite: bool = False,
    resume_anyway: bool = False,
    fail_fast: bool = False,
    progress: bool = True,
    search: str = "exhaustive",
    decoder: str = "auto",
    device: str | None = None,
    feature_cache: bool = True,
    feature_cache_dir: str | os.PathLike[str] | None = None,
    ray_address: str | None = None,
    num_workers: int | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float | None = None,
    batch_size: int | None = None,
    fsync: bool = True,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> IndexStats:
    """:func:`~tspo_sampler.indexing.index_dataset` on Ray: the same ``out`` (or a Parquet directory).

    ``model`` is what :class:`~tspo_sampler.integrations.ray.TSPOSelector` takes (a checkpoint, a Hub id or a
    function that loads the sampler in a worker); ``model_name`` is recorded with the settings. Without
    ``ray_address`` (``auto`` or ``HOST:PORT``) a local Ray starts, unless this process is already connected.
    ``num_workers``, ``gpus_per_worker``, ``cpus_per_worker`` and ``batch_size`` (rows per batch) default to
    :func:`~tspo_sampler.integrations.ray.default_resources`. ``on_record`` sees each record once written.
    """
    start = time.perf_counter()
    out = Path(out)
    journal = journal_path(out)
    check_writable(journal)
    settings = IndexSettings(k=k, method=method, fps=fps, max_candidates=max_candidates, window_size=window_size,
                             candidates=candidate_mode, model=model_name, include_scores=include_scores,
                             search=search)
    stats = IndexStats(rows=len(rows))
    if overwrite:
        remove_output(journal)
        if is_parquet(out):
            _remove_output(out)
            shutil.rmtree(parts_dir_for(out), ignore_errors=True)
    plan = load_done(journal, rows, settings, resume_anyway=resume_anyway, retry_errors=retry_errors)
    pending, row_settings = plan.pending, plan.row_settings
    stats.skipped = len(rows) - len(pending)
    stats.assigned = len(pending)
    record_run(journal, settings, mixed=plan.mixed)

    from tqdm.auto import tqdm

    started_ray = False
    bar = tqdm(total=len(pending), desc="tspo index [ray]", unit="q", disable=not progress, dynamic_ncols=True)
    try:
        with JsonlAppender(parts_dir_for(journal) / RAY_PART_NAME, fsync=fsync) as appender, bar:

            def write(record: dict[str, Any]) -> None:
                if row_settings is not None:
                    record["settings"] = row_settings
                appender.write(record)
                if on_record is not None:
                    on_record(record)
                stats.written += 1
                stats.errors += record["status"] != "ok"
                bar.update(1)

            for r in pending:
                if r.problem is not None:
                    write(error_record(r, "InvalidRow", r.problem))
            good = [r for r in pending if r.problem is None]
            if good:
                started_ray = _connect(ray_address)
                stats.videos = _run_on_ray(
                    model, good, write, fail_fast=fail_fast, num_workers=num_workers,
                    gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker, batch_size=batch_size,
                    k=settings.k, method=settings.method, fps=settings.fps, search=settings.search,
                    decoder=decoder, device=device, feature_cache=feature_cache,
                    feature_cache_dir=feature_cache_dir, include_scores=include_scores,
                    max_candidates=settings.max_candidates, window_size=settings.window_size,
                    candidate_mode=settings.candidates, video_roots=[str(Path(v).resolve()) for v in video_roots])
        stats.missing = merge(journal, rows)
        stats.merged = True
        if is_parquet(out) and stats.missing == 0:
            from ..io import iter_jsonl_records

            if not started_ray:
                started_ray = _connect(ray_address)
            _write_parquet(out, list(iter_jsonl_records(journal)))
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    stats.seconds = time.perf_counter() - start
    return stats


def _batches(rows: Sequence[IndexRow], size: int) -> list[list[IndexRow]]:
    """``rows`` cut into batches of at most ``size`` rows, the rows about one video together where they fit."""
    batches: list[list[IndexRow]] = []
    current: list[IndexRow] = []
    for group in group_by_video(rows):
        if current and len(current) + len(group) > size:
            batches.append(current)
            current = []
        while len(group) > size:  # more questions about one video than a batch holds
            batches.append(group[:size])
            group = group[size:]
        current.extend(group)
    if current:
        batches.append(current)
    return batches


def _block(rows: Sequence[IndexRow]) -> Any:
    import pyarrow as pa

    schema = pa.schema([("row", pa.int64()), ("id", pa.string()), ("video", pa.string()), ("question", pa.string())])
    return pa.table({"row": [r.row for r in rows], "id": [r.id for r in rows], "video": [r.video for r in rows],
                     "question": [r.question for r in rows]}, schema=schema)


def _run_on_ray(model: Any, good: Sequence[IndexRow], write: Callable[[dict[str, Any]], None], *, fail_fast: bool,
                num_workers: int | None, gpus_per_worker: float | None, cpus_per_worker: float | None,
                batch_size: int | None, **selector: Any) -> int:
    """Send ``good`` (grouped by video) through the selector actors and ``write`` each record as it comes back.

    Returns the number of videos that gave at least one ok record.
    """
    import ray

    from ..integrations.ray import default_resources

    plan = default_resources(num_gpus=gpus_per_worker, concurrency=num_workers, batch_size=batch_size,
                             num_cpus=cpus_per_worker)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    by_row = {r.row: r for r in good}
    ds = ray.data.from_arrow([_block(b) for b in _batches(good, plan["batch_size"])])
    ds = select_dataset(ds, model, selector=_RecordSelector, concurrency=plan["concurrency"],
                        num_gpus=plan["num_gpus"], num_cpus=plan["num_cpus"], whole_blocks=True, **selector)
    videos: set[str] = set()
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for i, text in zip(batch.column("row").to_pylist(), batch.column("record").to_pylist(), strict=True):
            row = by_row[i]
            record = json.loads(text)
            # the worker saw the row's id, video and question; the driver adds its place and input
            record.update(row=row.row, id=row.id, video=row.video, question=row.question, input=row.input)
            if fail_fast and record["status"] != "ok":
                from .._errors import VideoReadError

                raise VideoReadError(row.video, f"{record['error']}: {record['reason']} (--fail-fast)")
            if record["status"] == "ok":
                videos.add(row.video)
            write(record)
    return len(videos)
