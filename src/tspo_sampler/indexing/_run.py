"""The indexing run: shard the rows over processes, encode each video once, select per question, write, merge."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import JsonlAppender, check_writable
from ..video._sources import resolve_video
from ._dataset import IndexRow
from ._records import (
    IndexSettings,
    check_resume,
    error_record,
    merge_records,
    ok_record,
    part_path,
    parts_dir_for,
    record_run,
    settings_path,
)

if TYPE_CHECKING:  # both import torch, which `tspo --help` does without
    from .._sampler import SamplerLike
    from ..scoring._settings import SelectionSettings

logger = logging.getLogger(__name__)

DEFAULT_TEXT_BATCH_SIZE = 64


def group_by_video(rows: Iterable[IndexRow]) -> list[list[IndexRow]]:
    """Rows grouped by video, groups in order of first appearance, rows in input order within a group."""
    groups: dict[str, list[IndexRow]] = {}
    for r in rows:
        groups.setdefault(r.video, []).append(r)
    return list(groups.values())


def shard_rows(rows: Sequence[IndexRow], rank: int, world_size: int) -> list[IndexRow]:
    """This process's share: whole videos, balanced by number of rows (largest groups first, each to the
    currently lightest process; ties go to the lower rank), returned in input order.

    Every process computes the same assignment from the same rows, so no communication is needed.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size} processes")
    groups = group_by_video(rows)
    order = sorted(range(len(groups)), key=lambda g: (-len(groups[g]), groups[g][0].row))
    load = [0] * world_size
    mine: list[IndexRow] = []
    for g in order:
        target = min(range(world_size), key=lambda r: (load[r], r))
        load[target] += len(groups[g])
        if target == rank:
            mine.extend(groups[g])
    return sorted(mine, key=lambda r: r.row)



@dataclass
class IndexStats:
    """What one process did in :func:`index_dataset`."""

    rows: int = 0  # rows in the dataset
    assigned: int = 0  # rows in this process's share that still needed doing
    written: int = 0  # records this process wrote (ok + errors)
    errors: int = 0  # error records this process wrote
    skipped: int = 0  # rows already done before this run started
    videos: int = 0  # videos this process encoded (or read from the cache)
    seconds: float = 0.0
    merged: bool = False  # this process merged the parts into OUT
    missing: int = 0  # rows still without a record after the merge (0 when complete)

    @property
    def questions_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else math.nan


def _describe(exc: BaseException) -> tuple[str, str]:
    from .._errors import VideoReadError

    if isinstance(exc, VideoReadError):
        return type(exc).__name__, exc.reason
    return type(exc).__name__, str(exc) or repr(exc)


class _TextFeatures:
    """Text features of a list of questions (in the order they will be asked for), encoded lazily in
    batches of ``batch_size`` distinct questions; only the current batch is kept."""

    def __init__(self, encode: Callable[[list[str]], Any], questions: Sequence[str], batch_size: int) -> None:
        self._encode = encode
        self._unique = list(dict.fromkeys(q for q in questions))
        self._pos = {q: i for i, q in enumerate(self._unique)}
        self._batch = max(1, int(batch_size))
        self._done: dict[int, Any] = {}

    def __call__(self, question: str) -> Any:
        b = self._pos[question] // self._batch
        if b not in self._done:
            self._done = {}  # keep one batch in memory
            chunk = self._unique[b * self._batch : (b + 1) * self._batch]
            self._done[b] = self._encode(chunk)
        return self._done[b][self._pos[question] - b * self._batch]


@dataclass(frozen=True)
class RunOptions:
    """How this process takes part in a run (never what it chooses): its ``rank`` among ``world_size``
    processes, a ``barrier`` that waits for all of them (``None``: a single process), a progress bar (shown by
    process 0) and whether every line is ``fsync``-ed (turn off only for throwaway runs)."""

    rank: int = 0
    world_size: int = 1
    barrier: Callable[[], None] | None = None
    progress: bool = True
    fsync: bool = True

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in a world of {self.world_size} processes")

    def wait(self) -> None:
        if self.barrier is not None:
            self.barrier()


@dataclass
class ResumePlan:
    """What is left to do for ``out``: the rows without a (wanted) record, and the settings each new record
    must carry when this run resumes an output written with other settings (``None`` otherwise)."""

    done: dict[int, dict[str, Any]]
    pending: list[IndexRow]
    row_settings: dict[str, Any] | None = None

    @property
    def mixed(self) -> bool:
        return self.row_settings is not None


def remove_output(out: str | os.PathLike[str]) -> None:
    """Delete ``out``, its settings sidecar and its part files (``overwrite``)."""
    for path in (Path(out), settings_path(out)):
        if path.exists():
            path.unlink()
    shutil.rmtree(parts_dir_for(out), ignore_errors=True)


