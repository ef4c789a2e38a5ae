"""A drop-in for qwen-vl-utils' ``process_vision_info`` whose videos are TSPO's frames, with real times.

```python
from tspo_sampler.integrations.qwen_vl_utils import process_vision_info

images, videos, video_kwargs = process_vision_info(
    messages, sampler=sampler, k=16, return_video_kwargs=True, return_video_metadata=True
)
videos, metadata = map(list, zip(*videos))
inputs = processor(text=[text], images=images, videos=videos, video_metadata=metadata,
                   return_tensors="pt", **video_kwargs)  # video_kwargs == {"do_sample_frames": False}
```

Same arguments and return shapes as qwen-vl-utils 0.0.14, plus ``sampler``, ``k``, ``question``,
``method`` and selection options. Video entries given as paths are read by the sampler: TSPO picks
``k`` frames (the entry's ``nframes`` wins) for the question, which is taken from the text parts of
the message that holds the video unless ``question`` is given. Frames are resized by qwen-vl-utils'
rules (``min_pixels``, ``max_pixels``, ``total_pixels``, ``resized_height``/``resized_width``,
``image_patch_size``) and an odd count is padded with the last frame, as qwen-vl-utils does.

The metadata is real: the source ``fps``, ``total_num_frames``, ``duration`` and ``frames_indices``.
On constant-frame-rate files ``frames_indices`` are the chosen source indices. On variable-frame-rate
files ``index / average fps`` can be wrong by seconds, so there they are ``round(t * fps)`` for each
presentation time ``t``: the indices that make ``index / fps`` (what Qwen3-VL prints as
``<t seconds>``) the real time, to within half a frame interval. qwen-vl-utils itself fakes
``frames_indices = range(n)`` for frame lists, which under Qwen3-VL prints ``<0.0 seconds>``,
``<0.1 seconds>``...

Image entries and frame-list videos are left to qwen-vl-utils' own ``fetch_image``/``fetch_video``
(PIL images and local image files also work without it). qwen-vl-utils is imported only when needed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._result import Selection
from ..adapters._timed import frame_clock

__all__ = ["fetch_video", "process_vision_info", "smart_resize", "video_pixel_bounds"]

# qwen-vl-utils 0.0.14 constants (vision_process.py)
SPATIAL_MERGE_SIZE = 2
FRAME_FACTOR = 2
IMAGE_MIN_TOKEN_NUM = 4
IMAGE_MAX_TOKEN_NUM = 16384
VIDEO_MIN_TOKEN_NUM = 128
VIDEO_MAX_TOKEN_NUM = 768
MAX_RATIO = 200
FPS_MAX_FRAMES = 768


def smart_resize(
    height: int, width: int, factor: int, min_pixels: float | None = None, max_pixels: float | None = None
) -> tuple[int, int]:
    """qwen-vl-utils' rule: sides multiples of ``factor``, area within ``[min_pixels, max_pixels]``,
    aspect ratio kept as closely as possible."""
    max_pixels = IMAGE_MAX_TOKEN_NUM * factor**2 if max_pixels is None else max_pixels
    min_pixels = IMAGE_MIN_TOKEN_NUM * factor**2 if min_pixels is None else min_pixels
    if max_pixels < min_pixels:
        raise ValueError(f"max_pixels ({max_pixels}) must be at least min_pixels ({min_pixels})")
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"absolute aspect ratio must be smaller than {MAX_RATIO}, got {height}x{width}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def video_pixel_bounds(ele: dict[str, Any], nframes: int, image_patch_size: int = 14) -> tuple[float, float]:
    """``(min_pixels, max_pixels)`` per frame for a video element, as qwen-vl-utils derives them."""
    factor = image_patch_size * SPATIAL_MERGE_SIZE
    min_pixels = ele.get("min_pixels", VIDEO_MIN_TOKEN_NUM * factor * factor)
    seq_len = int(float(os.environ.get("MODEL_SEQ_LEN", 128000)))
    total_pixels = ele.get("total_pixels", seq_len * factor * factor * 0.9)
    max_pixels = min(VIDEO_MAX_TOKEN_NUM * factor * factor, total_pixels / nframes * FRAME_FACTOR)
    max_pixels = max(max_pixels, int(min_pixels * 1.05))
    return min_pixels, min(ele.get("max_pixels", max_pixels), max_pixels)


def _resize(frames: np.ndarray, ele: dict[str, Any], image_patch_size: int) -> torch.Tensor:
    """``k x H x W x 3`` uint8 -> ``k x 3 x h x w`` float (integer values), bicubic with antialiasing."""
    factor = image_patch_size * SPATIAL_MERGE_SIZE
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    n, _, height, width = video.shape
    if "resized_height" in ele and "resized_width" in ele:
        h, w = smart_resize(ele["resized_height"], ele["resized_width"], factor)
    else:
        min_pixels, max_pixels = video_pixel_bounds(ele, n, image_patch_size)
        h, w = smart_resize(height, width, factor, min_pixels=min_pixels, max_pixels=max_pixels)
    out = torch.nn.functional.interpolate(
        video.float(), size=(h, w), mode="bicubic", align_corners=False, antialias=True
    )
    return out.round_().clamp_(0, 255)


def _video_path(video: Any) -> str | None:
    if isinstance(video, os.PathLike):
        return os.fspath(video)
    if isinstance(video, str):
        if video.startswith(("http://", "https://")):
            raise ValueError(f"video {video!r}: TSPO reads local files; download it first")
        return video[7:] if video.startswith("file://") else video
    return None


def fetch_video(
    ele: dict[str, Any],
    *,
    sampler: Any,
    question: str,
    k: int = 16,
    method: str = "topk",
    image_patch_size: int = 14,
    **select_options: Any,
) -> tuple[torch.Tensor, dict[str, Any], float, Selection]:
    """One video element: ``(frames k x 3 x H x W float, metadata, sample_fps, selection)``."""
    path = _video_path(ele.get("video"))
    if path is None:
        raise TypeError(f"fetch_video takes a video path, got {type(ele.get('video')).__name__}")
    for key in ("video_start", "video_end"):
        if ele.get(key) is not None:
            raise ValueError(f"video {path!r}: {key} is not supported with TSPO selection (cut the clip first)")
    k = _frame_count(ele.get("nframes", k), path)
    if not 1 <= k <= FPS_MAX_FRAMES:
        raise ValueError(f"video {path!r}: k={k} frames; Qwen-VL models take 1 to {FPS_MAX_FRAMES} frames per video")
    sel = sampler.select_frames(path, question, k, method=method, return_frames=True, **select_options)
    frames = np.asarray(sel.frames)
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError(f"video {path!r}: the selection returned no frames")
    indices = [int(i) for i in sel.indices]
    times = [float(t) for t in sel.timestamps]
    if pad := -len(indices) % FRAME_FACTOR:
        frames = np.concatenate([frames] + [frames[-1:]] * pad, axis=0)
        indices += indices[-1:] * pad
        times += times[-1:] * pad
    video = _resize(frames, ele, image_patch_size)
    fps, frames_indices = frame_clock(indices, times, sel.fps, source_fps_only=True)
    duration = float(sel.duration) if sel.duration else max(times) + 1.0 / fps
    total = max(int(round(duration * fps)), max(frames_indices) + 1)
    metadata = {
        "fps": fps,
        "frames_indices": frames_indices,
        "total_num_frames": total,
        "duration": duration,
        "video_backend": "tspo",
    }
    return video, metadata, len(indices) / duration, sel


def _conversations(conversations: Sequence[Any]) -> list[list[dict[str, Any]]]:
    """One conversation (a list of message dicts) or a batch of them, as a list of conversations."""
    if isinstance(conversations, (str, bytes, dict)) or not isinstance(conversations, Sequence):
        raise TypeError(
            "conversations must be a list of messages ({'role': ..., 'content': [...]}) or a list of such "
            f"lists, got {type(conversations).__name__}"
        )
    if not conversations:
        raise ValueError("no messages given")
    batch = [conversations] if isinstance(conversations[0], dict) else conversations
    for i, conversation in enumerate(batch):
        if isinstance(conversation, (str, bytes)) or not isinstance(conversation, Sequence):
            raise TypeError(
                f"conversations[{i}] must be a message dict or a list of them, got {type(conversation).__name__} "
                f"{conversation!r:.40}"
            )
        for j, message in enumerate(conversation):
            if not isinstance(message, dict):
                where = f"conversations[{j}]" if batch is not conversations else f"conversations[{i}][{j}]"
                raise TypeError(
                    f"{where} must be a message dict ({{'role': ..., 'content': [...]}}), "
                    f"got {type(message).__name__} {message!r:.40}"
                )
    return [list(c) for c in batch]


def _frame_count(value: Any, path: str) -> int:
    """An element's ``nframes`` as an int: whole numbers only (``8``, ``8.0``, ``"8"``), else a message."""
    try:
        k = float(value) if isinstance(value, str) else value
        if isinstance(k, bool) or not float(k).is_integer():
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"video {path!r}: nframes must be a whole number of frames, got {value!r}") from None
    return int(k)


