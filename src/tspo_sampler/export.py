"""Turn a ``tspo index`` output into the files evaluation harnesses read (the library behind ``tspo export``).

Formats:

``frame-index-json``
    The file the TSPO reference evaluation read (``TSPO_<Benchmark>_frameIdx.json``, pointed to by the
    ``LMMSJSON`` variable of its lmms-eval fork): a JSON list with one entry per question, each entry being
    the benchmark's annotation record plus ``"frame_idx"``, the chosen source frame indices in ascending
    order, written as floats like the reference's. Entries are the indexed rows' own fields, or, with
    ``annotations``, the records of a separate annotation file matched on a key field.
``id-map``
    A JSON object ``{question id: [source frame indices]}`` (integers), for custom harness code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._errors import ExportError
from .io import atomic_output, iter_jsonl_records

__all__ = [
    "EXPORT_FORMATS",
    "ExportError",
    "check_index",
    "export_index",
    "load_index",
    "to_frame_index_json",
    "to_id_map",
]

EXPORT_FORMATS = ("frame-index-json", "id-map")
FRAME_INDEX_KEY = "frame_idx"


def _existing_file(path: str | os.PathLike[str], what: str, hint: str = "") -> Path:
    """``path`` as a Path if it is a file; a directory or a missing path is an error saying which."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{what} {str(p)!r} is a directory, not a file")
    if not p.is_file():
        raise FileNotFoundError(f"{what} {str(p)!r} does not exist{hint}")
    return p


def load_index(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records of a ``tspo index`` output, in row order (a half-written last line is ignored)."""
    p = _existing_file(path, "index file", " (run `tspo index` first)")
    records = sorted(iter_jsonl_records(p), key=lambda r: r.get("row", -1))
    if not records:
        raise ExportError(f"{p} holds no records")
    return records


def _record_key(rec: dict[str, Any]) -> str:
    return str(rec["id"]) if rec.get("id") is not None else str(rec["row"])


def check_index(records: Sequence[dict[str, Any]], *, allow_errors: bool = False) -> None:
    """Refuse an index with gaps (an unfinished run) or, unless ``allow_errors``, error records."""
    rows = [r.get("row") for r in records]
    gaps = sorted(set(range(max(rows) + 1)) - set(rows)) if rows else []
    if gaps:
        raise ExportError(
            f"the index is incomplete: {len(gaps)} rows have no record (first: {gaps[:5]}); "
            "rerun the same `tspo index` command to finish it"
        )
    errors = [r for r in records if r.get("status") != "ok"]
    if errors and not allow_errors:
        shown = ", ".join(f"{_record_key(r)} ({r.get('reason', r.get('error'))})" for r in errors[:3])
        raise ExportError(
            f"{len(errors)} rows are error records, e.g. {shown}. Fix the videos and rerun `tspo index "
            "--retry-errors`, or pass --allow-errors (frame-index-json: empty frame_idx, which the reference "
            "loader replaces by uniform sampling; id-map: left out)"
        )


def to_id_map(records: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    """``{id: indices}`` for the ok records (the row number stands in for a missing id)."""
    out: dict[str, list[int]] = {}
    for rec in records:
        if rec.get("status") != "ok":
            continue
        key = _record_key(rec)
        if key in out:
            raise ExportError(f"id {key!r} appears more than once in the index; ids must be unique for id-map")
        out[key] = [int(i) for i in rec["indices"]]
    return out


def _frame_idx(rec: dict[str, Any]) -> list[float]:
    return [float(i) for i in rec["indices"]] if rec.get("status") == "ok" else []


def _load_annotations(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    p = _existing_file(path, "annotation file")
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        return list(iter_jsonl_records(p))
    data = json.loads(p.read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ExportError(f"{p}: annotations must be a JSON list of objects (like the benchmark's own file)")
    return data


def to_frame_index_json(
    records: Sequence[dict[str, Any]],
    *,
    annotations: Sequence[dict[str, Any]] | None = None,
    key_field: str = "id",
    allow_unmatched: bool = False,
) -> list[dict[str, Any]]:
    """The reference's frame-index JSON: one entry per question with ``frame_idx`` added.

    Args:
        records: index records (:func:`load_index`).
        annotations: the benchmark's annotation list to add ``frame_idx`` to; entries keep their order and
            fields. ``None``: entries are the indexed rows' own fields (``record["input"]``).
        key_field: the annotation field whose value is the index record's ``id`` (e.g. ``question_id`` for
            VideoMME and MLVU, ``id`` for LongVideoBench).
        allow_unmatched: keep annotation entries that have no index record (without ``frame_idx``);
            otherwise they are an error.
    """
    if annotations is None:
        return [{**rec.get("input", {}), FRAME_INDEX_KEY: _frame_idx(rec)} for rec in records]
    by_key: dict[str, dict[str, Any]] = {}
    for rec in records:
        key = _record_key(rec)
        if key in by_key:
            raise ExportError(f"id {key!r} appears more than once in the index; cannot match annotations")
        by_key[key] = rec
    out = []
    unmatched = []
    for entry in annotations:
        value = entry.get(key_field)
        rec = by_key.get(str(value)) if value is not None else None
        if rec is None:
            unmatched.append(value)
            out.append(dict(entry))
            continue
        out.append({**entry, FRAME_INDEX_KEY: _frame_idx(rec)})
    if unmatched and not allow_unmatched:
        raise ExportError(
            f"{len(unmatched)} of {len(annotations)} annotation entries have no index record under "
            f"{key_field!r} (first: {unmatched[:5]}); check --key-field and the --id-field used by `tspo index`, "
            "or pass --allow-unmatched"
        )
    return out


def export_index(
    index_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    format: str = "frame-index-json",
    annotations: str | os.PathLike[str] | None = None,
    key_field: str = "id",
    allow_errors: bool = False,
    allow_unmatched: bool = False,
) -> int:
    """Write ``out`` in ``format`` from the index at ``index_path``; returns the number of entries."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid formats: {', '.join(EXPORT_FORMATS)}")
    records = load_index(index_path)
    check_index(records, allow_errors=allow_errors)
    data: Any
    if format == "id-map":
        data = to_id_map(records)
    else:
        anno = _load_annotations(annotations) if annotations is not None else None
        data = to_frame_index_json(records, annotations=anno, key_field=key_field, allow_unmatched=allow_unmatched)
    o = Path(out)
    try:
        with atomic_output(o) as tmp:
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    except OSError as exc:  # name OUT, not the temporary file beside it
        raise OSError(f"cannot write {o}: {exc.strerror or exc}") from exc
    return len(data)
