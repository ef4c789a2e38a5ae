"""TSPO frames through transformers' own video loading.

transformers decodes videos in ``transformers.video_utils.load_video(video, ..., sample_indices_fn=fn)``
(and in every video processor, through ``fetch_videos``). ``fn(metadata=VideoMetadata, **kwargs)`` must
return the frame indices to decode, but it only sees the metadata (frame count, fps, duration, size),
never the path. So the TSPO-backed function is bound to its video:

```python
from transformers.video_utils import load_video
fn = TSPOSampleIndices(sampler, "match.mp4", "Who scores?", k=16)
frames, metadata = load_video("match.mp4", sample_indices_fn=fn, backend="pyav")
fn.selection  # the Selection behind the indices (scores, timestamps)
```

For processors (``processor(videos=path_or_paths, text=...)``), :func:`use_tspo` swaps the video
processor's loader for the duration of a ``with`` block: each path's frames are chosen by TSPO
for its question, decoded by the sampler (upright, exact timestamps) and passed on with real
``VideoMetadata`` (source fps, total frames, chosen ``frames_indices``), so processors that read the
metadata (Qwen2.5-VL's ``second_per_grid_ts``) see the true sampling.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .._result import Selection
from ._timed import frame_clock

__all__ = ["TSPOSampleIndices", "load_video", "sample_indices_fn", "selection_metadata", "use_tspo"]


class TSPOSampleIndices:
    """A ``sample_indices_fn`` for transformers that returns TSPO's chosen frame indices.

    Args:
        sampler: a :class:`~tspo_sampler.TemporalSampler`.
        video: the video the indices are for (a path; anything ``select_frames`` accepts works when the
            callable is used outside ``load_video``).
        question: the question to select frames for.
        k: number of frames.
        **select_options: passed to ``sampler.select_frames`` (``method``, ``fps``, ``max_candidates``,
            ``window_size``).

    Calling it runs the selection (``return_frames=False``), keeps it in :attr:`selection`, and
    returns the unique chosen indices, ascending and clipped to ``metadata.total_num_frames`` (the
    decoders of transformers decode each index once, in order). The selection is reused when the
    callable is called again.
    """

    def __init__(self, sampler: Any, video: Any, question: str, k: int = 16, **select_options: Any) -> None:
        self.sampler = sampler
        self.video = video
        self.question = question
        self.k = int(k)
        self.select_options = select_options
        self.selection: Selection | None = None

    def select(self) -> Selection:
        if self.selection is None:
            self.selection = self.sampler.select_frames(
                self.video, self.question, self.k, return_frames=False, **self.select_options
            )
        return self.selection

    def __call__(self, metadata: Any = None, **kwargs: Any) -> np.ndarray:
        indices = np.unique(np.asarray(self.select().indices, dtype=np.int64))
        total = getattr(metadata, "total_num_frames", None) if metadata is not None else None
        if total:
            indices = np.unique(np.clip(indices, 0, int(total) - 1))
        return indices

    def __repr__(self) -> str:
        return f"TSPOSampleIndices(video={self.video!r}, question={self.question!r}, k={self.k})"


def sample_indices_fn(
    sampler: Any, video: Any, question: str, k: int = 16, **select_options: Any
) -> TSPOSampleIndices:
    """``TSPOSampleIndices(sampler, video, question, k, **select_options)``."""
    return TSPOSampleIndices(sampler, video, question, k, **select_options)


def load_video(
    sampler: Any,
    video: str | os.PathLike[str],
    question: str,
    k: int = 16,
    *,
    backend: str = "pyav",
    **select_options: Any,
) -> tuple[np.ndarray, Any, Selection]:
    """``transformers.video_utils.load_video`` with TSPO's indices: ``(frames, metadata, selection)``."""
    from transformers.video_utils import load_video as hf_load_video

    fn = TSPOSampleIndices(sampler, str(video), question, k, **select_options)
    frames, metadata = hf_load_video(str(video), backend=backend, sample_indices_fn=fn)
    return frames, metadata, fn.select()


def selection_metadata(selection: Selection, frame_shape: Sequence[int] | None = None) -> Any:
    """``VideoMetadata`` describing the chosen frames of a selection: source fps, total frames and
    ``frames_indices`` = chosen indices on constant-frame-rate files. On variable-frame-rate files,
    where ``index / fps`` is not the presentation time, a millisecond clock (``fps=1000``,
    ``round(t * 1000)``), so that processors printing ``frames_indices / fps`` (Qwen3-VL, GLM,
    SmolVLM2) print the real times."""
    from transformers.video_utils import VideoMetadata

    fps = float(selection.fps) if selection.fps else None
    indices = [int(i) for i in selection.indices]
    if fps and indices:
        fps, indices = frame_clock(indices, selection.timestamps, fps)
    duration = float(selection.duration) if selection.duration else None
    last = max(indices) + 1 if indices else 0
    total = max(int(round(duration * fps)), last) if fps and duration else max(last, len(selection.candidate_indices))
    height = width = None
    if frame_shape is not None:
        height, width = int(frame_shape[0]), int(frame_shape[1])
    return VideoMetadata(
        total_num_frames=total,
        fps=fps,
        width=width,
        height=height,
        duration=duration,
        video_backend="tspo",
        frames_indices=indices,
    )


@contextlib.contextmanager
def use_tspo(
    processor: Any, sampler: Any, question: str | Sequence[str], k: int = 16, **select_options: Any
) -> Iterator[list[Selection]]:
    """Within the block, video paths given to ``processor`` (or a bare video processor) get TSPO frames.

    ``question`` is one string for all videos or one per video, in the order the videos are passed
    (several processor calls consume the questions in turn). Yields the list that receives each
    :class:`~tspo_sampler._result.Selection` as it is made::

        with use_tspo(processor, sampler, question, k=16) as selections:
            inputs = processor(text=[prompt], videos=["match.mp4"], return_tensors="pt")
        print(selections[0].timestamps)

    The frames come from the sampler's decoder, so no transformers video backend (torchcodec,
    torchvision) is needed. Only this processor instance is affected; the previous loader is restored
    on exit.
    """
    video_processor = getattr(processor, "video_processor", processor)
    if not hasattr(video_processor, "fetch_videos"):
        raise TypeError(f"{type(processor).__name__} has no video processor with fetch_videos")
    questions = [question] if isinstance(question, str) else list(question)
    if not questions:
        raise ValueError("no question given")
    selections: list[Selection] = []

    def fetch_videos(video_url_or_urls: Any, sample_indices_fn: Any = None) -> Any:
        if isinstance(video_url_or_urls, (list, tuple)):
            return list(zip(*[fetch_videos(v) for v in video_url_or_urls], strict=True))
        if len(questions) == 1:
            q = questions[0]
        elif len(selections) < len(questions):
            q = questions[len(selections)]
        else:
            raise ValueError(f"use_tspo got {len(questions)} questions but more videos than that")
        sel = sampler.select_frames(video_url_or_urls, q, k, return_frames=True, **select_options)
        selections.append(sel)
        frames = np.asarray(sel.frames)
        return frames, selection_metadata(sel, frames.shape[1:3])

    had_own = "fetch_videos" in vars(video_processor)
    previous = vars(video_processor).get("fetch_videos")
    video_processor.fetch_videos = fetch_videos
    try:
        yield selections
    finally:
        if had_own:
            video_processor.fetch_videos = previous
        else:
            del video_processor.fetch_videos
