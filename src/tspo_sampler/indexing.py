"""Batch selection over a whole dataset: ``tspo index`` (data-parallel, resumable) and ``tspo export``.

A dataset is a list of rows ``{id?, video, question, ...}`` (JSONL, a JSON list or object, CSV or TSV).
:func:`index_dataset` writes one JSON line per row to ``OUT``, in input order::

    {"row": 0, "id": "001-1", "video": "001.mp4", "question": "...", "status": "ok", "method": "topk",
     "k": 64, "indices": [...], "timestamps": [...], "num_candidates": 2220, "duration": 2220.4,
     "fps": 29.97, "input": {...the row as read...}}

A row whose video cannot be read gets ``"status": "error"`` with ``"error"`` (the exception type) and
``"reason"``; the run goes on.

How the work is spread and made safe:

* Rows are grouped by video: all questions about one video go to the same process, share one decode and
  one vision pass (and the on-disk feature cache), and their texts are encoded in batches.
* Under ``accelerate launch`` every process takes a share of the videos and appends to its own part file
  ``OUT.parts/part-RRRRR-of-WWWWW.jsonl``; each line is flushed and ``fsync``-ed before the next row.
  When every process is done, process 0 merges the parts (and any earlier ``OUT``) in input order into
  ``OUT``, written to a temporary file and renamed, then removes the parts.
* After a crash or a kill, running the same command again skips every row already recorded in ``OUT`` or
  in a part file (whatever the number of processes was before). A half-written last line, the only
  damage a kill can do to an append-only file, is cut off before appending resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

INDEX_FORMAT_VERSION = 1
PARTS_SUFFIX = ".parts"
DEFAULT_TEXT_BATCH_SIZE = 64
DATASET_FORMATS = ("jsonl", "json", "csv", "tsv")
_FORMAT_BY_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}


# ---------------------------------------------------------------------------------------------- dataset


@dataclass
class IndexRow:
    """One dataset row: which video, which question, and everything else the row carried.

    Attributes:
        row: position of the row in the dataset (0-based); the output keeps this order.
        id: the row's id (``None`` when the dataset has no id column).
        video: the video as written in the dataset (relative paths are resolved with ``video_roots``).
        question: the question text.
        input: the row exactly as read, all columns included (exports carry these fields along).
        problem: why the row cannot be processed (missing video or question), else ``None``.
    """

    row: int
    id: str | None
    video: str
    question: str
    input: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


def detect_format(path: str | os.PathLike[str]) -> str:
    """``jsonl``, ``json``, ``csv`` or ``tsv`` from the file suffix (``.gz`` is not supported)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMAT_BY_SUFFIX:
        raise ValueError(
            f"cannot tell the dataset format of {str(path)!r} from its suffix {suffix!r}; "
            f"use .jsonl, .json, .csv or .tsv, or pass --format ({', '.join(DATASET_FORMATS)})"
        )
    return _FORMAT_BY_SUFFIX[suffix]


