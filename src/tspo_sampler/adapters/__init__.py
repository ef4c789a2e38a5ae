"""Adapters: a TSPO :class:`~tspo_sampler._result.Selection` straight into a video-LLM.

```python
from tspo_sampler.adapters import qwen2_5_vl
inputs = qwen2_5_vl.prepare_inputs(processor, selection, question)
```

Or, for any supported processor, ``prepare_inputs(processor, selection, question, **options)``
picks the adapter from the processor's class.

Submodules (imported on first use): ``qwen2_5_vl``, ``qwen3_vl`` (also Qwen3-VL-MoE and Qwen3.5),
``llava_video``, ``internvl``, ``metadata`` (SmolVLM2, GLM-4.1V/4.6V, Gemma 4, Molmo2), each with
``prepare_inputs``, ``build_messages`` and an :class:`Answerer`, and ``transformers_video`` (a
TSPO-backed ``sample_indices_fn`` for ``transformers.video_utils.load_video`` and processors).
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
    "metadata",
    "option_token_ids",
    "prepare_inputs",
    "PROCESSORS",
    "qwen2_5_vl",
    "qwen3_vl",
    "time_instruction",
    "transformers_video",
]

_SUBMODULES = ("qwen2_5_vl", "qwen3_vl", "llava_video", "internvl", "metadata", "transformers_video")

# model class name -> (adapter module, Answerer class name)
ANSWERERS = {
    "Qwen2_5_VLForConditionalGeneration": ("qwen2_5_vl", "Qwen2_5_VLAnswerer"),
    "LlavaOnevisionForConditionalGeneration": ("llava_video", "LlavaVideoAnswerer"),
    "InternVLForConditionalGeneration": ("internvl", "InternVLAnswerer"),
    "Qwen3VLForConditionalGeneration": ("qwen3_vl", "Qwen3_VLAnswerer"),
    "Qwen3VLMoeForConditionalGeneration": ("qwen3_vl", "Qwen3_VLAnswerer"),
    "Qwen3_5ForConditionalGeneration": ("qwen3_vl", "Qwen3_VLAnswerer"),
    "Qwen3_5MoeForConditionalGeneration": ("qwen3_vl", "Qwen3_VLAnswerer"),
    "SmolVLMForConditionalGeneration": ("metadata", "MetadataVideoAnswerer"),
    "Glm4vForConditionalGeneration": ("metadata", "MetadataVideoAnswerer"),
    "Glm4vMoeForConditionalGeneration": ("metadata", "MetadataVideoAnswerer"),
    "Glm46VForConditionalGeneration": ("metadata", "MetadataVideoAnswerer"),
    "Gemma4ForConditionalGeneration": ("metadata", "MetadataVideoAnswerer"),
    "Molmo2ForConditionalGeneration": ("metadata", "MetadataVideoAnswerer"),
}

# processor class name -> adapter module (Qwen3-VL-MoE and Qwen3.5 use Qwen3VLProcessor)
PROCESSORS = {
    "Qwen2_5_VLProcessor": "qwen2_5_vl",
    "Qwen3VLProcessor": "qwen3_vl",
    "LlavaOnevisionProcessor": "llava_video",
    "InternVLProcessor": "internvl",
    "SmolVLMProcessor": "metadata",
    "Glm4vProcessor": "metadata",
    "Glm46VProcessor": "metadata",
    "Gemma4Processor": "metadata",
    "Molmo2Processor": "metadata",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def prepare_inputs(processor: Any, selection: Any, question: Any = None, **options: Any) -> Any:
    """Model inputs for ``selection`` and ``question`` through the adapter of ``processor``'s class.

    ``options`` go to that adapter's ``prepare_inputs`` (e.g. ``timestamps``, ``odd_frames``,
    ``device``, ``dtype``). Raises ``TypeError`` for a processor no adapter supports.
    """
    for cls in type(processor).__mro__:
        if cls.__name__ in PROCESSORS:
            module = importlib.import_module(f".{PROCESSORS[cls.__name__]}", __name__)
            return module.prepare_inputs(processor, selection, question, **options)
    raise TypeError(
        f"no TSPO adapter for the processor class {type(processor).__name__}; supported: {sorted(PROCESSORS)}"
    )


def answerer_for(model: Any, processor: Any, **prepare_options: Any) -> Answerer:
    """The :class:`Answerer` matching ``model``'s class (a key of :data:`ANSWERERS`)."""
    for cls in type(model).__mro__:
        if cls.__name__ in ANSWERERS:
            module, name = ANSWERERS[cls.__name__]
            return getattr(importlib.import_module(f".{module}", __name__), name)(model, processor, **prepare_options)
    raise TypeError(f"no adapter for {type(model).__name__}; supported: {sorted(ANSWERERS)}")
