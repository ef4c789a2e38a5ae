"""The indexing run: shard the rows over processes, encode each video once, select per question, write, merge."""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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



class SamplerLike(Protocol):
    """What :func:`index_dataset` needs of a sampler (a :class:`~tspo_sampler.TemporalSampler` has it)."""

    def encode_video(self, video: Any, *, fps: float = ..., max_candidates: int | None = ...,
                     candidate_mode: str = ..., progress: bool | None = ...) -> Any: ...

    def encode_text(self, questions: str | Sequence[str]) -> Any: ...

    def select_from_features(self, video_features: Any, question: Any, k: int = ..., *, method: str = ...,
                             window_size: int | None = ...) -> Any: ...

    def select_frames(self, video: Any, question: str, k: int = ..., **options: Any) -> Any: ...


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


def index_dataset(
    sampler: SamplerLike,
    rows: Sequence[IndexRow],
    out: str | os.PathLike[str],
    *,
    k: int = 16,
    method: str = "topk",
    fps: float = 1.0,
    max_candidates: int | None = None,
    window_size: int | None = None,
    candidate_mode: str = "fps",
    model: str | None = None,
    video_roots: Sequence[str | os.PathLike[str]] = (),
    text_batch_size: int = DEFAULT_TEXT_BATCH_SIZE,
    include_scores: bool = False,
    retry_errors: bool = False,
    overwrite: bool = False,
    resume_anyway: bool = False,
    fail_fast: bool = False,
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] | None = None,
    progress: bool = True,
    fsync: bool = True,
    search: str = "exhaustive",
    decoder: str = "auto",
) -> IndexStats:
    """Choose ``k`` frames for every row and write one JSON line per row to ``out`` (see the module doc).

    Call it in every process of a data-parallel run with that process's ``rank`` and the ``world_size``,
    and a ``barrier`` that waits for all of them (``accelerate.PartialState().wait_for_everyone``); in a
    single process the defaults do. Process 0 merges the part files into ``out``.

    Args:
        sampler: a :class:`~tspo_sampler.TemporalSampler` (or anything with its ``encode_video``,
            ``encode_text`` and ``select_from_features``).
        rows: the dataset (:func:`read_dataset`).
        out: the output JSONL file.
        k: frames per row (every candidate when a video has fewer).
        method: selection method (``topk``, ``bin-max``, ``aks``, ``uniform``, ``clip``, ``bolt``).
        fps: candidate frames per second.
        max_candidates: cap on candidates per video, spread evenly.
        window_size: the agent's attention window (``None``: the sampler's default).
        candidate_mode: ``fps`` (candidates at ``fps`` per second) or ``keyframes`` (the nearest keyframes).
        model: what the sampler was loaded from (recorded with the settings; a resume must agree).
        video_roots: directories relative video paths are looked up in (:func:`resolve_video`).
        text_batch_size: questions per text-encoder batch.
        include_scores: also write every candidate's score, index and timestamp (large).
        retry_errors: redo rows recorded as errors by an earlier run.
        overwrite: delete ``out``, its parts and its settings first instead of resuming.
        resume_anyway: resume even though ``out`` was written with other settings; every row this run
            writes then carries its own ``"settings"``. Without it such a resume raises ``ValueError``.
        fail_fast: raise on the first unreadable video instead of writing an error record.
        rank: this process's index among ``world_size`` processes.
        world_size: number of processes sharing the work.
        barrier: waits until every process reaches it (``None``: single process).
        progress: show a progress bar with ETA (process 0 only).
        fsync: ``fsync`` after every line (turn off only for throwaway runs).
        search: ``exhaustive`` (every video encoded once, shared by its questions) or ``coarse-to-fine``
            (each question searches its video, encoding a fraction of the candidates; replays cached
            features when an exhaustive run stored them).
        decoder: the video decoding backend (``auto``, ``pyav``, ``decord``, ``torchcodec``); all give the
            same frames, so it is not a recorded setting and changing it never blocks a resume.

    Returns:
        This process's :class:`IndexStats`.

    Raises:
        OSError: ``out`` cannot be written (checked before any work).
        ValueError: ``out`` holds records of another dataset, or of other settings (see ``resume_anyway``).
    """
    from ..scoring._settings import SelectionSettings, check_positive_int

    selection = SelectionSettings(k=k, method=method, fps=fps, max_candidates=max_candidates,
                                  window_size=window_size, candidate_mode=candidate_mode, search=search,
                                  decoder=decoder)
    k, method, fps, max_candidates = selection.k, selection.method, selection.fps, selection.max_candidates
    window_size, candidate_mode, search = selection.window_size, selection.candidate_mode, selection.search
    how = {"decoder": selection.decoder} if selection.decoder != "auto" else {}  # duck-typed samplers need not know it
    check_positive_int(text_batch_size, "text_batch_size")
    barrier = barrier or (lambda: None)
    settings = IndexSettings.from_selection(selection, model=model, include_scores=include_scores)
    out = Path(out)
    check_writable(out)
    start = time.perf_counter()
    stats = IndexStats(rows=len(rows))

    if overwrite and rank == 0:
        for path in (out, settings_path(out)):
            if path.exists():
                path.unlink()
        shutil.rmtree(parts_dir_for(out), ignore_errors=True)
    barrier()  # everyone sees the same files before deciding what is left to do

    done, differences = check_resume(out, rows, settings, resume_anyway=resume_anyway)
    row_settings = settings.recorded() if differences else None  # a deliberate mix: each new row says how
    if retry_errors:
        done = {i: r for i, r in done.items() if r.get("status") == "ok"}
    pending = [r for r in rows if r.row not in done]
    stats.skipped = len(rows) - len(pending)
    mine = shard_rows(pending, rank, world_size)
    stats.assigned = len(mine)
    barrier()  # nobody appends before everyone has read what was done
    if rank == 0:
        record_run(out, settings, mixed=bool(differences))

    if mine:
        groups = group_by_video(mine)
        texts = _TextFeatures(lambda qs: sampler.encode_text(qs),
                              [r.question for g in groups for r in g if r.problem is None], text_batch_size)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), desc=f"tspo index [{rank}/{world_size}]" if world_size > 1 else "tspo index",
                   unit="q", disable=not (progress and rank == 0), dynamic_ncols=True)
        with JsonlAppender(part_path(out, rank, world_size), fsync=fsync) as appender, bar:

            def write(record: dict[str, Any]) -> None:
                if row_settings is not None:
                    record["settings"] = row_settings
                appender.write(record)

            for group in groups:
                good = [r for r in group if r.problem is None]
                for r in group:
                    if r.problem is not None:
                        write(error_record(r, "InvalidRow", r.problem))
                        stats.written += 1
                        stats.errors += 1
                        bar.update(1)
                if not good:
                    continue
                try:
                    video = resolve_video(good[0].video, video_roots)
                    if search != "exhaustive":  # each question searches the video itself
                        selections = [sampler.select_frames(video, r.question, k, fps=fps, return_frames=False,
                                                            max_candidates=max_candidates, window_size=window_size,
                                                            candidate_mode=candidate_mode, search=search, **how)
                                      for r in good]
                    else:
                        feats = sampler.encode_video(video, fps=fps, max_candidates=max_candidates,
                                                     candidate_mode=candidate_mode, progress=False, **how)
                except Exception as exc:  # an unreadable video fails its rows, not the run
                    if fail_fast or isinstance(exc, (MemoryError,)):
                        raise
                    error, reason = _describe(exc)
                    logger.warning("row %d: %s: %s", good[0].row, good[0].video, reason)
                    for r in good:
                        write(error_record(r, error, reason))
                        stats.written += 1
                        stats.errors += 1
                        bar.update(1)
                    continue
                stats.videos += 1
                for i, r in enumerate(good):
                    selection = selections[i] if search != "exhaustive" else sampler.select_from_features(
                        feats, texts(r.question), k, method=method, window_size=window_size)
                    write(ok_record(r, selection, settings))
                    stats.written += 1
                    bar.update(1)

    barrier()  # every part is complete
    if rank == 0:
        _, stats.missing = merge_records(out, rows)
        stats.merged = True
    stats.seconds = time.perf_counter() - start
    return stats

