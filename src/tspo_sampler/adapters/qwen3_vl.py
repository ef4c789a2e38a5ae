"""Qwen3-VL (also Qwen3-VL-MoE and Qwen3.5): a TSPO :class:`~tspo_sampler._result.Selection` into
``Qwen3VLProcessor`` with the frames' real times.

The processor writes ``<{t:.1f} seconds>`` before each temporal patch of two frames, with ``t`` the
mean of the pair's ``frames_indices / fps``. The adapter passes ``do_sample_frames=False`` (the
processor would otherwise re-sample the chosen frames at 2 fps) and a ``VideoMetadata`` whose
``frames_indices / fps`` are the chosen frames' presentation times: the source fps and indices on
constant-frame-rate files, a millisecond clock (``fps=1000``, ``round(t * 1000)``) on
variable-frame-rate files, where ``index / average fps`` is wrong. Every ``<t seconds>`` is then the
mean presentation time of its patch.

**Frame count.** Frames go in pairs. ``odd_frames`` handles an odd ``k`` as the Qwen2.5-VL adapter
does (``"duplicate"`` the last frame, default; ``"drop"`` the lowest-scored pick; ``"error"``).
``own_patches=True`` repeats every pick so that each gets its own temporal patch and its own exact
time, at twice the visual tokens (``k`` patches instead of ``ceil(k / 2)``).

**Time in the text.** ``timestamps="metadata"`` (default) leaves the times to the processor's
markers. ``"prompt"`` also states the video's duration and frame count before the question, but not
the times again (the markers carry them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._result import Selection
from ._base import Answerer, as_batch, video_duration, video_turn
from ._timed import patched_frames, timed_video_batch

__all__ = [
    "QWEN3_TIME_INSTRUCTION",
    "TIMESTAMP_MODES",
    "Qwen3_VLAnswerer",
    "build_messages",
    "patch_times",
    "prepare_inputs",
]

TIMESTAMP_MODES = ("metadata", "prompt")
# "prompt" mode: what the markers do not say. No list of times (the markers carry them).
QWEN3_TIME_INSTRUCTION = (
    "The video lasts for {duration:.2f} seconds, and {num_frames} frames are sampled from it; the time of each "
    "pair of frames is written before it. Please answer the following questions related to this video."
)


def _check_mode(timestamps: str) -> str:
    if timestamps not in TIMESTAMP_MODES:
        raise ValueError(f"timestamps must be one of {TIMESTAMP_MODES} for Qwen3-VL, got {timestamps!r}")
    return timestamps


def build_messages(
    selection: Selection,
    question: str | None = None,
    *,
    timestamps: str = "metadata",
    time_template: str = QWEN3_TIME_INSTRUCTION,
    system: str | None = None,
    video: Any = None,
) -> list[dict[str, Any]]:
    """Chat messages in Qwen3-VL's convention: one user turn ``[video, text]``.

    With ``timestamps="prompt"`` the text starts with ``time_template`` (``{duration}``,
    ``{num_frames}``; the frame times stay in the processor's ``<t seconds>`` markers).
    """
    _check_mode(timestamps)
    (sel,), (q,) = as_batch(selection, question)
    if timestamps == "prompt":
        if "{frame_times" in time_template:
            raise ValueError(
                "time_template lists {frame_times}, but Qwen3-VL already reads every time from its <t seconds> "
                "markers; use a template with only {duration} and {num_frames}"
            )
        q = time_template.format(duration=video_duration(sel), num_frames=len(sel.indices)) + "\n" + q
    return video_turn(q, system=system, video=video)


def prepare_inputs(
    processor: Any,
    selection: Selection | Sequence[Selection],
    question: str | Sequence[str] | None = None,
    *,
    timestamps: str = "metadata",
    odd_frames: str = "duplicate",
    own_patches: bool = False,
    time_template: str = QWEN3_TIME_INSTRUCTION,
    system: str | None = None,
    device: Any = None,
    dtype: Any = None,
    **processor_kwargs: Any,
) -> Any:
    """Processor batch (``input_ids``, ``attention_mask``, ``pixel_values_videos``, ``video_grid_thw``,
    ``mm_token_type_ids``) for ``model.generate(**inputs)`` / ``model(**inputs)``; left-padded.

    Accepts one selection and question or parallel lists. ``device``/``dtype`` move the tensors.
    Extra keyword arguments go to the processor call; ``cap_pixels_per_frame`` defaults to ``True``
    (qwen-vl-utils' per-frame pixel cap) when the processor leaves it unset.
    """
    _check_mode(timestamps)
    sels, qs = as_batch(selection, question)

    def messages(sel: Selection, q: str) -> list[dict[str, Any]]:
        return build_messages(sel, q, timestamps=timestamps, time_template=time_template, system=system)

    return timed_video_batch(
        processor,
        sels,
        qs,
        messages,
        model_name="Qwen3-VL",
        odd_frames=odd_frames,
        own_patches=own_patches,
        device=device,
        dtype=dtype,
        **processor_kwargs,
    )


def patch_times(selection: Selection, *, odd_frames: str = "duplicate", own_patches: bool = False) -> list[float]:
    """The time each ``<t seconds>`` marker should show: the mean presentation time of its patch."""
    _, _, times = patched_frames(selection, odd_frames=odd_frames, own_patches=own_patches, patch=2, need_frames=False)
    return [(times[i] + times[i + 1]) / 2 for i in range(0, len(times), 2)]


class Qwen3_VLAnswerer(Answerer):
    """:class:`~tspo_sampler.adapters._base.Answerer` over ``Qwen3VLForConditionalGeneration``,
    ``Qwen3VLMoeForConditionalGeneration`` and ``Qwen3_5ForConditionalGeneration``.

    ``Qwen3_VLAnswerer(model, processor, own_patches=True)`` fixes adapter options for all calls.
    """

    def prepare(self, selections: Sequence[Selection], questions: Sequence[str], **options: Any) -> Any:
        return prepare_inputs(self.processor, selections, questions, **options)
