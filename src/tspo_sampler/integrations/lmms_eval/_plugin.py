"""What every TSPO model of the lmms-eval plugin shares: its arguments, the sampler, the question, the records.

The model classes (``_qwen``, ``_processors``) subclass lmms-eval's own classes and call into
:class:`TSPOMixin` at the two points where the upstream code turns a doc into frames. Nothing here imports
lmms-eval at module import; ``loguru`` (an lmms-eval dependency) is only used when lmms-eval runs.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ..._errors import PluginConfigError, TSPOError
from ..._result import Selection
from ..._sampler import TemporalSampler
from ...io import append_jsonl
from ...scoring._settings import SelectionSettings
from ._records import LOGGED, note_record

__all__ = ["PendingDoc", "PluginConfigError", "TSPOMixin", "TSPO_DEFAULTS", "question_from_doc", "strip_options"]

DEFAULT_TSPO_MODEL = "hzf666/TSPO-0.4B"

# model arg -> default; everything else goes to the upstream model
TSPO_DEFAULTS: dict[str, Any] = {
    "tspo_model": DEFAULT_TSPO_MODEL,
    "k": None,  # default: the upstream model's own frame count
    "method": "topk",
    "fps": 1.0,
    "search": None,
    "tspo_index": None,
    "tspo_index_field": "id",
    "question_field": None,
    "tspo_device": None,
    "feature_cache": True,
    "feature_cache_dir": None,
    "tspo_log": None,
}

QUESTION_FIELDS = ("question", "query", "prompt")
_OPTION_LINE = re.compile(r"^\s*(?:\(?[A-Z]\)|[A-Z][.:：、])\s*\S")
_INLINE_OPTIONS = re.compile(r"\s*\(A\)\s.*?\(B\)\s.*$", re.S)

_SAMPLERS: dict[tuple[Any, ...], TemporalSampler] = {}  # one sampler per process and checkpoint


def strip_options(text: str) -> str:
    """The question without its answer options (``A. ...`` / ``(A) ...`` lines, or inline ``(A) .. (B) ..``)."""
    lines = [ln for ln in str(text).splitlines() if not _OPTION_LINE.match(ln)]
    out = "\n".join(lines).strip()
    out = _INLINE_OPTIONS.sub("", out).strip()
    return out or str(text).strip()


def _message_text(messages: Any) -> str:
    texts = []
    for msg in messages or []:
        if not isinstance(msg, dict) or msg.get("role", "user") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content or []:
            if isinstance(part, dict) and part.get("type") == "text" and part.get("text"):
                texts.append(str(part["text"]))
    return "\n".join(texts)


def question_from_doc(doc: dict[str, Any], field: str | None = None, messages: Any = None) -> str:
    """The question TSPO selects frames for: ``doc[field]``, else the doc's question, else the prompt text;
    answer options are left out in every case."""
    if field is not None:
        if field not in doc:
            _fail(f"question_field={field!r}: the doc has no such field (it has {sorted(doc)[:20]})")
        return strip_options(str(doc[field]))
    for name in QUESTION_FIELDS:
        value = doc.get(name)
        if isinstance(value, str) and value.strip():
            return strip_options(value)
    text = _message_text(messages)
    if not text.strip():
        _fail(f"no question found: the doc has none of the fields {list(QUESTION_FIELDS)} and the prompt has "
              "no text; pass question_field=")
    return strip_options(text)


@dataclass
class PendingDoc:
    """A doc whose messages were just built, waiting for its frames."""

    task: str
    split: str
    doc_id: int
    doc: dict[str, Any]
    question: str


def _log() -> Any:
    try:
        from loguru import logger

        return logger
    except ImportError:  # pragma: no cover - lmms-eval depends on loguru
        import logging

        return logging.getLogger("tspo_sampler.lmms_eval")


def _under_lmms_cli() -> bool:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return bool(spec is not None and str(getattr(spec, "name", "")).startswith("lmms_eval"))


def _fail(message: str) -> NoReturn:
    """A configuration error: one line. Under the lmms-eval CLI (which logs errors and exits 0) exit 2."""
    line = message.splitlines()[0] if message else "tspo: invalid configuration"
    if _under_lmms_cli():
        print(f"tspo_sampler: {line}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    raise PluginConfigError(line)


def _load_index(path: str, field: str) -> dict[str, dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        _fail(f"tspo_index={path!r}: no such file (expected the JSONL written by `tspo index`)")
    records: dict[str, dict[str, Any]] = {}
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                _fail(f"tspo_index={path!r}: line {n} is not JSON ({e.msg})")
            if not isinstance(rec, dict) or "id" not in rec or rec.get("id") is None:
                _fail(f"tspo_index={path!r}: line {n} has no 'id' (index the dataset with --id-field set to "
                      f"the doc field {field!r})")
            key = str(rec["id"])
            if key not in records or records[key].get("status") != "ok":
                records[key] = rec
    return records


def _model_arg_number(value: Any, kind: type) -> Any:
    """A number model arg (``k=8``, ``fps=0.5``) from its text; anything else is left for the settings check."""
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            return value
    return value


def _cache_mode(value: Any) -> Any:
    """``feature_cache`` as the sampler takes it: booleans from their spellings, modes as they are."""
    if isinstance(value, str) and value.lower() in ("none", "false", "0", "off"):
        return False
    if isinstance(value, str) and value.lower() in ("true", "1", "on"):
        return True
    return value


class TSPOMixin:
    """TSPO frame selection for an lmms-eval model class (see the package docstring for the model args)."""

    tspo_default_k_attr: str = "max_num_frames"  # the upstream attribute holding its frame count

    @staticmethod
    def split_tspo_args(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(tspo options, upstream kwargs)`` from the model args."""
        opts = {name: kwargs.pop(name, default) for name, default in TSPO_DEFAULTS.items()}
        return opts, kwargs

    # ------------------------------------------------------------------ construction
    def tspo_setup(self, opts: dict[str, Any], upstream_device: Any = None) -> None:
        """Check the options and load the sampler (once per process): a bad ``tspo_model`` fails here."""
        self.tspo_search = opts["search"]
        has_search = "search" in inspect.signature(TemporalSampler.select_frames).parameters
        if self.tspo_search is not None and not has_search:
            _fail(f"search={self.tspo_search!r}: this tspo-sampler version's select_frames has no search option")
        try:  # model args arrive as text: numbers are read first, then SelectionSettings checks them all
            settings = SelectionSettings(
                k=16 if opts["k"] is None else _model_arg_number(opts["k"], int), method=opts["method"],
                fps=_model_arg_number(opts["fps"], float), search=self.tspo_search or "exhaustive",
            )
        except (TypeError, ValueError) as e:
            _fail(str(e))
        self.tspo_method, self.tspo_fps = settings.method, settings.fps
        self.tspo_k = None if opts["k"] is None else settings.k
        self.tspo_question_field = opts["question_field"]
        self.tspo_index_field = str(opts["tspo_index_field"])
        self.tspo_index = None if opts["tspo_index"] is None else _load_index(str(opts["tspo_index"]),
                                                                               self.tspo_index_field)
        self.tspo_log_path = None if opts["tspo_log"] is None else Path(str(opts["tspo_log"]))
        self.tspo_sampler = self._tspo_load_sampler(opts, upstream_device)
        self.tspo_pending: list[PendingDoc] = []
        self.tspo_records: dict[tuple[str, int], dict[str, Any]] = {}
        self.tspo_fallbacks = 0
        self.tspo_selected = 0
        LOGGED.install()

    def _tspo_load_sampler(self, opts: dict[str, Any], upstream_device: Any) -> TemporalSampler:
        device = opts["tspo_device"]
        if device is None and upstream_device is not None:
            device = str(upstream_device)
            if device == "cuda" and os.environ.get("LOCAL_RANK"):
                device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        if device is not None and str(device).startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                device = "cpu"
        name = str(opts["tspo_model"])
        cache, cache_dir = _cache_mode(opts["feature_cache"]), opts["feature_cache_dir"]
        key = (name, str(device), str(cache), str(cache_dir))
        if key not in _SAMPLERS:
            try:
                _SAMPLERS[key] = TemporalSampler.from_pretrained(
                    name, device=device, feature_cache=cache, feature_cache_dir=cache_dir
                )
            except Exception as e:  # noqa: BLE001 - any loading failure is one configuration error
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                _fail(f"tspo_model={name!r} could not be loaded: {reason}")
        return _SAMPLERS[key]

    def tspo_k_for_doc(self) -> int:
        if self.tspo_k is not None:
            return self.tspo_k
        upstream = getattr(self, self.tspo_default_k_attr, None)
        return SelectionSettings(k=int(upstream)).k if upstream else 16

    # ------------------------------------------------------------------ requests -> pending docs
    def tspo_wrap_requests(self, requests: list[Any]) -> list[Any]:
        """Copies of ``requests`` whose ``doc_to_messages`` also queues the doc for frame selection."""
        self.tspo_pending.clear()
        wrapped = []
        for req in requests:
            args = req.args
            if len(args) < 6 or not callable(args[1]):
                wrapped.append(req)
                continue
            ctx, to_messages, gen_kwargs, doc_id, task, split = args[:6]
            new = copy.copy(req)
            new.arguments = (ctx, self._tspo_doc_hook(to_messages, task, split, doc_id), gen_kwargs, doc_id, task,
                             split, *args[6:])
            wrapped.append(new)
        return wrapped

    def _tspo_doc_hook(self, to_messages: Any, task: str, split: str, doc_id: int) -> Any:
        def doc_to_messages(doc: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            messages = to_messages(doc, *args, **kwargs)
            question = question_from_doc(doc, self.tspo_question_field, messages)
            self.tspo_pending.append(PendingDoc(task, split, int(doc_id), doc, question))
            return messages

        return doc_to_messages

    def tspo_mismatch(self, n_docs: int, n_inputs: int) -> None:
        """The upstream code built frames for other docs than were queued: leave them to upstream, loudly."""
        self.tspo_fallbacks += n_inputs
        _log().warning(f"tspo: {n_docs} docs queued but {n_inputs} inputs to fill; these use the upstream "
                       f"model's frames [fallbacks {self.tspo_fallbacks}]")

    def tspo_take_pending(self) -> list[PendingDoc]:
        docs = list(self.tspo_pending)
        self.tspo_pending.clear()
        return docs

    # ------------------------------------------------------------------ selection
    def tspo_select(self, pending: PendingDoc, video: Any) -> Selection | None:
        """TSPO's frames for one video of one doc, or ``None`` (with a warning) to use the upstream frames."""
        where = f"doc {pending.task}/{pending.doc_id}"
        if not isinstance(video, (str, os.PathLike)):
            return self._tspo_fallback(pending, video, "the video is not a file path")
        path = str(video)
        k = self.tspo_k_for_doc()
        try:
            if self.tspo_index is not None:
                sel = self._tspo_from_index(pending, path, k)
                if sel is None:
                    return None
                source = "index"
            else:
                extra = {} if self.tspo_search is None else {"search": self.tspo_search}
                sel = self.tspo_sampler.select_frames(path, pending.question, k=k, method=self.tspo_method,
                                                      fps=self.tspo_fps, **extra)
                source = "tspo"
        except PluginConfigError:
            raise
        except (TSPOError, OSError) as e:
            return self._tspo_fallback(pending, path, f"{type(e).__name__}: {e}")
        record = {
            "video": path,
            "question": pending.question,
            "method": sel.method,
            "k": k,
            "indices": [int(i) for i in sel.indices],
            "timestamps": [round(float(t), 6) for t in sel.timestamps],
            "fps": None if sel.fps is None else float(sel.fps),
            "duration": None if sel.duration is None else float(sel.duration),
            "source": source,
            "search": self.tspo_search or "exhaustive",
            "fallback": False,
        }
        self._tspo_record(pending, record)
        self.tspo_selected += 1
        _log().debug(f"tspo: {where}: frames {record['indices']} of {path}")
        return sel

    def _tspo_from_index(self, pending: PendingDoc, path: str, k: int) -> Selection | None:
        field = self.tspo_index_field
        if field not in pending.doc:
            _fail(f"tspo_index_field={field!r}: doc {pending.task}/{pending.doc_id} has no such field "
                  f"(it has {sorted(pending.doc)[:20]})")
        rec = self.tspo_index.get(str(pending.doc[field]))
        if rec is None:
            return self._tspo_fallback(pending, path, f"no record with id {pending.doc[field]!r} in tspo_index")
        if rec.get("status", "ok") != "ok":
            return self._tspo_fallback(pending, path, f"tspo_index records an error: {rec.get('reason')}")
        if rec.get("video") and Path(str(rec["video"])).name != Path(path).name:
            _fail(f"tspo_index record {rec['id']!r} is for video {rec['video']!r} but doc "
                  f"{pending.task}/{pending.doc_id} shows {path!r}: the index was built for other data")
        indices = [int(i) for i in rec["indices"]]
        frames = self.tspo_sampler.get_frames(path, indices)
        n = len(indices)
        return Selection(
            indices=indices,
            timestamps=[float(t) for t in rec["timestamps"]],
            frames=frames,
            scores=np.zeros(n, dtype=np.float32),
            candidate_indices=indices,
            candidate_timestamps=[float(t) for t in rec["timestamps"]],
            method=str(rec.get("method", "topk")),
            duration=rec.get("duration"),
            fps=rec.get("fps"),
            question=rec.get("question", pending.question),
            positions=list(range(n)),
            video=path,
        )

    def _tspo_fallback(self, pending: PendingDoc, video: Any, reason: str) -> None:
        self.tspo_fallbacks += 1
        _log().warning(f"tspo: doc {pending.task}/{pending.doc_id}, video {video}: TSPO frames unavailable "
                       f"({reason}); using the upstream model's uniform frames [fallback {self.tspo_fallbacks}]")
        warnings.warn(f"tspo fallback for doc {pending.task}/{pending.doc_id} ({video}): {reason}", stacklevel=3)
        self._tspo_record(pending, {"video": str(video), "question": pending.question, "method": "upstream",
                                    "k": self.tspo_k_for_doc(), "source": "upstream", "fallback": True,
                                    "reason": reason})
        return None

    def _tspo_record(self, pending: PendingDoc, record: dict[str, Any]) -> None:
        key = (pending.task, pending.doc_id)
        if key in self.tspo_records:  # a doc with several videos: one record per video
            prev = self.tspo_records[key]
            record = {"videos": [*prev.get("videos", [prev]), record]}
        self.tspo_records[key] = record
        note_record(pending.task, pending.doc_id, record)
        if self.tspo_log_path is not None:
            append_jsonl(self.tspo_log_path, {"task": pending.task, "doc_id": pending.doc_id, "tspo": record})

    def tspo_summary(self) -> None:
        """Log how many docs got TSPO frames and how many fell back to the upstream frames."""
        msg = f"tspo: {self.tspo_selected} videos with TSPO frames, {self.tspo_fallbacks} fallbacks to upstream frames"
        if self.tspo_fallbacks:
            _log().warning(msg)
        else:
            _log().info(msg)
