"""Each doc's TSPO selection, carried into lmms-eval's ``--log_samples`` output as a top-level ``"tspo"`` key.

lmms-eval 0.7.3 builds one logged sample per doc in ``lmms_eval.evaluator._process_document_results`` and
writes every key of it except ``arguments`` and ``doc``; no hook carries model metadata there. The narrowest
place is that function's return value: :data:`LOGGED` wraps it once per process and adds the record the
model kept for ``(task, doc_id)``. If a future lmms-eval renames the function, the wrapper is not installed,
a warning says so, and the ``tspo_log=`` sidecar JSONL remains available.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

__all__ = ["LOGGED", "note_record"]

_RECORDS: dict[tuple[str, int], dict[str, Any]] = {}
_HOOKED = "_process_document_results"  # the lmms-eval evaluator function whose results gain the TSPO record


def note_record(task: str, doc_id: int, record: dict[str, Any]) -> None:
    """Remember ``record`` as the ``"tspo"`` entry of doc ``doc_id`` of ``task``."""
    _RECORDS[(str(task), int(doc_id))] = record


def _with_record(processed: Any, item: Any) -> Any:
    sample = getattr(processed, "logged_sample", None)
    if sample is None:
        return processed
    doc_id, _doc, requests = item
    task = getattr(requests[0], "task_name", None) if requests else None
    record = _RECORDS.get((str(task), int(doc_id)))
    if record is not None:
        sample["tspo"] = record
    return processed


class _LoggedSamples:
    installed = False

    def install(self) -> None:
        if self.installed:
            return
        evaluator = sys.modules.get("lmms_eval.evaluator")
        if evaluator is None:
            try:
                import lmms_eval.evaluator as evaluator
            except ImportError:
                return
        original = getattr(evaluator, _HOOKED, None)
        if original is None or not callable(original):
            warnings.warn("this lmms-eval has no evaluator._process_document_results: logged samples will not carry "
                          "the TSPO selection; pass tspo_log=PATH for a sidecar JSONL", stacklevel=2)
            return
        if getattr(original, "__tspo_wrapped__", False):
            self.installed = True
            return

        def process_document_results(item: Any, *args: Any, **kwargs: Any) -> Any:
            return _with_record(original(item, *args, **kwargs), item)

        process_document_results.__tspo_wrapped__ = True  # type: ignore[attr-defined]
        process_document_results.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(evaluator, _HOOKED, process_document_results)  # lmms-eval's own (private) function, wrapped
        self.installed = True


LOGGED = _LoggedSamples()
