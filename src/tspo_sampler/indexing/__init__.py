"""Batch selection over a whole dataset, the library behind ``tspo index`` (data-parallel, resumable).

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

from ._dataset import DATASET_FORMATS, IndexRow, read_dataset
from ._records import IndexSettings, read_runs
from ._run import (
    DEFAULT_TEXT_BATCH_SIZE,
    IndexStats,
    ResumePlan,
    RunOptions,
    index_dataset,
    load_done,
    merge,
    plan_rows,
    process_video,
    remove_output,
)

# What users call: read a dataset, index it, read what a run recorded; and the steps of a run
# (load_done -> plan_rows -> process_video -> merge) for other engines. The plumbing (part files, the
# JSONL writer in tspo_sampler.io, sharding) stays in the private modules.
__all__ = [
    "DATASET_FORMATS",
    "DEFAULT_TEXT_BATCH_SIZE",
    "IndexRow",
    "IndexSettings",
    "IndexStats",
    "ResumePlan",
    "RunOptions",
    "index_dataset",
    "load_done",
    "merge",
    "plan_rows",
    "process_video",
    "read_dataset",
    "read_runs",
    "remove_output",
]