def load_done(
    out: str | os.PathLike[str], rows: Sequence[IndexRow], settings: IndexSettings, *,
    resume_anyway: bool = False, retry_errors: bool = False,
) -> ResumePlan:
    """The records ``out`` (and its parts) already hold and the rows still to do (all processes together).

    Raises:
        ValueError: ``out`` holds records of another dataset, or of other settings without ``resume_anyway``.
    """
    done, differences = check_resume(out, rows, settings, resume_anyway=resume_anyway)
    if retry_errors:
        done = {i: r for i, r in done.items() if r.get("status") == "ok"}
    pending = [r for r in rows if r.row not in done]
    return ResumePlan(done, pending, settings.recorded() if differences else None)


def plan_rows(pending: Sequence[IndexRow], rank: int = 0, world_size: int = 1) -> list[list[IndexRow]]:
    """This process's share of ``pending`` (:func:`shard_rows`), as groups of rows about one video."""
    return group_by_video(shard_rows(pending, rank, world_size))


def process_video(
    sampler: SamplerLike,
    group: Sequence[IndexRow],
    settings: IndexSettings,
    *,
    decoder: str = "auto",
    texts: Callable[[str], Any] | None = None,
    video_roots: Sequence[str | os.PathLike[str]] = (),
    fail_fast: bool = False,
) -> tuple[list[dict[str, Any]], bool]:
    """The records of one video's rows (in the group's order) and whether the video was read.

    With ``search="exhaustive"`` the video is encoded once for all its questions; ``texts`` returns a
    question's text features (``None``: each question is encoded on its own). A row without a usable
    question or video gets an ``InvalidRow`` error record; a video that cannot be read gives each of its rows
    an error record (or raises, with ``fail_fast``).
    """
    records = [error_record(r, "InvalidRow", r.problem) for r in group if r.problem is not None]
    good = [r for r in group if r.problem is None]
    if not good:
        return records, False
    choose = settings.selection(decoder)
    try:
        video = resolve_video(good[0].video, video_roots)
        if choose.search != "exhaustive":  # each question searches the video itself
            selections = [sampler.select_frames(video, r.question, return_frames=False, progress=False,
                                                **dataclasses.asdict(choose)) for r in good]
        else:
            feats = sampler.encode_video(video, fps=choose.fps, max_candidates=choose.max_candidates,
                                         candidate_mode=choose.candidate_mode, progress=False, decoder=choose.decoder)
            selections = [sampler.select_from_features(feats, texts(r.question) if texts else r.question, choose.k,
                                                       method=choose.method, window_size=choose.window_size)
                          for r in good]
    except Exception as exc:  # an unreadable video fails its rows, not the run
        if fail_fast or isinstance(exc, MemoryError):
            raise
        error, reason = _describe(exc)
        logger.warning("row %d: %s: %s", good[0].row, good[0].video, reason)
        return records + [error_record(r, error, reason) for r in good], False
    return records + [ok_record(r, sel, settings) for r, sel in zip(good, selections, strict=True)], True


def merge(out: str | os.PathLike[str], rows: Sequence[IndexRow]) -> int:
    """Write ``out`` from itself and every part file, in input order; returns the rows still without a record."""
    return merge_records(out, rows)[1]


_RUN_FIELDS = {f.name for f in dataclasses.fields(RunOptions)}


