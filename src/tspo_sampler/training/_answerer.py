"""The frozen MLLM that answers from the chosen frames: what the trainer needs of it, and loading one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

from .._device import check_dtype
from .._result import Selection
from ._config import GRPOConfig
from ._data import TrainExample
from ._rewards import parse_answer_letter


class Answerer(Protocol):
    """What the trainer needs from an MLLM adapter (``tspo_sampler.adapters``)."""

    def answer(self, selections: Sequence[Selection], questions: Sequence[str], **gen_kwargs: Any) -> list[str]: ...

    def option_logprobs(
        self, selections: Sequence[Selection], questions: Sequence[str], options: Sequence[str] = ...
    ) -> torch.Tensor: ...


def load_answerer(config: GRPOConfig, device: torch.device) -> Answerer:
    """Load ``config.mllm`` (Hub id or directory) and wrap it in its adapter's :class:`Answerer`.

    Supported through ``tspo_sampler.adapters.answerer_for``: Qwen2.5-VL, LLaVA-OneVision/LLaVA-Video
    and InternVL (transformers forms).
    """
    if not config.mllm:
        raise ValueError("GRPOConfig.mllm is required: the MLLM that answers from the chosen frames")
    import transformers

    from ..adapters import answerer_for

    kwargs: dict[str, Any] = {"local_files_only": config.local_files_only}
    if config.mllm_dtype:
        kwargs["dtype"] = check_dtype(config.mllm_dtype, "mllm_dtype")
    processor = transformers.AutoProcessor.from_pretrained(config.mllm, local_files_only=config.local_files_only)
    model_cls = getattr(transformers, "AutoModelForImageTextToText", None) or transformers.AutoModelForVision2Seq
    model = model_cls.from_pretrained(config.mllm, **kwargs).to(device).eval()
    model.requires_grad_(False)
    return answerer_for(model, processor)


def ask(
    answerer: Answerer, selections: Sequence[Selection], example: TrainExample, config: GRPOConfig
) -> tuple[list[str | None], torch.Tensor | None, int]:
    """The letters the answerer picks from each selection's frames, in batches of ``answer_batch_size``.

    Returns the letters (``None`` where a generated answer names no option), the options'
    log-probabilities in ``answer_mode="logits"`` (else ``None``), and the number of answerer calls.
    """
    prompt = example.prompt()
    letters = list(example.letters)
    chunk = config.answer_batch_size or len(selections)
    preds: list[str | None] = []
    logps = []
    calls = 0
    for start in range(0, len(selections), chunk):
        part = list(selections[start : start + chunk])
        with torch.no_grad():
            if config.answer_mode == "logits":
                lp = answerer.option_logprobs(part, [prompt] * len(part), options=letters)
                lp = torch.log_softmax(torch.as_tensor(lp, dtype=torch.float32).cpu(), dim=-1)
                logps.append(lp)
                preds += [letters[int(i)] for i in lp.argmax(dim=-1)]
            else:
                texts = answerer.answer(
                    part, [prompt] * len(part), max_new_tokens=config.max_new_tokens, do_sample=False
                )
                preds += [parse_answer_letter(t, letters, example.options) for t in texts]
        calls += 1
    return preds, (torch.cat(logps) if logps else None), calls


def freeze(obj: Any) -> None:
    """Stop gradients in the torch modules of an encoder/answerer object (the object itself or its attributes)."""
    if isinstance(obj, torch.nn.Module):
        obj.requires_grad_(False)
        return
    for value in vars(obj).values() if hasattr(obj, "__dict__") else []:
        if isinstance(value, torch.nn.Module):
            value.requires_grad_(False)


__all__ = ["Answerer", "ask", "freeze", "load_answerer"]
