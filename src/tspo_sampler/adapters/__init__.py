"""Adapters: a TSPO :class:`~tspo_sampler._result.Selection` straight into a video-LLM.

```python
from tspo_sampler.adapters import qwen2_5_vl
inputs = qwen2_5_vl.prepare_inputs(processor, selection, question)
```

Submodules (imported on first use): ``qwen2_5_vl``, ``llava_video``, ``internvl`` (each with
``prepare_inputs``, ``build_messages`` and an :class:`Answerer`), and ``transformers_video``
(a TSPO-backed ``sample_indices_fn`` for ``transformers.video_utils.load_video`` and processors).
"""

from __future__ import annotations

import importlib
from typing import Any

from ._base import MC_INSTRUCTION, TIME_INSTRUCTION, Answerer, option_token_ids, time_instruction

__all__ = [
    "ANSWERERS",
    "Answerer",
    "MC_INSTRUCTION",
    "TIME_INSTRUCTION",
    "answerer_for",
    "internvl",
    "llava_video",
    "option_token_ids",
    "qwen2_5_vl",
    "time_instruction",
    "transformers_video",
]

_SUBMODULES = ("qwen2_5_vl", "llava_video", "internvl", "transformers_video")

# model class name -> (adapter module, Answerer class name)
ANSWERERS = {
    "Qwen2_5_VLForConditionalGeneration": ("qwen2_5_vl", "Qwen2_5_VLAnswerer"),
    "LlavaOnevisionForConditionalGeneration": ("llava_video", "LlavaVideoAnswerer"),
    "InternVLForConditionalGeneration": ("internvl", "InternVLAnswerer"),
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def answerer_for(model: Any, processor: Any, **prepare_options: Any) -> Answerer:
    """The :class:`Answerer` matching ``model``'s class (Qwen2.5-VL, LLaVA-OneVision/Video, InternVL)."""
    for cls in type(model).__mro__:
        if cls.__name__ in ANSWERERS:
            module, name = ANSWERERS[cls.__name__]
            return getattr(importlib.import_module(f".{module}", __name__), name)(model, processor, **prepare_options)
    raise TypeError(f"no adapter for {type(model).__name__}; supported: {sorted(ANSWERERS)}")
