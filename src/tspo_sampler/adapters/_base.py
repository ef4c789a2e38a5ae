"""Shared pieces of the MLLM adapters: input normalisation, time instructions and the ``Answerer``.

An adapter turns one or more :class:`~tspo_sampler._result.Selection` objects (the frames TSPO chose,
with their source indices and timestamps) plus questions into the exact inputs a video-LLM expects.
The :class:`Answerer` wraps a Hugging Face model and its processor behind two batched calls that the
GRPO trainer and evaluation code use: free-form :meth:`Answerer.answer` and multiple-choice
:meth:`Answerer.option_logprobs` (one forward pass, next-token log-probabilities of option letters).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._result import Selection

__all__ = [
    "Answerer",
    "MC_INSTRUCTION",
    "TIME_INSTRUCTION",
    "as_batch",
    "frame_times_text",
    "move_to",
    "option_token_ids",
    "selection_frames",
    "time_instruction",
    "video_duration",
]

# A neutral wording (the frames TSPO picks are not evenly spaced). LLaVA-Video's own wording, which
# that model was trained with, lives in ``llava_video.LLAVA_VIDEO_TIME_INSTRUCTION``.
TIME_INSTRUCTION = (
    "The video lasts for {duration:.2f} seconds, and {num_frames} frames are sampled from it. "
    "These frames are located at {frame_times}. Please answer the following questions related to this video."
)

# Appended to a multiple-choice question when scoring option letters (the phrase of LLaVA-Video /
# lmms-eval multiple-choice prompts).
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def as_batch(
    selections: Selection | Sequence[Selection], questions: str | Sequence[str] | None
) -> tuple[list[Selection], list[str]]:
    """Normalise ``(selection, question)`` or parallel lists of them into two equal-length lists.

    ``questions=None`` uses each selection's own ``question``.
    """
    if isinstance(selections, Selection):
        sels = [selections]
        single = True
    else:
        sels = list(selections)
        single = False
        if not sels:
            raise ValueError("no selections given")
        for s in sels:
            if not isinstance(s, Selection):
                raise TypeError(f"expected Selection objects, got {type(s).__name__}")
    if questions is None:
        qs = [s.question for s in sels]
        if any(q is None for q in qs):
            raise ValueError("no question given and a selection carries none")
    elif isinstance(questions, str):
        qs = [questions] * len(sels) if not single else [questions]
    else:
        qs = list(questions)
    if len(qs) != len(sels):
        raise ValueError(f"got {len(sels)} selections but {len(qs)} questions")
    for q in qs:
        if not isinstance(q, str):
            raise TypeError(f"questions must be strings, got {type(q).__name__}")
    return sels, [str(q) for q in qs]


def selection_frames(selection: Selection) -> np.ndarray:
    """The chosen frames as a ``uint8`` array ``k x H x W x 3`` (raises if they were not returned)."""
    if selection.frames is None:
        raise ValueError(
            "this Selection has no frames (it was made with return_frames=False); call "
            "select_frames(..., return_frames=True) or fill "
            "selection.frames = sampler.get_frames(video, selection.indices)"
        )
    frames = np.asarray(selection.frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"selection.frames must be k x H x W x 3, got shape {frames.shape}")
    if frames.shape[0] != len(selection.indices):
        raise ValueError(f"selection has {len(selection.indices)} indices but {frames.shape[0]} frames")
    if frames.dtype != np.uint8:
        frames = np.clip(frames, 0, 255).astype(np.uint8)
    return frames


def video_duration(selection: Selection) -> float:
    """Duration of the source video in seconds; falls back to the last candidate / chosen timestamp."""
    if selection.duration is not None and selection.duration > 0:
        return float(selection.duration)
    times = list(selection.candidate_timestamps) or list(selection.timestamps)
    if not times:
        return 0.0
    step = 1.0 / selection.fps if selection.fps else 0.0
    return float(max(times)) + step


def frame_times_text(timestamps: Sequence[float], fmt: str = "{:.2f}s", sep: str = ",") -> str:
    """``"1.00s,3.50s,..."``: LLaVA-Video's way of listing frame times."""
    return sep.join(fmt.format(float(t)) for t in timestamps)


