"""Processors that print frame times read from ``VideoMetadata``: SmolVLM2, GLM-4.1V/4.6V, Gemma 4
and Molmo2.

Each of these processors writes a time next to every frame (or temporal patch), computed as
``frames_indices / fps`` from the metadata it is given, and by default (GLM, Gemma 4, Molmo2)
re-samples the frames it is handed. The adapter passes ``do_sample_frames=False`` and a
``VideoMetadata`` whose ``frames_indices / fps`` are the chosen frames' presentation times (source
indices on constant-frame-rate files, a millisecond clock on variable-frame-rate files), so each
model reads the real times in its own format:

* SmolVLM2: ``Frame from mm:ss:`` before every frame (whole seconds, truncated);
* GLM-4.1V: whole seconds after each temporal patch of two frames (the first frame's time);
  GLM-4.6V: ``x.x seconds``;
* Gemma 4: ``mm:ss`` before every frame;
* Molmo2: the time of every frame.

Models with a temporal patch (GLM) take frames in pairs; ``odd_frames`` and ``own_patches`` work as in
the Qwen3-VL adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._result import Selection
from ._base import Answerer, as_batch, video_turn
from ._timed import timed_video_batch

__all__ = ["PROCESSORS", "MetadataVideoAnswerer", "build_messages", "prepare_inputs"]

# processor class name -> the family name used in messages
PROCESSORS = {
    "SmolVLMProcessor": "SmolVLM2",
    "Glm4vProcessor": "GLM-4.1V",
    "Glm46VProcessor": "GLM-4.6V",
    "Gemma4Processor": "Gemma 4",
    "Molmo2Processor": "Molmo2",
}


def _family(processor: Any) -> str:
    for cls in type(processor).__mro__:
        if cls.__name__ in PROCESSORS:
            return PROCESSORS[cls.__name__]
    raise TypeError(
        f"{type(processor).__name__} is not a metadata-reading processor; supported: {sorted(PROCESSORS)}"
    )


def build_messages(
    selection: Selection, question: str | None = None, *, system: str | None = None, video: Any = None
) -> list[dict[str, Any]]:
    """Chat messages with one user turn ``[video, text]`` (the form these processors' templates take)."""
    (sel,), (q,) = as_batch(selection, question)
    return video_turn(q, system=system, video=video)


def prepare_inputs(
    processor: Any,
    selection: Selection | Sequence[Selection],
    question: str | Sequence[str] | None = None,
    *,
    odd_frames: str = "duplicate",
    own_patches: bool = False,
    system: str | None = None,
    device: Any = None,
    dtype: Any = None,
    **processor_kwargs: Any,
) -> Any:
    """Processor batch for the model of ``processor`` (one of :data:`PROCESSORS`), left-padded, with the
    chosen frames' real times in the prompt. Extra keyword arguments go to the processor call."""
    name = _family(processor)
    sels, qs = as_batch(selection, question)

    def messages(sel: Selection, q: str) -> list[dict[str, Any]]:
        return build_messages(sel, q, system=system)

    return timed_video_batch(
        processor,
        sels,
        qs,
        messages,
        model_name=name,
        odd_frames=odd_frames,
        own_patches=own_patches,
        device=device,
        dtype=dtype,
        **processor_kwargs,
    )


class MetadataVideoAnswerer(Answerer):
    """:class:`~tspo_sampler.adapters._base.Answerer` over SmolVLM2, GLM-4.1V/4.6V, Gemma 4 and Molmo2."""

    def prepare(self, selections: Sequence[Selection], questions: Sequence[str], **options: Any) -> Any:
        return prepare_inputs(self.processor, selections, questions, **options)