_VISION = ("image", "image_url", "video")


def _is_vision(ele: Any) -> bool:
    if not isinstance(ele, dict):
        return False
    return any(key in ele for key in _VISION) or ele.get("type", "text") in _VISION


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(str(c.get("text", "")) for c in content or [] if isinstance(c, dict) and c.get("type") == "text")


def _question(message: dict[str, Any], conversation: list[dict[str, Any]], ele: dict[str, Any]) -> str:
    """The text parts of the message holding the video, else of the conversation's user turns."""
    q = _text_of(message) or "\n".join(_text_of(m) for m in conversation if m.get("role") == "user")
    if not q.strip():
        raise ValueError(f"no question for video {ele['video']!r}: its message has no text; pass question=")
    return q


def _fetch_image(ele: dict[str, Any], image_patch_size: int) -> Any:
    try:
        from qwen_vl_utils import fetch_image
    except ImportError:
        return _fetch_image_locally(ele, image_patch_size)
    return fetch_image(ele, image_patch_size=image_patch_size)


def _fetch_image_locally(ele: dict[str, Any], image_patch_size: int) -> Any:
    from PIL import Image

    image = ele.get("image", ele.get("image_url"))
    if isinstance(image, str) and image.startswith(("http://", "https://", "data:")):
        raise ImportError(f"image {image[:40]!r}...: install qwen-vl-utils to fetch URLs and data URLs")
    if not isinstance(image, Image.Image):
        image = Image.open(image[7:] if isinstance(image, str) and image.startswith("file://") else image)
    image = image.convert("RGB")
    factor = image_patch_size * SPATIAL_MERGE_SIZE
    if "resized_height" in ele and "resized_width" in ele:
        h, w = smart_resize(ele["resized_height"], ele["resized_width"], factor)
    else:
        min_pixels = ele.get("min_pixels", IMAGE_MIN_TOKEN_NUM * factor**2)
        max_pixels = ele.get("max_pixels", IMAGE_MAX_TOKEN_NUM * factor**2)
        h, w = smart_resize(image.height, image.width, factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return image.resize((w, h))


def _fetch_frame_list(ele: dict[str, Any], image_patch_size: int, return_video_metadata: bool) -> tuple[Any, float]:
    try:
        from qwen_vl_utils import fetch_video as qvu_fetch_video
    except ImportError as err:
        raise ImportError("a video given as a list of frames needs qwen-vl-utils (pip install qwen-vl-utils)") from err
    return qvu_fetch_video(
        ele,
        image_patch_size=image_patch_size,
        return_video_sample_fps=True,
        return_video_metadata=return_video_metadata,
    )


def process_vision_info(
    conversations: Sequence[Any],
    *,
    sampler: Any,
    k: int = 16,
    question: str | None = None,
    method: str = "topk",
    return_video_kwargs: bool = False,
    return_video_metadata: bool = False,
    image_patch_size: int = 14,
    **select_options: Any,
) -> tuple[Any, ...]:
    """``(images, videos)`` or ``(images, videos, video_kwargs)``, as qwen-vl-utils returns them.

    ``images``/``videos`` are ``None`` when there are none. Each video is a ``k x 3 x H x W`` float
    tensor, or ``(tensor, metadata dict)`` with ``return_video_metadata``. ``video_kwargs`` is
    ``{"do_sample_frames": False}``, plus ``"fps"`` (one sample rate per video) without metadata.
    ``sampler`` is a :class:`~tspo_sampler.TemporalSampler`; ``select_options`` go to its
    ``select_frames``. Use ``image_patch_size=16`` for Qwen3-VL.
    """
    images: list[Any] = []
    videos: list[Any] = []
    sample_fps: list[float] = []
    for conversation in _conversations(conversations):
        for message in conversation:
            content = message.get("content")
            if not isinstance(content, list):
                continue
            for ele in filter(_is_vision, content):
                if "image" in ele or "image_url" in ele:
                    images.append(_fetch_image(ele, image_patch_size))
                    continue
                if "video" not in ele:
                    raise ValueError("image, image_url or video should be in a vision element")
                if isinstance(ele["video"], (list, tuple)):
                    video, fps = _fetch_frame_list(ele, image_patch_size, return_video_metadata)
                    videos.append(video)
                    sample_fps.append(fps)
                    continue
                q = question or _question(message, conversation, ele)
                video, metadata, fps, _ = fetch_video(
                    ele, sampler=sampler, question=q, k=k, method=method, image_patch_size=image_patch_size,
                    **select_options,
                )
                videos.append((video, metadata) if return_video_metadata else video)
                sample_fps.append(fps)
    video_kwargs: dict[str, Any] = {"do_sample_frames": False}
    if not return_video_metadata:
        video_kwargs["fps"] = sample_fps
    out = (images or None, videos or None)
    return (*out, video_kwargs) if return_video_kwargs else out