def _read_raw_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "jsonl":
        rows = []
        with path.open("r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise ValueError(f"{path}:{lineno}: each line must be a JSON object, got {type(obj).__name__}")
                rows.append(obj)
        return rows
    if fmt == "json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, dict):
            # {"data": [...]} or {id: {row}, ...}
            if isinstance(data.get("data"), list):
                data = data["data"]
            elif all(isinstance(v, dict) for v in data.values()):
                data = [{"__key__": k, **v} for k, v in data.items()]
            else:
                raise ValueError(f"{path}: a JSON dataset must be a list of objects or an object of objects")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ValueError(f"{path}: a JSON dataset must be a list of objects")
        return data
    if fmt in ("csv", "tsv"):
        with path.open("r", encoding="utf-8", newline="") as f:
            csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
            reader = csv.DictReader(f, delimiter="\t" if fmt == "tsv" else ",")
            if not reader.fieldnames:
                raise ValueError(f"{path}: no header row")
            return [dict(r) for r in reader]
    raise ValueError(f"unknown dataset format {fmt!r}; valid formats: {', '.join(DATASET_FORMATS)}")


def read_dataset(
    path: str | os.PathLike[str],
    *,
    video_field: str = "video",
    question_field: str = "question",
    id_field: str | None = "id",
    format: str | None = None,
    video_template: str | None = None,
) -> list[IndexRow]:
    """Read a dataset of ``{id?, video, question}`` rows.

    Args:
        path: a ``.jsonl`` file (one object per line), a ``.json`` list of objects (or an object of objects,
            whose keys become ids), or a ``.csv`` / ``.tsv`` file with a header row.
        video_field: column holding the video path.
        question_field: column holding the question.
        id_field: column holding the row id; when a row lacks it the id is ``None`` (exports then fall back
            to the row number). For an object-of-objects JSON file the keys are the ids.
        format: force one of ``jsonl``, ``json``, ``csv``, ``tsv`` instead of guessing from the suffix.
        video_template: build the video path from the row's fields instead of reading ``video_field``,
            e.g. ``"videos/{videoID}.mp4"`` for VideoMME's annotation file (``str.format`` syntax).

    A row without a video or with a blank question is kept, with :attr:`IndexRow.problem` set, so it gets
    an error record in the output instead of stopping the run.

    Raises:
        FileNotFoundError: the dataset file does not exist.
        ValueError: the file cannot be parsed, or no row has the video or question column at all.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"dataset {str(p)!r} does not exist")
    fmt = format or detect_format(p)
    raw = _read_raw_rows(p, fmt)
    if raw:
        needed = [(question_field, "question")] + ([] if video_template else [(video_field, "video")])
        for name, what in needed:
            if not any(name in r for r in raw):
                columns = sorted({k for r in raw[:100] for k in r if k != "__key__"})
                raise ValueError(
                    f"{p}: no row has a {name!r} column for the {what}; columns are {columns}. "
                    f"Pick one with --{what}-field."
                )
    rows = []
    for i, r in enumerate(raw):
        key = r.pop("__key__", None)
        rid = r.get(id_field) if id_field else None
        if rid is None:
            rid = key
        question = r.get(question_field)
        problem = None
        if video_template:
            try:
                video = video_template.format_map(r)
            except (KeyError, IndexError, ValueError) as exc:
                video, problem = "", f"--video-template {video_template!r} does not fit this row ({exc!r})"
        else:
            video = r.get(video_field)
        if problem is not None:
            pass
        elif video is None or (isinstance(video, str) and not video.strip()):
            problem = f"row has no {video_field!r}"
        elif not isinstance(video, str):
            problem = f"{video_field!r} must be a string path, got {type(video).__name__}"
        elif question is None or not isinstance(question, str) or not question.strip():
            problem = f"row has no question (empty or missing {question_field!r})"
        rows.append(
            IndexRow(
                row=i,
                id=None if rid is None else str(rid),
                video=video if isinstance(video, str) else ("" if video is None else str(video)),
                question=question if isinstance(question, str) else ("" if question is None else str(question)),
                input=r,
                problem=problem,
            )
        )
    return rows


def resolve_video(video: str, roots: Sequence[str | os.PathLike[str]]) -> str:
    """The path to open for ``video``: absolute paths as they are; relative ones under the first root that
    holds them (the first root when none does, so the error names a sensible path)."""
    p = Path(video).expanduser()
    if p.is_absolute() or not roots:
        return str(p)
    for root in roots:
        candidate = Path(root) / p
        if candidate.exists():
            return str(candidate)
    return str(Path(roots[0]) / p)


# ---------------------------------------------------------------------------------------------- sharding


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


# ---------------------------------------------------------------------------------------------- files


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def repair_jsonl(path: str | os.PathLike[str]) -> int:
    """Cut a half-written last line (no trailing newline) off an append-only JSONL file.

    Returns the number of bytes removed (0 when the file ends cleanly or does not exist).
    """
    p = Path(path)
    if not p.exists():
        return 0
    size = p.stat().st_size
    if size == 0:
        return 0
    with p.open("rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # find the last newline, reading backwards in blocks
        pos = size
        keep = 0
        block = 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


class JsonlAppender:
    """Append JSON records to a file, one line each, durable line by line (``flush`` + ``fsync``).

    Opening repairs a half-written last line left by a crash (see :func:`repair_jsonl`).
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        removed = repair_jsonl(self.path)
        if removed:
            logger.warning("%s: dropped a half-written last line (%d bytes) left by an interrupted run",
                           self.path, removed)
        self._fsync = fsync
        self._f = self.path.open("ab")

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(", ", ": ")) + "\n"
        self._f.write(line.encode("utf-8"))  # one write: a kill leaves at most one partial line
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_jsonl_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Complete records of a JSONL file; a half-written or damaged line is skipped with a warning."""
    p = Path(path)
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                logger.warning("%s:%d: ignoring a half-written last line", p, lineno)
                return
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                logger.warning("%s:%d: ignoring a damaged line", p, lineno)
                continue
            if isinstance(obj, dict):
                yield obj


def parts_dir_for(out: str | os.PathLike[str]) -> Path:
    """Where the per-process part files of ``out`` live: ``OUT.parts/``."""
    o = Path(out)
    return o.with_name(o.name + PARTS_SUFFIX)


def part_path(out: str | os.PathLike[str], rank: int, world_size: int) -> Path:
    return parts_dir_for(out) / f"part-{rank:05d}-of-{world_size:05d}.jsonl"


def _same_row(record: dict[str, Any], row: IndexRow) -> bool:
    return record.get("video") == row.video and record.get("question") == row.question and record.get("id") == row.id


def _prefer(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Whether ``new`` replaces ``old`` for the same row: an ok record is final, an error can be redone."""
    return old is None or old.get("status") != "ok"


