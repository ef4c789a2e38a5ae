"""Frames with their real times for processors that write times from ``VideoMetadata``.

Qwen3-VL, GLM-4.1V/4.6V, SmolVLM2, Gemma 4 and Molmo2 render each frame's (or temporal patch's)
time into the prompt as ``frames_indices[i] / fps``. That is the presentation time only on a
constant-frame-rate file; on a variable-frame-rate file ``index / average fps`` can be off by many
seconds. :func:`frame_clock` picks an ``(fps, frames_indices)`` pair whose quotient IS the
presentation time, and :func:`timed_video_batch` builds the processor call around it (frames passed
as chosen, ``do_sample_frames=False``, left padding), shared by the ``qwen3_vl`` and ``metadata``
adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._result import Selection
from ._base import move_to, selection_frames, video_duration

__all__ = [
    "CLOCK_FPS",
    "ODD_FRAMES",
    "even_frames",
    "frame_clock",
    "frame_limit",
    "patched_frames",
    "timed_metadata",
    "timed_video_batch",
]

ODD_FRAMES = ("duplicate", "drop", "error")
# The clock used when source indices do not give the real times: a tick per millisecond.
CLOCK_FPS = 1000.0
# Source indices count as exact when index / fps is within this of the presentation time (seconds).
_EXACT = 5e-4


def even_frames(
    selection: Selection, odd_frames: str = "duplicate", *, need_frames: bool = True, patch: int = 2
) -> tuple[np.ndarray | None, list[int], list[float]]:
    """Frames, source indices and timestamps with a count divisible by ``patch`` (the temporal patch).

    ``odd_frames``: ``"duplicate"`` repeats the last frame (what the processors would do on their
    own), ``"drop"`` leaves out the chosen frame with the lowest TSPO score, ``"error"`` raises. The
    returned timestamps are those of the frames the model sees (a duplicated frame repeats its time).
    With ``need_frames=False`` the frames may be ``None``.
    """
    if odd_frames not in ODD_FRAMES:
        raise ValueError(f"odd_frames must be one of {ODD_FRAMES}, got {odd_frames!r}")
    frames = selection_frames(selection) if need_frames or selection.frames is not None else None
    indices = [int(i) for i in selection.indices]
    times = [float(t) for t in selection.timestamps]
    k = len(indices)
    if k == 0:
        raise ValueError("the selection has no frames")
    if patch <= 1 or k % patch == 0:
        return frames, indices, times
    if odd_frames == "error":
        raise ValueError(f"this model needs an even number of frames (temporal patch {patch}), got k={k}")
    if odd_frames == "drop" and k > 1 and patch == 2:
        drop = _lowest_scored(selection)
        keep = [i for i in range(k) if i != drop]
        return (None if frames is None else frames[keep], [indices[i] for i in keep], [times[i] for i in keep])
    pad = -k % patch
    frames = None if frames is None else np.concatenate([frames] + [frames[-1:]] * pad, axis=0)
    return frames, indices + indices[-1:] * pad, times + times[-1:] * pad


def _lowest_scored(selection: Selection) -> int:
    """Position (among the chosen frames) of the chosen frame with the lowest TSPO score."""
    scores = np.asarray(selection.scores, dtype=np.float64).reshape(-1)
    positions = list(selection.positions)
    if len(positions) == len(selection.indices) and scores.size and max(positions) < scores.size:
        return int(np.argmin(scores[positions]))
    return len(selection.indices) - 1


def patched_frames(
    selection: Selection, *, odd_frames: str, own_patches: bool, patch: int, need_frames: bool = True
) -> tuple[np.ndarray | None, list[int], list[float]]:
    """Frames as the model should see them: each repeated ``patch`` times when ``own_patches`` (every
    pick gets its own temporal patch and so its own exact time, at ``patch`` times the visual tokens),
    else padded to a multiple of ``patch`` by :func:`even_frames`."""
    if not own_patches or patch <= 1:
        return even_frames(selection, odd_frames, need_frames=need_frames, patch=patch)
    frames = selection_frames(selection) if need_frames or selection.frames is not None else None
    if len(selection.indices) == 0:
        raise ValueError("the selection has no frames")
    indices = [int(i) for i in selection.indices for _ in range(patch)]
    times = [float(t) for t in selection.timestamps for _ in range(patch)]
    return (None if frames is None else np.repeat(frames, patch, axis=0)), indices, times


def frame_clock(
    indices: Sequence[int], times: Sequence[float], fps: float | None, *, source_fps_only: bool = False
) -> tuple[float, list[int]]:
    """``(fps, frames_indices)`` with ``frames_indices[i] / fps`` equal to ``times[i]``.

    Constant frame rate (every ``index / fps`` within 0.5 ms of its time): the source fps and the
    real source indices. Otherwise (variable frame rate, or a stream that does not start at 0) a
    millisecond clock, ``(1000, round(t * 1000))``; with ``source_fps_only`` the source fps is kept
    and the indices are ``round(t * fps)`` (times then exact to half a frame interval).
    """
    times = [float(t) for t in times]
    if fps and fps > 0:
        fps = float(fps)
        if all(abs(int(i) / fps - t) <= _EXACT for i, t in zip(indices, times, strict=True)):
            return fps, [int(i) for i in indices]
        if source_fps_only:
            return fps, [int(round(t * fps)) for t in times]
    return CLOCK_FPS, [int(round(t * CLOCK_FPS)) for t in times]


def timed_metadata(
    selection: Selection, indices: Sequence[int], times: Sequence[float], frame_size: Sequence[int] | None = None
) -> Any:
    """``transformers.video_utils.VideoMetadata`` whose ``timestamps`` are the frames' presentation times."""
    from transformers.video_utils import VideoMetadata

    fps, clock_indices = frame_clock(indices, times, selection.fps)
    duration = video_duration(selection) or (max(times) if len(times) else 0.0)
    total = max(int(round(duration * fps)), max(clock_indices) + 1)
    height, width = (int(frame_size[0]), int(frame_size[1])) if frame_size is not None else (None, None)
    return VideoMetadata(
        total_num_frames=total,
        fps=fps,
        width=width,
        height=height,
        duration=float(duration),
        video_backend="tspo",
        frames_indices=clock_indices,
    )