def time_instruction(
    selection: Selection,
    template: str = TIME_INSTRUCTION,
    *,
    timestamps: Sequence[float] | None = None,
) -> str:
    """Fill a time-instruction template with the CHOSEN frames' times.

    The template may use ``{duration}`` (seconds, float), ``{num_frames}`` and ``{frame_times}``
    (``"1.00s,3.50s,..."``). ``timestamps`` overrides ``selection.timestamps`` (e.g. after an odd
    frame count was padded).
    """
    times = list(selection.timestamps if timestamps is None else timestamps)
    return template.format(
        duration=video_duration(selection), num_frames=len(times), frame_times=frame_times_text(times)
    )


def with_time_instruction(selection: Selection, question: str, add: bool, template: str = TIME_INSTRUCTION) -> str:
    """``question``, preceded by the filled time instruction when ``add``."""
    return f"{time_instruction(selection, template)}\n{question}" if add else question


def video_turn(text: str, *, system: str | None = None, video: Any = None) -> list[dict[str, Any]]:
    """Chat messages with one user turn ``[video, text]`` (after an optional system turn): the form the
    Hugging Face processors of Qwen2.5-VL, LLaVA-OneVision and InternVL take."""
    part: dict[str, Any] = {"type": "video"}
    if video is not None:
        part["video"] = video
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": [part, {"type": "text", "text": text}]})
    return messages


def stacked_video_batch(
    processor: Any,
    selections: Sequence[Selection],
    questions: Sequence[str],
    build_messages: Any,
    *,
    model_name: str,
    device: Any = None,
    dtype: Any = None,
    **processor_kwargs: Any,
) -> Any:
    """Left-padded processor batch for processors that stack the videos of a batch (so one ``k`` for all).

    ``build_messages(selection, question)`` gives each row's chat; frames go to the processor as they
    are (``do_sample_frames=False``: the frames were already chosen).
    """
    texts, videos = [], []
    for sel, q in zip(selections, questions, strict=True):
        videos.append(selection_frames(sel))
        texts.append(processor.apply_chat_template(build_messages(sel, q), tokenize=False, add_generation_prompt=True))
    if len({v.shape[0] for v in videos}) > 1:
        raise ValueError(f"all selections in one {model_name} batch must have the same number of frames")
    kwargs: dict[str, Any] = dict(padding=True, padding_side="left", return_tensors="pt", do_sample_frames=False)
    kwargs.update(processor_kwargs)
    return move_to(processor(text=texts, videos=videos, **kwargs), device, dtype)


# Floating tensors that carry time, not pixels: never cast to a low-precision model dtype.
KEEP_FLOAT32 = frozenset({"second_per_grid_ts"})