def collect_records(out: str | os.PathLike[str], rows: Sequence[IndexRow]) -> dict[int, dict[str, Any]]:
    """Every complete record for ``rows`` found in ``out`` and its part files, by row number.

    Raises:
        ValueError: a record does not match the dataset row it names (``out`` was written for another
            dataset or other column choices); rerun with ``--overwrite`` or another ``--out``.
    """
    found: dict[int, dict[str, Any]] = {}
    sources = []
    o = Path(out)
    if o.exists():
        sources.append(o)
    pdir = parts_dir_for(o)
    if pdir.is_dir():
        sources.extend(sorted(pdir.glob("part-*.jsonl")))
    for src in sources:
        for rec in iter_jsonl_records(src):
            i = rec.get("row")
            if not isinstance(i, int) or not 0 <= i < len(rows) or not _same_row(rec, rows[i]):
                raise ValueError(
                    f"{src} holds a record for row {i!r} that does not match the dataset "
                    f"(video {rec.get('video')!r}, question {str(rec.get('question'))[:60]!r}); it was written for "
                    "another dataset or other --*-field choices. Use --overwrite to start over or another --out."
                )
            if _prefer(found.get(i), rec):
                found[i] = rec
    return found


def merge_records(out: str | os.PathLike[str], rows: Sequence[IndexRow]) -> tuple[int, int]:
    """Write ``out`` from itself and its parts, in input order (temporary file + rename).

    The part files are removed once every row has a record. Returns ``(records written, rows missing)``.
    """
    o = Path(out)
    records = collect_records(o, rows)
    tmp = o.with_name(f".{o.name}.merging-{os.getpid()}")
    o.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("wb") as f:
        for i in range(len(rows)):
            rec = records.get(i)
            if rec is not None:
                f.write((json.dumps(rec, ensure_ascii=False, separators=(", ", ": ")) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, o)
    _fsync_dir(o.parent)
    missing = len(rows) - len(records)
    if missing == 0:
        shutil.rmtree(parts_dir_for(o), ignore_errors=True)
    return len(records), missing


# ---------------------------------------------------------------------------------------------- indexing


class SamplerLike(Protocol):
    """What :func:`index_dataset` needs of a sampler (a :class:`~tspo_sampler.TemporalSampler` has it)."""

    def encode_video(self, video: Any, *, fps: float = ..., max_candidates: int | None = ...,
                     progress: bool | None = ...) -> Any: ...

    def encode_text(self, questions: str | Sequence[str]) -> Any: ...

    def select_from_features(self, video_features: Any, question: Any, k: int = ..., *, method: str = ...,
                             window_size: int | None = ...) -> Any: ...


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


@dataclass
class IndexSettings:
    """Selection settings recorded with every row (and used to encode videos)."""

    k: int = 16
    method: str = "topk"
    fps: float = 1.0
    max_candidates: int | None = None
    window_size: int | None = None
    include_scores: bool = False


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits)


