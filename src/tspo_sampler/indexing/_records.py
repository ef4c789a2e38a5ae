"""The records of an index output: what a row's line holds, and finding, preferring and merging them."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import iter_jsonl_records, write_jsonl_atomic
from ._dataset import IndexRow

if TYPE_CHECKING:
    from ..scoring._settings import SelectionSettings

INDEX_FORMAT_VERSION = 1
PARTS_SUFFIX = ".parts"
SETTINGS_SUFFIX = ".settings.json"


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
    """How a run chose its frames. Every field but ``include_scores`` is recorded in ``OUT.settings.json`` and
    checked when a later run resumes the same output (a new selection option only needs a field here)."""

    k: int = 16
    method: str = "topk"
    fps: float = 1.0
    max_candidates: int | None = None
    window_size: int | None = None
    candidates: str = "fps"
    model: str | None = None
    search: str = "exhaustive"
    include_scores: bool = False

    def __post_init__(self) -> None:
        # checked (and normalised) by the one rule of SelectionSettings, with its messages
        selection = self.selection()
        for field in ("k", "method", "fps", "max_candidates", "window_size", "search"):
            setattr(self, field, getattr(selection, field))

    def selection(self, decoder: str = "auto") -> SelectionSettings:
        """These settings as :class:`~tspo_sampler.SelectionSettings` (``decoder`` is not recorded)."""
        from ..scoring._settings import SelectionSettings  # imports torch: not at import (fast ``tspo --help``)

        return SelectionSettings(k=self.k, method=self.method, fps=self.fps, max_candidates=self.max_candidates,
                                 window_size=self.window_size, candidate_mode=self.candidates, search=self.search,
                                 decoder=decoder)

    @classmethod
    def from_selection(
        cls, selection: SelectionSettings, *, model: str | None = None, include_scores: bool = False
    ) -> IndexSettings:
        return cls(k=selection.k, method=selection.method, fps=selection.fps, max_candidates=selection.max_candidates,
                   window_size=selection.window_size, candidates=selection.candidate_mode, model=model,
                   search=selection.search, include_scores=include_scores)

    def recorded(self) -> dict[str, Any]:
        """The settings that decide which frames are chosen (what a resume must agree on)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "include_scores"}


def settings_path(out: str | os.PathLike[str]) -> Path:
    """The sidecar that records each run's settings: ``OUT.settings.json``."""
    o = Path(out)
    return o.with_name(o.name + SETTINGS_SUFFIX)


def read_runs(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The runs recorded for ``out`` (oldest first; empty when there is no sidecar)."""
    p = settings_path(out)
    if not p.is_file():
        return []
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        runs = data["runs"]
        if not isinstance(runs, list) or not all(isinstance(r, dict) and isinstance(r.get("settings"), dict)
                                                 for r in runs):
            raise TypeError("runs must be a list of {settings: {...}}")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{p} is damaged ({exc}); delete it, or pass --overwrite to start again") from None
    return runs


def settings_differences(
    out: str | os.PathLike[str], settings: IndexSettings, records: Iterable[dict[str, Any]]
) -> list[str]:
    """``["k 8 -> 4", ...]``: how ``settings`` differ from those ``out`` was written with.

    The last run in the sidecar decides; an output without one (written before settings were recorded) is
    compared on what its ok records carry (``k``, ``method``).
    """
    runs = read_runs(out)
    if runs:
        before = runs[-1]["settings"]
    else:
        ok = next((r for r in records if r.get("status") == "ok"), None)
        before = {} if ok is None else {"k": ok.get("k"), "method": ok.get("method")}
    now = settings.recorded()
    unknown = {key for key in ("model",) if None in (before.get(key), now[key])}  # model=None: not said
    return [f"{key} {before[key]!r} -> {now[key]!r}" for key in now
            if key in before and key not in unknown and before[key] != now[key]]


def check_resume(
    out: str | os.PathLike[str], rows: Sequence[IndexRow], settings: IndexSettings, *, resume_anyway: bool = False
) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """The records already in ``out`` (by row) and how ``settings`` differ from those they were written with.

    Raises:
        ValueError: ``out`` holds records of another dataset, or records written with other settings and
            ``resume_anyway`` is false.
    """
    done = collect_records(out, rows)
    differences = settings_differences(out, settings, done.values()) if done else []
    if differences and not resume_anyway:
        raise ValueError(
            f"{out} was written with other settings ({'; '.join(differences)}); pass --overwrite "
            "(overwrite=True) to start again, or --resume-anyway (resume_anyway=True) to mix them"
        )
    return done, differences


def record_run(out: str | os.PathLike[str], settings: IndexSettings, *, mixed: bool) -> None:
    """Add this run's settings to the sidecar (unless they equal the last run's), written whole and renamed."""
    runs = read_runs(out)
    now = settings.recorded()
    if runs and runs[-1]["settings"] == now:
        return
    runs.append({"settings": now, "mixed": mixed, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    p = settings_path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"format": INDEX_FORMAT_VERSION, "runs": runs}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, p)


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
        # search="coarse-to-fine" leaves never-scored candidates NaN: null in JSON
        rec["scores"] = [round(float(s), 5) if math.isfinite(s) else None for s in selection.scores]
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
