"""Reading an index dataset: rows ``{id?, video, question, ...}`` from JSONL, JSON, CSV or TSV."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASET_FORMATS = ("jsonl", "json", "csv", "tsv")
_FORMAT_BY_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}


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


def row_problem(
    video: Any, question: Any, *, video_field: str = "video", question_field: str = "question"
) -> str | None:
    """Why a row with this video and question cannot be processed (its error record's reason), else ``None``."""
    if video is None or (isinstance(video, str) and not video.strip()):
        return f"row has no {video_field!r}"
    if not isinstance(video, str):
        return f"{video_field!r} must be a string path, got {type(video).__name__}"
    if question is None or not isinstance(question, str) or not question.strip():
        return f"row has no question (empty or missing {question_field!r})"
    return None


def check_output_is_not_dataset(out: str | os.PathLike[str], dataset: str | os.PathLike[str]) -> None:
    """Refuse an output file that is the dataset itself: the same path, a symlink to it or a hard link
    (same device and inode). Writing or ``--overwrite`` there would replace the rows being read."""
    from .._errors import InvalidArgumentError

    try:
        same = os.path.samefile(out, dataset)
    except OSError:  # OUT does not exist yet (or the dataset does not: reading it says so)
        return
    if same:
        how = "" if os.path.abspath(out) == os.path.abspath(dataset) else " (a link to the same file)"
        raise InvalidArgumentError(
            f"--out {str(out)!r} is the dataset {str(dataset)!r}{how}: writing there would destroy it; "
            "choose another output file"
        )


def detect_format(path: str | os.PathLike[str]) -> str:
    """``jsonl``, ``json``, ``csv`` or ``tsv`` from the file suffix (``.gz`` is not supported)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMAT_BY_SUFFIX:
        raise ValueError(
            f"cannot tell the dataset format of {str(path)!r} from its suffix {suffix!r}; "
            f"use .jsonl, .json, .csv or .tsv, or pass --format ({', '.join(DATASET_FORMATS)})"
        )
    return _FORMAT_BY_SUFFIX[suffix]


def _read_text(path: Path) -> str:
    """The file as UTF-8 text; a byte that is not UTF-8 is a ``ValueError`` naming the file, line and column."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column}); "
            "save the dataset as UTF-8"
        ) from None


def _read_raw_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt not in DATASET_FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; valid formats: {', '.join(DATASET_FORMATS)}")
    text = _read_text(path)
    if fmt == "jsonl":
        rows = []
        with io.StringIO(text) as f:
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
            data = json.loads(text)
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
    with io.StringIO(text, newline="") as f:  # csv, tsv
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        reader = csv.DictReader(f, delimiter="\t" if fmt == "tsv" else ",")
        if not reader.fieldnames:
            raise ValueError(f"{path}: no header row")
        return [dict(r) for r in reader]


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
    if p.is_dir():
        raise IsADirectoryError(f"dataset {str(p)!r} is a directory; pass a .jsonl, .json, .csv or .tsv file")
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
        if problem is None:
            problem = row_problem(video, question, video_field=video_field, question_field=question_field)
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
