"""vLLM: hand a TSPO :class:`~tspo_sampler.Selection` to vLLM offline or through its OpenAI server.

vLLM is not imported here (it pins its own torch). The two functions build plain data in the forms
vLLM documents for pre-sampled videos:

* :func:`video_item` -> ``multi_modal_data={"video": [video_item(sel)]}`` for ``LLM.generate``: the frames
  (``uint8`` ``T x H x W x 3``) and the metadata dict that Qwen2.5-VL and Qwen3-VL require
  (``fps``, ``frames_indices``, ``total_num_frames``, ``duration``, ``do_sample_frames=False``).
* :func:`chat_content` -> a ``video_url`` content part (a ``data:video/jpeg;base64,...`` URL of the JPEG
  frames joined by commas, vLLM's frame-list form) and the ``media_io_kwargs`` to send with it, for
  ``/v1/chat/completions``.

Times: the model derives each frame's time as ``frames_indices[i] / fps``. To make that the frame's real
presentation time, the clock is the adapters' (:mod:`tspo_sampler.adapters.qwen3_vl`): the source fps and
indices on constant-frame-rate files, and on variable-frame-rate files (where ``index / average fps`` is
wrong) a millisecond clock, ``fps=1000`` and ``frames_indices = round(t * 1000)``. ``time_resolution=R``
forces ``round(t * R)`` ticks of ``1/R`` s.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._result import Selection
from ..adapters._base import selection_frames, video_duration
from ..adapters._timed import frame_clock as _clock

__all__ = ["chat_content", "frame_clock", "jpeg_data_url", "video_item", "video_metadata"]

DEFAULT_CLOCK = 1.0  # ticks per second when the selection carries no source fps


def frame_clock(selection: Selection, time_resolution: float | None = None) -> tuple[float, list[int]]:
    """``(fps, frames_indices)`` with ``frames_indices[i] / fps`` = the chosen frame's presentation time.

    By default the adapters' clock: the source fps and indices on constant-frame-rate files, a millisecond
    clock (``fps=1000``, ``round(t * 1000)``) otherwise. ``time_resolution`` (ticks per second) forces
    ``round(t * time_resolution)``.
    """
    times = np.asarray(selection.timestamps, dtype=np.float64)
    if times.size != len(selection.indices):
        raise ValueError(f"selection has {len(selection.indices)} indices but {times.size} timestamps")
    if times.size and (not np.all(np.isfinite(times)) or times.min() < 0):
        raise ValueError("selection.timestamps must be finite and non-negative")
    if time_resolution is not None:
        if isinstance(time_resolution, bool) or not math.isfinite(float(time_resolution)) or time_resolution <= 0:
            raise ValueError(f"time_resolution must be a positive number, got {time_resolution!r}")
        return float(time_resolution), [int(i) for i in np.rint(times * float(time_resolution)).astype(np.int64)]
    if selection.fps is None or selection.fps <= 0:
        # in-memory frames without timing: their positions are the only clock there is
        return DEFAULT_CLOCK, [int(i) for i in selection.indices]
    return _clock(selection.indices, times.tolist(), selection.fps)


def video_metadata(selection: Selection, *, time_resolution: float | None = None) -> dict[str, Any]:
    """The metadata dict vLLM's video parsers take next to pre-sampled frames (``do_sample_frames=False``)."""
    fps, indices = frame_clock(selection, time_resolution)
    if not indices:
        raise ValueError("the selection has no frames")
    duration = video_duration(selection)
    total = max(int(math.ceil(duration * fps - 1e-9)) if duration > 0 else 0, max(indices) + 1, len(indices))
    return {
        "fps": fps,
        "frames_indices": indices,
        "total_num_frames": total,
        "duration": float(duration) if duration > 0 else total / fps,
        "do_sample_frames": False,
        "video_backend": "tspo",
    }


def video_item(selection: Selection, *, time_resolution: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """``(frames_uint8_THWC, metadata)``: one entry of ``multi_modal_data["video"]`` for ``LLM.generate``.

    Example::

        sel = sampler.select_frames("clip.mp4", question, k=16)
        llm.generate({"prompt": prompt, "multi_modal_data": {"video": [video_item(sel)]}})
    """
    frames = selection_frames(selection)
    meta = video_metadata(selection, time_resolution=time_resolution)
    return np.ascontiguousarray(frames), meta


def _jpeg_base64(frame: np.ndarray, quality: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def jpeg_data_url(frames: Sequence[np.ndarray] | np.ndarray, *, quality: int = 90) -> str:
    """``data:video/jpeg;base64,<frame 1>,<frame 2>,...``: vLLM's URL form for a list of JPEG frames."""
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in 1..100, got {quality!r}")
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise ValueError(f"frames must be a non-empty T x H x W x 3 array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    return "data:video/jpeg;base64," + ",".join(_jpeg_base64(f, quality) for f in arr)


def chat_content(
    selection: Selection,
    question: str | None = None,
    *,
    quality: int = 90,
    time_resolution: float | None = None,
) -> dict[str, Any]:
    """The OpenAI-server form: ``{"content": [...], "media_io_kwargs": {"video": {...}}}``.

    ``content`` holds the ``video_url`` part (and a ``text`` part when ``question`` is given);
    ``media_io_kwargs`` tells the server to keep every sent frame (``num_frames=-1``), their real
    times (``fps`` and ``frames_indices``) and not to re-sample them. Send it as::

        req = chat_content(sel, question)
        client.chat.completions.create(
            model=..., messages=[{"role": "user", "content": req["content"]}],
            extra_body={"media_io_kwargs": req["media_io_kwargs"]},
        )
    """
    frames, meta = video_item(selection, time_resolution=time_resolution)
    url = jpeg_data_url(frames, quality=quality)
    content: list[dict[str, Any]] = [{"type": "video_url", "video_url": {"url": url}}]
    if question is not None:
        if not isinstance(question, str):
            raise TypeError(f"question must be a string, got {type(question).__name__}")
        content.append({"type": "text", "text": question})
    video_kwargs = {"num_frames": -1, **{k: v for k, v in meta.items() if k != "video_backend"}}
    return {"content": content, "media_io_kwargs": {"video": video_kwargs}}
