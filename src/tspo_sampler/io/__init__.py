"""Files every stage writes: JSON Lines in one format, appended line by line so a kill tears at most the last
line, repaired on reopening, read tolerantly, or replaced whole with a rename.

Used by :mod:`tspo_sampler.indexing` (outputs, parts, merges), :mod:`tspo_sampler.training` (metrics),
:mod:`tspo_sampler.export` and the lmms-eval integration (the selection sidecar). Standard library only.
"""

from __future__ import annotations

from ._atomic import atomic_output
from ._jsonl import (
    JsonlAppender,
    append_jsonl,
    check_writable,
    iter_jsonl_records,
    jsonl_line,
    repair_jsonl,
    write_jsonl_atomic,
)

__all__ = [
    "JsonlAppender",
    "append_jsonl",
    "atomic_output",
    "check_writable",
    "iter_jsonl_records",
    "jsonl_line",
    "repair_jsonl",
    "write_jsonl_atomic",
]
