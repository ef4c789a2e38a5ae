"""Qwen2.5-VL: feed a TSPO :class:`~tspo_sampler._result.Selection` to ``Qwen2_5_VLForConditionalGeneration``.

Two things need care with this model:

**Frame count.** The vision encoder packs frames in temporal patches of 2, so a video must have an
even number of frames. ``odd_frames`` says what happens when ``k`` is odd:

* ``"duplicate"`` (default): the last chosen frame is repeated, exactly what the Hugging Face video
  processor (and qwen-vl-utils) would do on its own; the model then sees ``k + 1`` frames, ``ceil(k/2)``
  temporal patches.
* ``"drop"``: the chosen frame with the lowest TSPO score is left out (``k - 1`` frames).
* ``"error"``: raise ``ValueError``.

**Time.** Qwen2.5-VL's multimodal RoPE gives temporal patch ``i`` the time ``i * second_per_grid_ts``,
with one ``second_per_grid_ts`` per video: it assumes evenly spaced frames, which TSPO's picks are not.
``timestamps`` chooses what the model is told:

* ``"uniform"`` (default, the paper's behaviour): the chosen frames are presented as a clip sampled
  at ``sample_fps`` (2.0), so ``second_per_grid_ts = 2 / 2.0 = 1.0``. This is what the TSPO reference
  evaluation fed Qwen2.5-VL (its processor call passed no fps, and the processor of that time assumed
  2 fps), so the published numbers were obtained this way, and it keeps the temporal position ids in
  the range Qwen2.5-VL was trained on. It is the default for those two reasons.
* ``"metadata"``: the processor gets the real metadata (source fps, frame count and the chosen
  ``frames_indices``), so ``second_per_grid_ts = 2 * duration / k``: the frames are spread evenly over
  the video's real duration. Absolute time is right on average, individual gaps are not (no single
  number can express uneven gaps).
* ``"prompt"``: as ``"metadata"``, and the chosen frames' real timestamps are also written in the
  prompt (``time_template``), which is the only way to tell the model the exact, uneven times.

**Pixels.** transformers' Qwen2-VL video processor warns unless ``cap_pixels_per_frame`` is chosen.
When neither the call nor the processor chose, the adapter passes ``cap_pixels_per_frame=True``:
the per-frame pixel cap of the reference implementation (qwen-vl-utils), so a clip costs what it
costs there. Pass ``cap_pixels_per_frame=False`` to keep transformers' uncapped budget.

The qwen-vl-utils message form (``{"type": "video", "video": [PIL frames]}``) is built by
:func:`build_qwen_vl_utils_messages`; it carries ``sample_fps`` so ``process_vision_info`` reproduces
the same ``second_per_grid_ts``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from .._result import Selection
from ._base import (
    TIME_INSTRUCTION,
    Answerer,
    as_batch,
    move_to,
    time_instruction,
    video_duration,
    video_turn,
)
from ._timed import ODD_FRAMES, even_frames, reference_pixel_cap

__all__ = [
    "ODD_FRAMES",
    "TIMESTAMP_MODES",
    "Qwen2_5_VLAnswerer",
    "build_messages",
    "build_qwen_vl_utils_messages",
    "even_frames",
    "prepare_inputs",
    "video_metadata",
]

TIMESTAMP_MODES = ("uniform", "metadata", "prompt")
PAPER_SAMPLE_FPS = 2.0


def _check_mode(timestamps: str) -> str:
    if timestamps not in TIMESTAMP_MODES:
        raise ValueError(f"timestamps must be one of {TIMESTAMP_MODES}, got {timestamps!r}")
    return timestamps


def video_metadata(
    selection: Selection,
    indices: Sequence[int] | None = None,
    *,
    timestamps: str = "uniform",
    sample_fps: float = PAPER_SAMPLE_FPS,
    frame_size: tuple[int, int] | None = None,
) -> Any:
    """The ``transformers.video_utils.VideoMetadata`` to pass with the frames (one per video).

    ``indices`` are the source indices of the frames actually passed (after odd-count handling).
    The processor derives ``second_per_grid_ts = 2 / metadata.sampled_fps`` from it.
    """
    from transformers.video_utils import VideoMetadata

    _check_mode(timestamps)
    indices = [int(i) for i in (selection.indices if indices is None else indices)]
    n = len(indices)
    height, width = frame_size if frame_size is not None else (None, None)
    if timestamps != "uniform":
        fps = selection.fps
        duration = video_duration(selection)
        if fps and fps > 0 and duration > 0:
            total = max(int(round(duration * fps)), max(indices) + 1)
            return VideoMetadata(
                total_num_frames=total,
                fps=float(fps),
                width=width,
                height=height,
                duration=total / float(fps),
                video_backend="tspo",
                frames_indices=indices,
            )
        warnings.warn(
            "the selection carries no source fps/duration; Qwen2.5-VL gets the evenly spaced (uniform) time "
            f"encoding at {sample_fps} fps instead of timestamps={timestamps!r}",
            stacklevel=3,
        )
    sample_fps = float(sample_fps)
    if sample_fps <= 0:
        raise ValueError("sample_fps must be positive")
    return VideoMetadata(
        total_num_frames=n,
        fps=sample_fps,
        width=width,
        height=height,
        duration=n / sample_fps,
        video_backend="tspo",
        frames_indices=list(range(n)),
    )


def _text(selection: Selection, question: str, timestamps: str, time_template: str, times: Sequence[float]) -> str:
    if timestamps == "prompt":
        return time_instruction(selection, time_template, timestamps=times) + "\n" + question
    return question


def build_messages(
    selection: Selection,
    question: str | None = None,
    *,
    timestamps: str = "uniform",
    time_template: str = TIME_INSTRUCTION,
    system: str | None = None,
    odd_frames: str = "duplicate",
    video: Any = None,
) -> list[dict[str, Any]]:
    """Chat messages in Qwen2.5-VL's convention: one user turn ``[video, text]``.

    ``video`` is put in the video part when given (e.g. a list of frames for ``apply_chat_template``
    with ``tokenize=True``); :func:`prepare_inputs` passes the frames to the processor separately.
    With ``timestamps="prompt"`` the text starts with the time instruction listing the chosen times.
    """
    _check_mode(timestamps)
    (sel,), (q,) = as_batch(selection, question)
    _, _, times = even_frames(sel, odd_frames, need_frames=False)
    real_times = times[: len(sel.timestamps)] if len(times) > len(sel.timestamps) else times
    return video_turn(_text(sel, q, timestamps, time_template, real_times), system=system, video=video)


def build_qwen_vl_utils_messages(
    selection: Selection,
    question: str | None = None,
    *,
    timestamps: str = "uniform",
    sample_fps: float = PAPER_SAMPLE_FPS,
    time_template: str = TIME_INSTRUCTION,
    system: str | None = None,
    odd_frames: str = "duplicate",
    processor: Any = None,
    **video_options: Any,
) -> list[dict[str, Any]]:
    """Messages for qwen-vl-utils: ``{"type": "video", "video": [PIL frames], "sample_fps": ...}``.

    qwen-vl-utils makes synthetic metadata for a frame list (``frames_indices = range(n)``) from the
    element's ``sample_fps``, so ``sample_fps`` is set to give the same ``second_per_grid_ts`` as
    :func:`prepare_inputs`: ``sample_fps`` (2.0) in ``"uniform"`` mode, ``n / duration`` otherwise;
    ``raw_fps`` carries the source fps. ``video_options`` (``min_pixels``, ``max_pixels``,
    ``total_pixels``, ``resized_height``...) go into the video element. Use::

        images, videos, video_kwargs = process_vision_info(messages, return_video_kwargs=True,
                                                           return_video_metadata=True)
        videos, metadata = zip(*videos)
        inputs = processor(text=[text], videos=list(videos), video_metadata=list(metadata),
                           return_tensors="pt", **video_kwargs)

    These messages are for Qwen2.5-VL only. Under a Qwen3-VL processor the synthetic metadata would
    print ``<0.0 seconds> <0.1 seconds> ...`` before the frames: pass ``processor=`` to have that
    caught (``TypeError``), and use :mod:`tspo_sampler.adapters.qwen3_vl` or
    :func:`tspo_sampler.integrations.qwen_vl_utils.process_vision_info` for Qwen3-VL.
    """
    from PIL import Image

    if processor is not None and any(c.__name__ == "Qwen3VLProcessor" for c in type(processor).__mro__):
        raise TypeError(
            "build_qwen_vl_utils_messages makes frame-list messages whose times qwen-vl-utils fakes "
            "(frames_indices = range(n)); a Qwen3-VL processor would print them as <0.0 seconds>, <0.1 seconds>... "
            "Use tspo_sampler.adapters.qwen3_vl.prepare_inputs or "
            "tspo_sampler.integrations.qwen_vl_utils.process_vision_info instead"
        )

    _check_mode(timestamps)
    (sel,), (q,) = as_batch(selection, question)
    frames, indices, times = even_frames(sel, odd_frames)
    meta = video_metadata(sel, indices, timestamps=timestamps, sample_fps=sample_fps)
    element: dict[str, Any] = {
        "type": "video",
        "video": [Image.fromarray(f) for f in frames],
        "sample_fps": float(meta.sampled_fps),
    }
    if timestamps != "uniform" and sel.fps:
        element["raw_fps"] = float(sel.fps)
    element.update(video_options)
    real_times = times[: len(sel.timestamps)]
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    text = _text(sel, q, timestamps, time_template, real_times)
    messages.append({"role": "user", "content": [element, {"type": "text", "text": text}]})
    return messages


def prepare_inputs(
    processor: Any,
    selection: Selection | Sequence[Selection],
    question: str | Sequence[str] | None = None,
    *,
    timestamps: str = "uniform",
    sample_fps: float = PAPER_SAMPLE_FPS,
    odd_frames: str = "duplicate",
    time_template: str = TIME_INSTRUCTION,
    system: str | None = None,
    device: Any = None,
    dtype: Any = None,
    **processor_kwargs: Any,
) -> Any:
    """Processor batch (``input_ids``, ``attention_mask``, ``pixel_values_videos``, ``video_grid_thw``,
    ``second_per_grid_ts``, ``mm_token_type_ids``) for ``model.generate(**inputs)`` / ``model(**inputs)``.

    Accepts one selection and question or parallel lists (left-padded batch). ``device``/``dtype``
    move the tensors (pixels cast to ``dtype``; ``second_per_grid_ts`` stays float32). Extra keyword
    arguments go to the processor call (e.g. ``videos_kwargs`` such as ``size``).
    """
    sels, qs = as_batch(selection, question)
    _check_mode(timestamps)
    texts, videos, metas = [], [], []
    for sel, q in zip(sels, qs, strict=True):
        frames, indices, _ = even_frames(sel, odd_frames)
        metas.append(
            video_metadata(sel, indices, timestamps=timestamps, sample_fps=sample_fps, frame_size=frames.shape[1:3])
        )
        videos.append(frames)
        messages = build_messages(
            sel, q, timestamps=timestamps, time_template=time_template, system=system, odd_frames=odd_frames
        )
        texts.append(processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    kwargs: dict[str, Any] = dict(padding=True, padding_side="left", return_tensors="pt", do_sample_frames=False)
    kwargs.update(processor_kwargs)
    reference_pixel_cap(processor, kwargs)
    batch = processor(text=texts, videos=videos, video_metadata=metas, **kwargs)
    return move_to(batch, device, dtype)


class Qwen2_5_VLAnswerer(Answerer):
    """:class:`~tspo_sampler.adapters._base.Answerer` over ``Qwen2_5_VLForConditionalGeneration``.

    ``Qwen2_5_VLAnswerer(model, processor, timestamps="prompt")`` fixes adapter options for all calls.
    """

    def prepare(self, selections: Sequence[Selection], questions: Sequence[str], **options: Any) -> Any:
        return prepare_inputs(self.processor, selections, questions, **options)