def index_dataset(
    sampler: SamplerLike,
    rows: Sequence[IndexRow],
    out: str | os.PathLike[str],
    settings: SelectionSettings | None = None,
    *,
    run: RunOptions | None = None,
    model: str | None = None,
    video_roots: Sequence[str | os.PathLike[str]] = (),
    text_batch_size: int = DEFAULT_TEXT_BATCH_SIZE,
    include_scores: bool = False,
    retry_errors: bool = False,
    overwrite: bool = False,
    resume_anyway: bool = False,
    fail_fast: bool = False,
    **options: Any,
) -> IndexStats:
    """Choose frames for every row and write one JSON line per row to ``out`` (see the module doc).

    Call it in every process of a data-parallel run with that process's :class:`RunOptions` (``rank``,
    ``world_size`` and a ``barrier`` such as ``accelerate.PartialState().wait_for_everyone``); in a single
    process the defaults do. Process 0 merges the part files into ``out``. The steps are public for other
    engines: :func:`load_done`, :func:`plan_rows`, :func:`process_video`, :func:`merge`.

    Args:
        sampler: a :class:`~tspo_sampler.TemporalSampler` (or any :class:`~tspo_sampler.SamplerLike`).
        rows: the dataset (:func:`read_dataset`).
        out: the output JSONL file.
        settings: how frames are chosen (:class:`~tspo_sampler.SelectionSettings`; the default picks 16 with
            ``topk``). Its ``decoder`` is not a recorded setting: changing it never blocks a resume.
        run: this process's part in the run (:class:`RunOptions`).
        model: what the sampler was loaded from (recorded with the settings; a resume must agree).
        video_roots: directories relative video paths are looked up in (:func:`resolve_video`).
        text_batch_size: questions per text-encoder batch.
        include_scores: also write every candidate's score, index and timestamp (large).
        retry_errors: redo rows recorded as errors by an earlier run.
        overwrite: delete ``out``, its parts and its settings first instead of resuming.
        resume_anyway: resume even though ``out`` was written with other settings; every row this run
            writes then carries its own ``"settings"``. Without it such a resume raises ``ValueError``.
        fail_fast: raise on the first unreadable video instead of writing an error record.
        **options: the fields of ``settings`` (``k=``, ``method=``, ``search=`` ...) or of ``run`` (``rank=``,
            ``world_size=``, ``barrier=``, ``progress=``, ``fsync=``) as keywords, in place of the objects.

    Returns:
        This process's :class:`IndexStats`.

    Raises:
        OSError: ``out`` cannot be written (checked before any work).
        ValueError: ``out`` holds records of another dataset, or of other settings (see ``resume_anyway``).
    """
    from ..scoring._settings import SelectionSettings, check_positive_int

    selection, run = _split_options(settings, run, options, SelectionSettings)
    check_positive_int(text_batch_size, "text_batch_size")
    index_settings = IndexSettings.from_selection(selection, model=model, include_scores=include_scores)
    out = Path(out)
    check_writable(out)
    start = time.perf_counter()
    stats = IndexStats(rows=len(rows))
    if overwrite and run.rank == 0:
        remove_output(out)
    run.wait()  # everyone sees the same files before deciding what is left to do
    plan = load_done(out, rows, index_settings, resume_anyway=resume_anyway, retry_errors=retry_errors)
    stats.skipped = len(rows) - len(plan.pending)
    groups = plan_rows(plan.pending, run.rank, run.world_size)
    stats.assigned = sum(len(g) for g in groups)
    run.wait()  # nobody appends before everyone has read what was done
    if run.rank == 0:
        record_run(out, index_settings, mixed=plan.mixed)
    if groups:
        _write_groups(sampler, groups, out, index_settings, selection.decoder, plan, run, stats,
                      video_roots=video_roots, text_batch_size=text_batch_size, fail_fast=fail_fast)
    run.wait()  # every part is complete
    if run.rank == 0:
        stats.missing = merge(out, rows)
        stats.merged = True
    stats.seconds = time.perf_counter() - start
    return stats


def _split_options(
    settings: SelectionSettings | None, run: RunOptions | None, options: dict[str, Any], settings_type: type
) -> tuple[SelectionSettings, RunOptions]:
    """``settings`` and ``run`` from the objects or from their fields passed as keywords (not both)."""
    fields = {f.name for f in dataclasses.fields(settings_type)}
    unknown = set(options) - fields - _RUN_FIELDS
    if unknown:
        raise TypeError(f"index_dataset() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    chosen = {k: v for k, v in options.items() if k in fields}
    ran = {k: v for k, v in options.items() if k in _RUN_FIELDS}
    if (settings is not None and chosen) or (run is not None and ran):
        raise TypeError("pass settings= or its fields as keywords (and run= or its fields), not both")
    return settings or settings_type(**chosen), run or RunOptions(**ran)


def _write_groups(
    sampler: SamplerLike, groups: list[list[IndexRow]], out: Path, settings: IndexSettings, decoder: str,
    plan: ResumePlan, run: RunOptions, stats: IndexStats, *, video_roots: Sequence[str | os.PathLike[str]],
    text_batch_size: int, fail_fast: bool,
) -> None:
    """Process this share video by video, appending every record to this process's part file."""
    from tqdm.auto import tqdm

    texts = _TextFeatures(lambda qs: sampler.encode_text(qs),
                          [r.question for g in groups for r in g if r.problem is None], text_batch_size)
    name = f"tspo index [{run.rank}/{run.world_size}]" if run.world_size > 1 else "tspo index"
    bar = tqdm(total=stats.assigned, desc=name, unit="q", disable=not (run.progress and run.rank == 0),
               dynamic_ncols=True)
    with JsonlAppender(part_path(out, run.rank, run.world_size), fsync=run.fsync) as appender, bar:
        for group in groups:
            records, read = process_video(sampler, group, settings, decoder=decoder, texts=texts,
                                          video_roots=video_roots, fail_fast=fail_fast)
            stats.videos += read
            for record in records:
                if plan.row_settings is not None:
                    record["settings"] = plan.row_settings
                appender.write(record)
                stats.written += 1
                stats.errors += record["status"] != "ok"
                bar.update(1)