def ok_record(row: IndexRow, selection: Any, settings: IndexSettings) -> dict[str, Any]:
    """The output line of a row whose frames were chosen."""
    rec: dict[str, Any] = {
        "row": row.row,
        "id": row.id,
        "video": row.video,
        "question": row.question,
        "status": "ok",
        "method": selection.method,
        "k": settings.k,
        "indices": [int(i) for i in selection.indices],
        "timestamps": [round(float(t), 6) for t in selection.timestamps],
        "num_candidates": len(selection.candidate_indices),
        "duration": _round(selection.duration),
        "fps": _round(selection.fps),
    }
    if settings.include_scores:
        rec["candidate_indices"] = [int(i) for i in selection.candidate_indices]
        rec["candidate_timestamps"] = [round(float(t), 6) for t in selection.candidate_timestamps]
        rec["scores"] = [round(float(s), 5) for s in selection.scores]
    rec["input"] = row.input
    return rec


def error_record(row: IndexRow, error: str, reason: str) -> dict[str, Any]:
    """The output line of a row that could not be processed (the run goes on)."""
    return {
        "row": row.row,
        "id": row.id,
        "video": row.video,
        "question": row.question,
        "status": "error",
        "error": error,
        "reason": reason,
        "input": row.input,
    }


def _describe(exc: BaseException) -> tuple[str, str]:
    from ._errors import VideoReadError

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
    video_roots: Sequence[str | os.PathLike[str]] = (),
    text_batch_size: int = DEFAULT_TEXT_BATCH_SIZE,
    include_scores: bool = False,
    retry_errors: bool = False,
    overwrite: bool = False,
    fail_fast: bool = False,
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] | None = None,
    progress: bool = True,
    fsync: bool = True,
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
        video_roots: directories relative video paths are looked up in (:func:`resolve_video`).
        text_batch_size: questions per text-encoder batch.
        include_scores: also write every candidate's score, index and timestamp (large).
        retry_errors: redo rows recorded as errors by an earlier run.
        overwrite: delete ``out`` and its parts first instead of resuming.
        fail_fast: raise on the first unreadable video instead of writing an error record.
        rank: this process's index among ``world_size`` processes.
        world_size: number of processes sharing the work.
        barrier: waits until every process reaches it (``None``: single process).
        progress: show a progress bar with ETA (process 0 only).
        fsync: ``fsync`` after every line (turn off only for throwaway runs).

    Returns:
        This process's :class:`IndexStats`.
    """
    from ._selection import check_k, check_method

    k = check_k(k)
    method = check_method(method)
    if text_batch_size < 1:
        raise ValueError(f"text_batch_size must be >= 1, got {text_batch_size}")
    barrier = barrier or (lambda: None)
    settings = IndexSettings(k=k, method=method, fps=fps, max_candidates=max_candidates,
                             window_size=window_size, include_scores=include_scores)
    out = Path(out)
    start = time.perf_counter()
    stats = IndexStats(rows=len(rows))

    if overwrite and rank == 0:
        if out.exists():
            out.unlink()
        shutil.rmtree(parts_dir_for(out), ignore_errors=True)
    barrier()  # everyone sees the same files before deciding what is left to do

    done = collect_records(out, rows)
    if retry_errors:
        done = {i: r for i, r in done.items() if r.get("status") == "ok"}
    pending = [r for r in rows if r.row not in done]
    stats.skipped = len(rows) - len(pending)
    mine = shard_rows(pending, rank, world_size)
    stats.assigned = len(mine)
    barrier()  # nobody appends before everyone has read what was done

    if mine:
        groups = group_by_video(mine)
        texts = _TextFeatures(lambda qs: sampler.encode_text(qs),
                              [r.question for g in groups for r in g if r.problem is None], text_batch_size)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), desc=f"tspo index [{rank}/{world_size}]" if world_size > 1 else "tspo index",
                   unit="q", disable=not (progress and rank == 0), dynamic_ncols=True)
        with JsonlAppender(part_path(out, rank, world_size), fsync=fsync) as sink, bar:
            for group in groups:
                good = [r for r in group if r.problem is None]
                for r in group:
                    if r.problem is not None:
                        sink.write(error_record(r, "InvalidRow", r.problem))
                        stats.written += 1
                        stats.errors += 1
                        bar.update(1)
                if not good:
                    continue
                try:
                    feats = sampler.encode_video(resolve_video(good[0].video, video_roots), fps=fps,
                                                 max_candidates=max_candidates, progress=False)
                except Exception as exc:  # an unreadable video fails its rows, not the run
                    if fail_fast or isinstance(exc, (MemoryError,)):
                        raise
                    error, reason = _describe(exc)
                    logger.warning("row %d: %s: %s", good[0].row, good[0].video, reason)
                    for r in good:
                        sink.write(error_record(r, error, reason))
                        stats.written += 1
                        stats.errors += 1
                        bar.update(1)
                    continue
                stats.videos += 1
                for r in good:
                    selection = sampler.select_from_features(feats, texts(r.question), k, method=method,
                                                             window_size=window_size)
                    sink.write(ok_record(r, selection, settings))
                    stats.written += 1
                    bar.update(1)

    barrier()  # every part is complete
    if rank == 0:
        _, stats.missing = merge_records(out, rows)
        stats.merged = True
    stats.seconds = time.perf_counter() - start
    return stats


# ---------------------------------------------------------------------------------------------- CLI


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

    return PartialState(cpu=_cpu_only(device), timeout=timedelta(hours=BARRIER_TIMEOUT_HOURS))


def _cpu_only(device: str | None) -> bool:
    """Whether processes should join as CPU workers (gloo): asked for (``accelerate launch --cpu``,
    ``--device cpu``) or no accelerator exists. Without this, ``accelerate launch --multi_gpu`` or
    ``torchrun`` on a machine without GPUs would start processes that each think they are alone."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    if device is not None:
        return str(device).startswith("cpu")
    import torch

    accel = getattr(torch, "accelerator", None)
    if accel is not None and hasattr(accel, "is_available"):
        return not accel.is_available()
    return not torch.cuda.is_available()


