"""One ``build_messages``/``prepare_inputs`` pair for processors that stack a batch's videos and take
no timing metadata (InternVL and LLaVA-OneVision/Video in their Hugging Face form).

Both adapters differ only in the model name used in errors and in the default time-instruction
wording, so they are made here by :func:`stacked_adapter` instead of being written twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._result import Selection
from ._base import as_batch, stacked_video_batch, video_turn, with_time_instruction

__all__ = ["stacked_adapter"]


def stacked_adapter(
    model_name: str, default_template: str, *, module: str, processor_class: str, model_class: str
) -> tuple[Callable[..., list[dict[str, Any]]], Callable[..., Any]]:
    """``(build_messages, prepare_inputs)`` for one model family (see the module docstring)."""

    def build_messages(
        selection: Selection,
        question: str | None = None,
        *,
        time_instruction: bool = False,
        time_template: str = default_template,
        system: str | None = None,
        video: Any = None,
    ) -> list[dict[str, Any]]:
        (sel,), (q,) = as_batch(selection, question)
        text = with_time_instruction(sel, q, time_instruction, time_template)
        return video_turn(text, system=system, video=video)

    def prepare_inputs(
        processor: Any,
        selection: Selection | Sequence[Selection],
        question: str | Sequence[str] | None = None,
        *,
        time_instruction: bool = False,
        time_template: str = default_template,
        system: str | None = None,
        device: Any = None,
        dtype: Any = None,
        **processor_kwargs: Any,
    ) -> Any:
        sels, qs = as_batch(selection, question)

        def messages(sel: Selection, q: str) -> list[dict[str, Any]]:
            return build_messages(
                sel, q, time_instruction=time_instruction, time_template=time_template, system=system
            )

        return stacked_video_batch(
            processor, sels, qs, messages, model_name=model_name, device=device, dtype=dtype, **processor_kwargs
        )

    build_messages.__doc__ = (
        f"Chat messages for the Hugging Face {model_name} template: one user turn ``[video, text]``.\n\n"
        "``time_instruction=True`` puts a sentence with the chosen frames' times before the question; "
        "``video`` fills the video part (for ``apply_chat_template(tokenize=True)``)."
    )
    prepare_inputs.__doc__ = (
        f"Processor batch for ``{model_class}`` through ``{processor_class}``; left-padded when batched.\n\n"
        "All selections of one batch must have the same ``k`` (the processor stacks the videos). "
        "``device``/``dtype`` move the tensors; extra keyword arguments go to the processor call."
    )
    for fn in (build_messages, prepare_inputs):
        fn.__module__ = module
        fn.__qualname__ = fn.__name__
    return build_messages, prepare_inputs
