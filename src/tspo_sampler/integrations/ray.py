"""TSPO as a Ray Data stage: :class:`TSPOSelector` for ``Dataset.map_batches`` and :func:`select_dataset`.

``pip install "tspo-sampler[ray]"``. Ray is imported only when :func:`select_dataset` runs (the selector class
itself needs no Ray), so importing this module costs nothing::

    import ray
    from tspo_sampler.integrations.ray import select_dataset

    ds = ray.data.read_parquet("s3://bucket/questions.parquet")  # columns id, video, question
    ds = select_dataset(ds, "hzf666/TSPO-0.4B", k=16)
    ds.write_parquet("s3://bucket/frames/")

Each output row is its input row plus ``status``, ``indices``, ``timestamps``, ``num_candidates``,
``duration``, ``fps``, ``error`` and ``reason``, with the values ``tspo index`` writes for it (the same record
code makes them). A row that cannot be processed becomes an error row and never fails its batch.
``tspo index --engine ray`` runs this stage over a dataset file and writes the usual JSONL
(:mod:`tspo_sampler.indexing._ray_engine`).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..indexing._dataset import IndexRow, row_problem
from ..indexing._records import IndexSettings

logger = logging.getLogger(__name__)

#: The columns :class:`TSPOSelector` adds (``include_scores`` adds ``candidate_indices``,
#: ``candidate_timestamps`` and ``scores``).
OUTPUT_COLUMNS = ("status", "indices", "timestamps", "num_candidates", "duration", "fps", "error", "reason")
SCORE_COLUMNS = ("candidate_indices", "candidate_timestamps", "scores")

#: Actor restarts and task retries: a worker that dies (node lost, out of memory) is restarted as often as
#: it takes (-1) and its batch redone, up to 3 times, so a video that crashes its worker every time ends the
#: job instead of looping.
MAX_RESTARTS = -1
MAX_TASK_RETRIES = 3
TEXT_BATCH_SIZE = 64

__all__ = ["MAX_RESTARTS", "MAX_TASK_RETRIES", "OUTPUT_COLUMNS", "SCORE_COLUMNS", "TSPOSelector",
           "default_resources", "select_dataset"]


def _value(x: Any) -> Any:
    """A cell as a plain Python value: numpy scalars unwrapped, a float NaN (pandas' missing) as ``None``."""
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


class TSPOSelector:
    """Choose ``k`` frames for every row of a batch (a callable class for ``Dataset.map_batches``).

    Ray builds one per actor, so the model loads once per worker and stays loaded. Rows of a batch that share
    a video are decoded and encoded once (and the feature cache serves videos seen in earlier batches); their
    questions are encoded together.

    Args:
        model: a checkpoint directory or Hub id for :meth:`~tspo_sampler.TemporalSampler.from_pretrained`, or
            a function of no arguments that returns a sampler (it runs in the worker).
        k: frames per row.
        method: selection method (``topk``, ``bin-max``, ``aks``, ``uniform``, ``clip``, ``bolt``).
        fps: candidate frames per second.
        search: ``exhaustive`` or ``coarse-to-fine``.
        decoder: video decoding backend (``auto``, ``pyav``, ``decord``, ``torchcodec``).
        device: torch device (``None``: the GPU Ray gave this worker, else the CPU).
        feature_cache: use the on-disk feature cache (``False`` for one-pass jobs).
        video_field, question_field, id_field: the columns holding the video path, the question and the id.
        include_scores: also return ``candidate_indices``, ``candidate_timestamps`` and ``scores``.
        max_candidates, window_size, candidate_mode: as for ``tspo index``.
        video_roots: directories relative video paths are looked up in (every worker must see them).
        feature_cache_dir: where the feature cache lives on each worker.
        model_name: what to record as the model in :class:`~tspo_sampler.indexing.IndexSettings`.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | Callable[[], Any],
        *,
        k: int = 16,
        method: str = "topk",
        fps: float = 1.0,
        search: str = "exhaustive",
        decoder: str = "auto",
        device: str | None = None,
        feature_cache: bool = True,
        video_field: str = "video",
        question_field: str = "question",
        id_field: str | None = "id",
        include_scores: bool = False,
        max_candidates: int | None = None,
        window_size: int | None = None,
        candidate_mode: str = "fps",
        video_roots: Sequence[str | os.PathLike[str]] = (),
        feature_cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        from ..video._inputs import check_decoder

        # checked and normalised by IndexSettings (the rule and the messages of SelectionSettings)
        self.settings = IndexSettings(k=k, method=method, fps=fps, max_candidates=max_candidates,
                                      window_size=window_size, candidates=candidate_mode, search=search,
                                      include_scores=include_scores)
        self.decoder = check_decoder(decoder)
        self.video_field, self.question_field, self.id_field = video_field, question_field, id_field
        self.video_roots = [str(r) for r in video_roots]
        if callable(model):
            self.sampler = model()
        else:
            from .._sampler import TemporalSampler

            self.sampler = TemporalSampler.from_pretrained(
                model, device=device, feature_cache=feature_cache,
                feature_cache_dir=None if not feature_cache else feature_cache_dir)
        self.columns = OUTPUT_COLUMNS + (SCORE_COLUMNS if include_scores else ())

    # -- one batch

    def _rows(self, batch: Mapping[str, Sequence[Any]], n: int) -> list[IndexRow]:
        rows = []
        for i in range(n):
            def cell(name: str | None, i: int = i) -> Any:
                return _value(batch[name][i]) if name and name in batch else None

            video, question, rid = cell(self.video_field), cell(self.question_field), cell(self.id_field)
            problem = row_problem(video, question, video_field=self.video_field, question_field=self.question_field)
            rows.append(IndexRow(row=i, id=None if rid is None else str(rid),
                                 video=video if isinstance(video, str) else "",
                                 question=question if isinstance(question, str) else "", problem=problem))
        return rows

    def _texts(self, rows: Sequence[IndexRow]) -> Callable[[str], Any] | None:
        """Text features of the batch's distinct questions, encoded together (``None``: each on its own)."""
        unique = list(dict.fromkeys(r.question for r in rows if r.problem is None))
        feats: dict[str, Any] = {}
        try:
            for start in range(0, len(unique), TEXT_BATCH_SIZE):
                chunk = unique[start : start + TEXT_BATCH_SIZE]
                feats.update(zip(chunk, self.sampler.encode_text(chunk), strict=True))
        except Exception:  # a question the encoder refuses fails only its own rows (process_video)
            return None
        return feats.__getitem__

    def records(self, rows: Sequence[IndexRow]) -> list[dict[str, Any]]:
        """The ``tspo index`` record of every row (in order), made by the indexing code itself
        (:func:`~tspo_sampler.indexing.process_video`, one call per video): bad rows and unreadable videos
        give error records."""
        from ..indexing import process_video

        groups: dict[str, list[IndexRow]] = {}
        for r in rows:
            groups.setdefault(r.video, []).append(r)
        texts = self._texts(rows)
        out: dict[int, dict[str, Any]] = {}
        for group in groups.values():
            records, _ = process_video(self.sampler, group, self.settings, decoder=self.decoder, texts=texts,
                                       video_roots=self.video_roots)
            out.update((rec["row"], rec) for rec in records)
        return [out[r.row] for r in rows]

    def __call__(self, batch: Any) -> Any:
        """``batch`` (a dict of columns, or a pandas DataFrame) with the output columns added."""
        frame = None
        if hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # pandas
            frame, batch = batch, {c: batch[c].tolist() for c in batch.columns}
        n = len(next(iter(batch.values()))) if batch else 0
        records = self.records(self._rows(batch, n))
        result = dict(batch)
        for c in self.columns:
            result[c] = [rec.get(c) for rec in records]
        if frame is not None:
            import pandas as pd

            return pd.DataFrame(result)
        return result


def default_resources(*, num_gpus: float | None = None, concurrency: int | None = None,
                      batch_size: int | None = None, num_cpus: float | None = None) -> dict[str, Any]:
    """Worker count, GPUs and CPUs per worker and rows per batch for this Ray cluster (the ones not given).

    With GPUs: one worker per GPU (``num_gpus=1``; 0.5 puts two workers on each GPU), one CPU each for
    decoding, 32 rows per batch. Without: workers of up to 4 CPUs each (torch threads; fewer when
    ``concurrency`` workers would not fit otherwise), as many as the nodes hold, 8 rows per batch.
    """
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")] or [ray.cluster_resources()]
    node_cpus = [float(n.get("CPU", 0)) for n in nodes]
    node_gpus = [float(n.get("GPU", 0)) for n in nodes]
    if num_gpus is None:
        num_gpus = 1.0 if max(node_gpus) >= 1 else 0.0
    if num_gpus < 0:
        raise ValueError(f"num_gpus must be >= 0, got {num_gpus}")
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency (workers) must be >= 1, got {concurrency}")
    if num_cpus is None:
        share = sum(node_cpus) // concurrency if concurrency else 4
        num_cpus = 1.0 if num_gpus else float(max(1, min(4, max(node_cpus), share)))
    if concurrency is None:
        held = [g // num_gpus if num_gpus else c // num_cpus for c, g in zip(node_cpus, node_gpus, strict=True)]
        concurrency = max(1, int(sum(held)))
    if batch_size is None:
        batch_size = 32 if num_gpus else 8
    return {"num_gpus": float(num_gpus), "num_cpus": float(num_cpus), "concurrency": int(concurrency),
            "batch_size": int(batch_size)}


def select_dataset(
    ds: Any,
    model: str | os.PathLike[str] | Callable[[], Any],
    *,
    concurrency: int | None = None,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
    batch_size: int | None = None,
    max_restarts: int = MAX_RESTARTS,
    max_task_retries: int = MAX_TASK_RETRIES,
    selector: type[TSPOSelector] | None = None,
    whole_blocks: bool = False,
    **settings: Any,
) -> Any:
    """``ds.map_batches(TSPOSelector, ...)`` with workers, GPUs and batch size fitted to the cluster.

    ``settings`` are :class:`TSPOSelector`'s keyword arguments (``k``, ``method``, ``fps``, ...). Workers that
    die are restarted (``max_restarts``) and their batches redone (``max_task_retries``). Returns the lazy
    Ray dataset (write it, or iterate over it). ``selector`` swaps in a subclass of :class:`TSPOSelector`.
    ``whole_blocks=True`` makes each block of ``ds`` one batch (blocks already cut to batches, e.g. by video).
    A worker takes a new batch only when it is free, so batches go to whichever worker is idle.
    """
    import ray

    selector = selector or TSPOSelector
    plan = default_resources(num_gpus=num_gpus, concurrency=concurrency, batch_size=batch_size, num_cpus=num_cpus)
    _check_settings(settings)  # in the driver, before any worker starts
    with warnings.catch_warnings():
        # Ray 2.60 calls the actor options "ray_remote_args" and deprecates them, but has no other way to set them
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
        return ds.map_batches(
            selector,
            fn_constructor_args=(model,),
            fn_constructor_kwargs=settings,
            compute=ray.data.ActorPoolStrategy(size=plan["concurrency"], max_tasks_in_flight_per_actor=1),
            batch_size=None if whole_blocks else plan["batch_size"],
            num_gpus=plan["num_gpus"],
            num_cpus=plan["num_cpus"],
            max_restarts=max_restarts,
            max_task_retries=max_task_retries,
        )


def _check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse unknown or invalid selector settings in the driver, before workers start and fail one by one."""
    import inspect

    from ..video._inputs import check_decoder

    allowed = set(inspect.signature(TSPOSelector.__init__).parameters) - {"self", "model"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise TypeError(f"select_dataset got unknown settings {unknown}; valid: {sorted(allowed)}")
    chosen = {"candidates" if k == "candidate_mode" else k: v for k, v in settings.items()
              if k in ("k", "method", "fps", "max_candidates", "window_size", "candidate_mode", "search")}
    IndexSettings(**chosen)
    check_decoder(settings.get("decoder", "auto"))