def move_to(batch: Any, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Any:
    """Move a ``BatchFeature``/dict of tensors to ``device``; cast floating pixel tensors to ``dtype``.

    Timing tensors (``second_per_grid_ts``) stay float32 so that bf16 rounding cannot move
    Qwen2.5-VL's temporal position ids.
    """
    if device is None and dtype is None:
        return batch
    for key in list(batch.keys()):
        value = batch[key]
        if isinstance(value, torch.Tensor):
            if dtype is not None and value.is_floating_point() and key not in KEEP_FLOAT32:
                value = value.to(device=device, dtype=dtype)
            elif device is not None:
                value = value.to(device)
            batch[key] = value
        elif isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
            batch[key] = [
                v.to(device=device, dtype=dtype) if dtype is not None and v.is_floating_point() else v.to(device)
                for v in value
            ]
    return batch


def option_token_ids(tokenizer: Any, options: Sequence[str]) -> list[int]:
    """The token id each option letter starts with, as the model would emit it right after the prompt.

    Chat prompts end with ``"<|im_start|>assistant\\n"`` so the answer's first token is the bare letter
    (no leading space). Raises when two options map to the same token.
    """
    ids = []
    for opt in options:
        toks = tokenizer.encode(str(opt), add_special_tokens=False)
        if not toks:
            raise ValueError(f"option {opt!r} encodes to no token")
        ids.append(int(toks[0]))
    if len(set(ids)) != len(ids):
        raise ValueError(f"options {list(options)} do not map to distinct first tokens: {ids}")
    return ids


def append_instruction(question: str, instruction: str | None) -> str:
    if not instruction or instruction in question:
        return question
    return question.rstrip("\n") + "\n" + instruction


class Answerer(ABC):
    """A video-LLM that answers questions about TSPO selections, batched.

    Subclasses implement :meth:`prepare` (usually the model module's ``prepare_inputs``). Options given
    to the constructor (``prepare_options``) are passed to every :meth:`prepare` call.
    """

    def __init__(self, model: Any, processor: Any, **prepare_options: Any) -> None:
        self.model = model
        self.processor = processor
        self.prepare_options = prepare_options

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        for p in self.model.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    @abstractmethod
    def prepare(self, selections: Sequence[Selection], questions: Sequence[str], **options: Any) -> Any:
        """Model inputs (``BatchFeature``) for a batch, on the model's device and dtype, left-padded."""

    def _prepare(self, selections, questions, options: dict[str, Any]) -> Any:
        sels, qs = as_batch(selections, questions)
        merged = {**self.prepare_options, **options}
        merged.setdefault("device", self.device)
        merged.setdefault("dtype", self.dtype)
        return self.prepare(sels, qs, **merged)

    @torch.no_grad()
    def answer(
        self,
        selections: Selection | Sequence[Selection],
        questions: str | Sequence[str] | None = None,
        *,
        max_new_tokens: int = 32,
        prepare_options: dict[str, Any] | None = None,
        **gen_kwargs: Any,
    ) -> list[str]:
        """Generate an answer per (selection, question); greedy unless ``gen_kwargs`` say otherwise."""
        inputs = self._prepare(selections, questions, dict(prepare_options or {}))
        gen_kwargs.setdefault("do_sample", False)
        tok = self.tokenizer
        if gen_kwargs.get("pad_token_id") is None and getattr(tok, "pad_token_id", None) is not None:
            gen_kwargs["pad_token_id"] = tok.pad_token_id
        out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, **gen_kwargs)
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        return [t.strip() for t in tok.batch_decode(new_tokens, skip_special_tokens=True)]

    def option_logprobs(
        self,
        selections: Selection | Sequence[Selection],
        questions: str | Sequence[str] | None = None,
        options: Sequence[str] = ("A", "B", "C", "D"),
        *,
        instruction: str | None = MC_INSTRUCTION,
        normalize: bool = False,
        grad: bool = False,
        prepare_options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Log-probability of each option letter as the answer's first token: ``batch x len(options)``.

        One forward pass over the left-padded batch; the logits at the last prompt position are
        log-softmaxed over the whole vocabulary (``normalize=True`` renormalises over the options).
        ``instruction`` is appended to each question unless already there (``None`` to skip).
        """
        sels, qs = as_batch(selections, questions)
        qs = [append_instruction(q, instruction) for q in qs]
        inputs = self._prepare(sels, qs, dict(prepare_options or {}))
        ids = torch.tensor(option_token_ids(self.tokenizer, options), device=inputs["input_ids"].device)
        with torch.set_grad_enabled(grad):
            logits = self._last_logits(inputs)
            logp = torch.log_softmax(logits.float(), dim=-1)
            picked = logp.index_select(-1, ids)
            if normalize:
                picked = torch.log_softmax(picked, dim=-1)
        return picked

    def _last_logits(self, inputs: Any) -> torch.Tensor:
        mask = inputs.get("attention_mask")
        if mask is not None and bool((mask[:, -1] == 0).any()):
            raise ValueError("option_logprobs needs left padding (the last position must be a real token)")
        try:
            out = self.model(**inputs, logits_to_keep=1, use_cache=False)
        except TypeError:
            out = self.model(**inputs, use_cache=False)
        return out.logits[:, -1, :]
