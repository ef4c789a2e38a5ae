"""The records of an index output: what a row's line holds, and finding, preferring and merging them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._dataset import IndexRow
from ._jsonl import iter_jsonl_records, write_jsonl_atomic

PARTS_SUFFIX = ".parts"


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
    write_jsonl_atomic(o, (records[i] for i in range(len(rows)) if i in records))
    missing = len(rows) - len(records)
    if missing == 0:
        shutil.rmtree(parts_dir_for(o), ignore_errors=True)
    return len(records), missing



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