# Video processors whose ``num_frames`` is the most frames they ever sample (for GLM it is only a default).
_NUM_FRAMES_IS_MAX = frozenset({"SmolVLMVideoProcessor", "Gemma4VideoProcessor", "Molmo2VideoProcessor"})


def frame_limit(processor: Any) -> int | None:
    """The most frames the processor's video processor samples: ``max_frames`` (Qwen3-VL: 768), or
    ``num_frames`` where that is the cap (SmolVLM2's ``video_sampling.max_frames``, Gemma 4, Molmo2)."""
    vp = getattr(processor, "video_processor", processor)
    names = ["max_frames"]
    if any(c.__name__ in _NUM_FRAMES_IS_MAX for c in type(vp).__mro__):
        names.append("num_frames")
    for name in names:
        value = getattr(vp, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def temporal_patch(processor: Any) -> int:
    vp = getattr(processor, "video_processor", processor)
    value = getattr(vp, "temporal_patch_size", None)
    return int(value) if isinstance(value, int) and value > 0 else 1


def reference_pixel_cap(processor: Any, kwargs: dict[str, Any]) -> None:
    """Choose qwen-vl-utils' per-frame pixel cap (``cap_pixels_per_frame=True``) when neither the call
    nor the video processor chose, instead of transformers' uncapped default and its warning."""
    vp = getattr(processor, "video_processor", processor)
    if hasattr(vp, "cap_pixels_per_frame") and getattr(vp, "cap_pixels_per_frame", None) is None:
        kwargs.setdefault("cap_pixels_per_frame", True)


def timed_video_batch(
    processor: Any,
    selections: Sequence[Selection],
    questions: Sequence[str],
    messages: Callable[[Selection, str], list[dict[str, Any]]],
    *,
    model_name: str,
    odd_frames: str = "duplicate",
    own_patches: bool = False,
    device: Any = None,
    dtype: Any = None,
    **processor_kwargs: Any,
) -> Any:
    """Left-padded processor batch with each video's real times in its ``VideoMetadata``.

    ``messages(selection, question)`` gives each row's chat. Raises when a selection has more frames
    than the processor allows (its ``max_frames``/``num_frames``).
    """
    patch = temporal_patch(processor)
    limit = frame_limit(processor)
    texts, videos, metas = [], [], []
    for sel, q in zip(selections, questions, strict=True):
        frames, indices, times = patched_frames(sel, odd_frames=odd_frames, own_patches=own_patches, patch=patch)
        if limit is not None and len(indices) > limit:
            raise ValueError(
                f"k={len(sel.indices)} gives {len(indices)} frames, more than the {limit} that {model_name}'s "
                "video processor allows; choose a smaller k"
            )
        metas.append(timed_metadata(sel, indices, times, frames.shape[1:3]))
        videos.append(frames)
        texts.append(processor.apply_chat_template(messages(sel, q), tokenize=False, add_generation_prompt=True))
    kwargs: dict[str, Any] = dict(padding=True, padding_side="left", return_tensors="pt", do_sample_frames=False)
    kwargs.update(processor_kwargs)
    reference_pixel_cap(processor, kwargs)
    batch = processor(text=texts, videos=videos, video_metadata=metas, **kwargs)
    return move_to(batch, device, dtype)
