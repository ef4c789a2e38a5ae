"""``qwen2_5_vl_tspo`` and ``qwen3_vl_tspo``: lmms-eval's Qwen chat models with TSPO's frames.

The upstream classes read frames through the module-level ``qwen_vl_utils.process_vision_info`` of their
own module. During ``generate_until`` that name points to a wrapper: each video element that TSPO can read
becomes the TSPO-chosen frames, resized by qwen-vl-utils' rules for that element (``min_pixels``,
``max_pixels``, ``total_pixels``, the model's patch size) as the upstream path loader would, with the
adapters' real metadata, so the chosen frames' times reach the model. Images, and videos left to upstream
(fallbacks), go through the real ``process_vision_info``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..._result import Selection
from ..qwen_vl_utils import _resize  # qwen-vl-utils' resize rules (the adapters' drop-in)
from ._plugin import PendingDoc, TSPOMixin

__all__ = ["Qwen2_5_VL_TSPO", "Qwen3_VL_TSPO"]


def _is_video(ele: Any) -> bool:
    return isinstance(ele, dict) and ("video" in ele or ele.get("type") == "video")


class _QwenTSPO(TSPOMixin):
    """Shared by both Qwen classes: the ``process_vision_info`` wrapper."""

    tspo_default_k_attr = "max_num_frames"
    _chat_module: Any = None  # the upstream chat module whose process_vision_info is swapped

    tspo_frames: Callable[[Selection], tuple[Any, Any]]  # each Qwen class: frames and metadata for its processor

    def generate_until(self, requests: list[Any]) -> list[Any]:
        module = self._chat_module
        original = module.process_vision_info
        module.process_vision_info = self._tspo_vision_info(original)
        try:
            return super().generate_until(self.tspo_wrap_requests(requests))
        finally:
            module.process_vision_info = original
            self.tspo_summary()

    def _tspo_video(self, ele: dict[str, Any], pending: PendingDoc | None, patch: int) -> tuple[Any, Any] | None:
        """``(frames k x 3 x H x W, metadata)`` for a video element, resized by qwen-vl-utils' rules, or
        ``None`` to leave the element to upstream."""
        if pending is None:
            return None
        if "video_start" in ele or "video_end" in ele:
            self._tspo_fallback(pending, ele.get("video"), "clips (video_start/video_end) are left to upstream")
            return None
        sel = self.tspo_select(pending, ele.get("video"))
        if sel is None:
            return None
        frames, meta = self.tspo_frames(sel)
        return _resize(frames, ele, patch), meta

    def _tspo_vision_info(self, original: Any) -> Any:
        def process_vision_info(conversations: Any, *args: Any, **kwargs: Any) -> Any:
            docs = self.tspo_take_pending()
            batched = bool(conversations) and isinstance(conversations[0], list)
            convs = conversations if batched else [conversations]
            if len(docs) != len(convs):
                self.tspo_mismatch(len(docs), len(convs))
                docs = [None] * len(convs)
            patch = int(kwargs.get("image_patch_size", 14))
            upstream_convs, ours = [], []  # ours: one entry per video element, None where upstream reads it
            for conv, pending in zip(convs, docs, strict=True):
                new_conv = []
                for msg in conv:
                    content = msg.get("content") if isinstance(msg, dict) else None
                    if not isinstance(content, list):
                        new_conv.append(msg)
                        continue
                    parts = []
                    for ele in content:
                        got = self._tspo_video(ele, pending, patch) if _is_video(ele) else None
                        if _is_video(ele):
                            ours.append(got)
                        if got is None:
                            parts.append(ele)
                    new_conv.append({**msg, "content": parts})
                upstream_convs.append(new_conv)
            out = original(upstream_convs if batched else upstream_convs[0], *args, **kwargs)
            return _merge(out, ours, bool(kwargs.get("return_video_metadata")))

        return process_vision_info


def _merge(out: Any, ours: list[tuple[Any, Any] | None], with_metadata: bool) -> Any:
    """qwen-vl-utils' result with TSPO's videos put back where their elements were."""
    if not any(o is not None for o in ours) or not isinstance(out, tuple) or len(out) < 2:
        return out
    upstream = iter(out[1] or [])
    videos = [next(upstream) if o is None else (o if with_metadata else o[0]) for o in ours]
    rest = list(out[2:])
    if rest and isinstance(rest[0], dict) and isinstance(rest[0].get("fps"), list):  # no-metadata form
        fps = iter(rest[0]["fps"])
        rest[0] = {**rest[0], "fps": [next(fps) if o is None else float(o[1].sampled_fps) for o in ours]}
    return (out[0], videos, *rest)


def _chat(name: str) -> Any:
    import importlib

    return importlib.import_module(f"lmms_eval.models.chat.{name}")


_qwen25 = _chat("qwen2_5_vl")
_qwen3 = _chat("qwen3_vl")


class Qwen2_5_VL_TSPO(_QwenTSPO, _qwen25.Qwen2_5_VL):
    """lmms-eval ``qwen2_5_vl`` (chat) with TSPO frames.

    ``timestamps=metadata`` (default) gives the processor the real source fps and chosen indices;
    ``timestamps=uniform`` presents the frames as a 2 fps clip, as the TSPO paper's evaluation did.
    """

    is_simple = False
    _chat_module = _qwen25

    def __init__(self, **kwargs: Any) -> None:
        from ...adapters import qwen2_5_vl

        opts, rest = self.split_tspo_args(dict(kwargs))
        mode = str(rest.pop("timestamps", "metadata"))
        if mode not in ("metadata", "uniform"):
            from ._plugin import _fail

            _fail(f"timestamps={mode!r}: qwen2_5_vl_tspo takes metadata or uniform")
        self.tspo_timestamps = mode
        self._adapter = qwen2_5_vl
        self.tspo_setup(opts, rest.get("device", "cuda"))
        super().__init__(**rest)

    def tspo_frames(self, sel: Selection) -> tuple[Any, Any]:
        frames, indices, _ = self._adapter.even_frames(sel, "duplicate")
        meta = self._adapter.video_metadata(sel, indices, timestamps=self.tspo_timestamps,
                                            frame_size=frames.shape[1:3])
        return frames, meta


class Qwen3_VL_TSPO(_QwenTSPO, _qwen3.Qwen3_VL):
    """lmms-eval ``qwen3_vl`` (chat) with TSPO frames; each ``<t seconds>`` marker is the real time."""

    is_simple = False
    _chat_module = _qwen3

    def __init__(self, **kwargs: Any) -> None:
        opts, rest = self.split_tspo_args(dict(kwargs))
        self.tspo_setup(opts, rest.get("device", "cuda"))
        super().__init__(**rest)

    def tspo_frames(self, sel: Selection) -> tuple[Any, Any]:
        from ...adapters._timed import patched_frames, timed_metadata

        frames, indices, times = patched_frames(sel, odd_frames="duplicate", own_patches=False, patch=2)
        return frames, timed_metadata(sel, indices, times, frame_size=frames.shape[1:3])
