"""Find the ``video_url`` parts of a chat request and put the chosen frames in their place.

Two forwarded forms:

* ``images`` (any OpenAI-compatible VLM server): for each chosen frame in time order, a text part with its
  presentation time (``<12.0 s>``) and an ``image_url`` part holding the frame as a JPEG data URL.
* ``vllm``: one ``video_url`` part of JPEG frames with the request's ``media_io_kwargs`` giving their real
  times (:func:`tspo_sampler.integrations.vllm.chat_content`). ``media_io_kwargs`` is per request in vLLM,
  so this form carries one video per request.

Everything else in the request is left as the client sent it.
"""

from __future__ import annotations

import base64
import copy
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._result import Selection
from ._errors import BadRequestError

__all__ = ["UPSTREAM_FORMATS", "VideoPart", "find_videos", "frame_parts", "rewrite_request", "time_label"]

UPSTREAM_FORMATS = ("images", "vllm")


@dataclass(frozen=True)
class VideoPart:
    """One ``video_url`` part: where it sits (``messages[message].content[part]``), its URL and question."""

    message: int
    part: int
    url: object
    question: str

    @property
    def param(self) -> str:
        return f"messages[{self.message}].content[{self.part}]"


def _text_of(content: list[Any]) -> str:
    texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return " ".join(t.strip() for t in texts if isinstance(t, str) and t.strip())


def find_videos(body: dict[str, Any], question: str | None = None) -> list[VideoPart]:
    """Every ``video_url`` part of the request, each with its question: ``question`` when given (the request's
    ``tspo.question``), else the text parts of the same message."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequestError("messages must be a list of chat messages", param="messages")
    found = []
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "video_url":
                continue
            video = part.get("video_url")
            url = video.get("url") if isinstance(video, dict) else video
            text = question or _text_of(content)
            if not text:
                raise BadRequestError(
                    f"no question text: messages[{i}] has a video_url part but no text part to take the question "
                    "from (add one, or set tspo.question)", param=f"messages[{i}].content", code="no_question")
            found.append(VideoPart(i, j, url, text))
    return found


def time_label(seconds: float) -> str:
    """How a frame's presentation time is written before it: ``<12.0 s>``."""
    return f"<{seconds:.1f} s>"


def _jpeg_url(frame: np.ndarray, quality: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def frame_parts(selection: Selection, upstream_format: str, quality: int = 90) -> tuple[list[dict], dict | None]:
    """The parts that replace one ``video_url`` part, and (``vllm``) the ``media_io_kwargs`` to send with them."""
    if selection.frames is None:
        raise ValueError("the selection has no frames (select with return_frames=True)")
    if upstream_format == "vllm":
        from ..integrations.vllm import chat_content

        request = chat_content(selection, quality=quality)
        return request["content"], request["media_io_kwargs"]
    order = np.argsort(np.asarray(selection.timestamps, dtype=np.float64), kind="stable")
    parts: list[dict] = []
    for i in order:
        parts.append({"type": "text", "text": time_label(float(selection.timestamps[i]))})
        parts.append({"type": "image_url", "image_url": {"url": _jpeg_url(selection.frames[i], quality)}})
    return parts, None


def rewrite_request(
    body: dict[str, Any],
    videos: list[VideoPart],
    replacements: list[tuple[list[dict], dict | None]],
) -> dict[str, Any]:
    """A copy of ``body`` with each video part replaced by its frame parts (and ``media_io_kwargs`` merged)."""
    out = dict(body)
    out["messages"] = copy.copy(body["messages"])
    by_message: dict[int, list[tuple[VideoPart, list[dict]]]] = {}
    for video, (parts, _) in zip(videos, replacements, strict=True):
        by_message.setdefault(video.message, []).append((video, parts))
    for i, items in by_message.items():
        message = dict(out["messages"][i])
        content = list(message["content"])
        for video, parts in sorted(items, key=lambda item: item[0].part, reverse=True):  # later parts first
            content[video.part : video.part + 1] = parts
        message["content"] = content
        out["messages"][i] = message
    media = [kwargs for _, kwargs in replacements if kwargs is not None]
    if media:
        given = body.get("media_io_kwargs")
        out["media_io_kwargs"] = {**(given if isinstance(given, dict) else {}), **media[0]}
    return out
