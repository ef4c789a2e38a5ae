"""LLaVA-Video: feed a TSPO :class:`~tspo_sampler._result.Selection` to LLaVA-Video in both its forms.

**Hugging Face form** (``LlavaOnevisionForConditionalGeneration`` + ``LlavaOnevisionProcessor``, e.g.
``llava-hf/LLaVA-Video-7B-Qwen2-hf``): the frames go to the processor as one video; each frame costs
a fixed number of tokens (196 at 384 px after 2 x 2 pooling) plus one newline token per video. The
HF chat template writes no timestamps; ``time_instruction=True`` prepends LLaVA-Video's time
instruction built from the CHOSEN frames.

**Original form** (LLaVA-NeXT code, ``lmms-lab/LLaVA-Video-7B-Qwen2``): ``image_processor.preprocess``
of the frames (``pixel_values`` ``k x 3 x 384 x 384``), the ``qwen_1_5`` conversation template with
one ``<image>`` placeholder, tokenised with ``IMAGE_TOKEN_INDEX = -200`` in its place, and the call
``model.generate(input_ids, images=[pixel_values], modalities=["video"], ...)``. LLaVA-Video was
trained with a time instruction (video duration, number of frames, the seconds at which they lie);
this adapter writes it from the chosen frames' timestamps (the TSPO reference evaluation listed all
candidates' times instead, which describes frames the model never sees).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._result import Selection
from ._base import Answerer, as_batch, selection_frames, time_instruction
from ._stacked import stacked_adapter

__all__ = [
    "DEFAULT_IMAGE_TOKEN",
    "IMAGE_TOKEN_INDEX",
    "LLAVA_VIDEO_TIME_INSTRUCTION",
    "QWEN_SYSTEM",
    "LlavaVideoAnswerer",
    "build_messages",
    "build_original_prompt",
    "prepare_inputs",
    "prepare_original_inputs",
    "tokenize_with_image_token",
]

# LLaVA-NeXT constants (llava/constants.py): the placeholder string and the id it is tokenised to.
IMAGE_TOKEN_INDEX = -200
DEFAULT_IMAGE_TOKEN = "<image>"
QWEN_SYSTEM = "You are a helpful assistant."

# LLaVA-Video's time instruction, in the exact wording the model was trained and evaluated with
# (including "uniformly" and the missing space before "Please"); fields as in base.time_instruction.
LLAVA_VIDEO_TIME_INSTRUCTION = (
    "The video lasts for {duration:.2f} seconds, and {num_frames} frames are uniformly sampled from it. "
    "These frames are located at {frame_times}.Please answer the following questions related to this video."
)


# ------------------------------------------------------------------------------- Hugging Face form


build_messages, prepare_inputs = stacked_adapter(
    "LLaVA-Video",
    LLAVA_VIDEO_TIME_INSTRUCTION,
    module=__name__,
    processor_class="LlavaOnevisionProcessor",
    model_class="LlavaOnevisionForConditionalGeneration",
)


class LlavaVideoAnswerer(Answerer):
    """:class:`~tspo_sampler.adapters._base.Answerer` over ``LlavaOnevisionForConditionalGeneration``."""

    def prepare(self, selections: Sequence[Selection], questions: Sequence[str], **options: Any) -> Any:
        return prepare_inputs(self.processor, selections, questions, **options)


# ---------------------------------------------------------------------------------- original form


def build_original_prompt(
    question: str,
    *,
    time_instruction: str | None = None,
    system: str | None = QWEN_SYSTEM,
    num_images: int = 1,
) -> str:
    """The ``qwen_1_5`` (ChatML) conversation prompt of LLaVA-NeXT with the ``<image>`` placeholder::

        <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n<image>\\n
        {time instruction}\\n{question}<|im_end|>\\n<|im_start|>assistant\\n
    """
    user = DEFAULT_IMAGE_TOKEN * num_images + "\n"
    if time_instruction:
        user += time_instruction + "\n"
    user += question
    head = "" if not system else f"<|im_start|>system\n{system}<|im_end|>\n"
    return f"{head}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def tokenize_with_image_token(
    prompt: str, tokenizer: Any, image_token_index: int = IMAGE_TOKEN_INDEX, image_token: str = DEFAULT_IMAGE_TOKEN
) -> torch.Tensor:
    """Token ids of ``prompt`` with each ``<image>`` replaced by ``image_token_index`` (1-D LongTensor).

    Equivalent to LLaVA-NeXT's ``tokenizer_image_token`` for tokenizers that add no BOS (Qwen2); when
    the tokenizer does add a BOS it is kept once, at the start.
    """
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split(image_token)]
    bos = getattr(tokenizer, "bos_token_id", None)
    ids: list[int] = []
    for n, chunk in enumerate(chunks):
        if n > 0:
            ids.append(image_token_index)
            if bos is not None and chunk and chunk[0] == bos:
                chunk = chunk[1:]
        ids.extend(chunk)
    return torch.tensor(ids, dtype=torch.long)


def prepare_original_inputs(
    tokenizer: Any,
    image_processor: Any,
    selection: Selection,
    question: str | None = None,
    *,
    time_instruction: bool = True,
    time_template: str = LLAVA_VIDEO_TIME_INSTRUCTION,
    system: str | None = QWEN_SYSTEM,
    device: Any = None,
    dtype: Any = None,
) -> dict[str, Any]:
    """Inputs for the original LLaVA-NeXT ``LlavaQwenForCausalLM`` (batch of one, as its eval code).

    Returns ``{"input_ids": [1, L] with -200 at the image, "attention_mask", "images": [pixel_values
    k x 3 x H x W], "modalities": ["video"], "prompt": str}``; call
    ``model.generate(inputs["input_ids"], images=inputs["images"], modalities=inputs["modalities"], ...)``.
    """
    (sel,), (q,) = as_batch(selection, question)
    frames = selection_frames(sel)
    pixel_values = image_processor.preprocess(list(frames), return_tensors="pt")["pixel_values"]
    ti = _instruction(sel, time_instruction, time_template)
    prompt = build_original_prompt(q, time_instruction=ti, system=system)
    input_ids = tokenize_with_image_token(prompt, tokenizer).unsqueeze(0)
    if device is not None:
        input_ids = input_ids.to(device)
        pixel_values = pixel_values.to(device)
    if dtype is not None:
        pixel_values = pixel_values.to(dtype)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "images": [pixel_values],
        "modalities": ["video"],
        "prompt": prompt,
    }


def _instruction(selection: Selection, add: bool, template: str) -> str | None:
    return time_instruction(selection, template) if add else None
