"""``llava_onevision_tspo`` and ``internvl_hf_tspo``: lmms-eval's Hugging Face LLaVA and InternVL chat models
with TSPO's frames.

Both upstream classes hand video paths to the processor (``processor(videos=[path], ...)``), which then
samples frames itself. During ``generate_until`` the processor attribute is a thin proxy: its ``__call__``
swaps each path for the TSPO-chosen frames (``uint8`` ``T x H x W x 3``) and turns the processor's own
sampling off (``do_sample_frames=False``); everything else (chat template, tokenizer) is the processor.
Neither model writes frame times into its prompt, so no metadata is needed.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._plugin import TSPOMixin

__all__ = ["InternVLHf_TSPO", "LlavaOneVision_TSPO"]

_SAMPLING_KWARGS = ("num_frames", "fps", "do_sample_frames")


class _TSPOProcessor:
    """A processor whose ``__call__`` feeds TSPO frames instead of video paths."""

    def __init__(self, processor: Any, owner: TSPOMixin) -> None:
        self._processor = processor
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._processor, name)

    def __call__(self, *args: Any, videos: Any = None, **kwargs: Any) -> Any:
        owner = self._owner
        if isinstance(kwargs.get("images"), (list, tuple)) and len(kwargs["images"]) == 0:
            kwargs["images"] = None  # llava_hf passes images=[] for a video-only doc; image processors fail on it
        docs = owner.tspo_take_pending()
        if videos:
            paths = list(videos) if isinstance(videos, (list, tuple)) else [videos]
            if len(docs) != 1:  # the upstream classes run one doc per call
                owner.tspo_mismatch(len(docs), len(paths))
            else:
                selections = [owner.tspo_select(docs[0], p) for p in paths]
                if all(s is not None for s in selections):
                    videos = [s.frames for s in selections]
                    kwargs = {k: v for k, v in kwargs.items() if k not in _SAMPLING_KWARGS}
                    kwargs["do_sample_frames"] = False
                # else: at least one video of this doc falls back, and the whole doc keeps upstream frames
        return self._processor(*args, videos=videos, **kwargs)


class _ProcessorTSPO(TSPOMixin):
    _processor_attr = "processor"

    def __init__(self, **kwargs: Any) -> None:
        opts, rest = self.split_tspo_args(dict(kwargs))
        self.tspo_setup(opts, rest.get("device", "cuda"))
        super().__init__(**rest)

    def generate_until(self, requests: list[Any]) -> list[Any]:
        original = getattr(self, self._processor_attr)
        setattr(self, self._processor_attr, _TSPOProcessor(original, self))
        try:
            return super().generate_until(self.tspo_wrap_requests(requests))
        finally:
            setattr(self, self._processor_attr, original)
            self.tspo_summary()


_llava_hf = importlib.import_module("lmms_eval.models.chat.llava_hf")
_internvl_hf = importlib.import_module("lmms_eval.models.chat.internvl_hf")


class LlavaOneVision_TSPO(_ProcessorTSPO, _llava_hf.LlavaHf):
    """lmms-eval ``llava_hf`` (chat; LLaVA-OneVision and LLaVA-Video ``-hf`` checkpoints) with TSPO frames."""

    is_simple = False
    tspo_default_k_attr = "max_frames_num"
    _processor_attr = "_image_processor"


class InternVLHf_TSPO(_ProcessorTSPO, _internvl_hf.InternVLHf):
    """lmms-eval ``internvl_hf`` (chat; InternVL3/3.5 ``-HF`` checkpoints) with TSPO frames."""

    is_simple = False
    tspo_default_k_attr = "num_frames"