def _add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video-field", default="video", help="column with the video path (default: video)")
    p.add_argument("--question-field", default="question", help="column with the question (default: question)")
    p.add_argument("--id-field", default="id", help="column with the row id (default: id)")
    p.add_argument("--format", dest="dataset_format", choices=DATASET_FORMATS, default=None,
                   help="dataset format (default: from the file suffix)")
    p.add_argument("--video-template", default=None, metavar="TEMPLATE",
                   help="build the video path from row fields instead of --video-field, e.g. '{videoID}.mp4'")


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tspo index`` and ``tspo export`` to the ``tspo`` command line."""
    from ._selection import SELECTION_METHODS
    from .cli import add_model_arguments

    p = subparsers.add_parser(
        "index",
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
    p.add_argument("-k", type=int, default=16, help="frames per row (default 16; the paper evaluates 64)")
    p.add_argument("--method", default="topk", choices=list(SELECTION_METHODS), help="selection method (default topk)")
    p.add_argument("--fps", type=float, default=1.0, help="candidate frames per second (default 1)")
    p.add_argument("--max-candidates", type=int, default=None, help="cap on candidates per video, spread evenly")
    p.add_argument("--window-size", type=int, default=None, help="agent attention window (default: the checkpoint's, 12)")
    _add_dataset_arguments(p)
    p.add_argument("--video-root", action="append", default=None, metavar="DIR",
                   help="directory relative video paths are found in (repeatable; default: the current "
                        "directory, then the dataset's directory)")
    p.add_argument("--text-batch-size", type=int, default=DEFAULT_TEXT_BATCH_SIZE,
                   help=f"questions per text-encoder batch (default {DEFAULT_TEXT_BATCH_SIZE})")
    p.add_argument("--scores", action="store_true", help="also write every candidate's score, index and timestamp")
    p.add_argument("--retry-errors", action="store_true", help="redo rows an earlier run recorded as errors")
    p.add_argument("--overwrite", action="store_true", help="start over: delete OUT and its parts first")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first unreadable video")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(p)
    p.set_defaults(func=run_index)

    from .export import register_export_cli

    register_export_cli(subparsers)


def run_index(args: argparse.Namespace) -> int:
    """``tspo index``: returns 0 when every row has a record (errors included), 1 when rows are missing."""
    from .cli import load_sampler

    state = _distributed_state(args.device)
    rank = state.process_index if state is not None else 0
    world = state.num_processes if state is not None else 1
    barrier = state.wait_for_everyone if state is not None and world > 1 else None
    if args.device is None and state is not None and world > 1:
        args.device = str(state.device)
    rows = read_dataset(args.dataset, video_field=args.video_field, question_field=args.question_field,
                        id_field=args.id_field or None, format=args.dataset_format,
                        video_template=args.video_template)
    roots = args.video_root or [os.getcwd(), str(Path(args.dataset).resolve().parent)]
    try:
        sampler = load_sampler(args)
        stats = index_dataset(
            sampler, rows, args.out, k=args.k, method=args.method, fps=args.fps, max_candidates=args.max_candidates,
            window_size=args.window_size, video_roots=roots, text_batch_size=args.text_batch_size,
            include_scores=args.scores, retry_errors=args.retry_errors, overwrite=args.overwrite,
            fail_fast=args.fail_fast, rank=rank, world_size=world, barrier=barrier, progress=not args.no_progress,
        )
    finally:
        # Leave the process group before exit: a gloo group torn down by the interpreter's exit can abort
        # a process whose work is finished ("terminate called without an active exception").
        if state is not None and world > 1:
            state.destroy_process_group()
    rate = stats.questions_per_second
    print(
        f"tspo index [{rank}/{world}]: {stats.written} rows written ({stats.errors} errors) from {stats.videos} "
        f"videos in {stats.seconds:.1f} s ({rate:.2f} q/s); {stats.skipped} already done",
        file=sys.stderr,
    )
    if stats.merged:
        if stats.missing:
            print(f"tspo index: {stats.missing} rows have no record yet; rerun the same command to finish",
                  file=sys.stderr)
            return 1
        print(f"tspo index: {args.out} complete ({len(rows)} rows)", file=sys.stderr)
    return 0


__all__ = [
    "IndexRow",
    "IndexStats",
    "JsonlAppender",
    "collect_records",
    "detect_format",
    "group_by_video",
    "index_dataset",
    "iter_jsonl_records",
    "merge_records",
    "parts_dir_for",
    "read_dataset",
    "register_cli",
    "repair_jsonl",
    "resolve_video",
    "shard_rows",
]
