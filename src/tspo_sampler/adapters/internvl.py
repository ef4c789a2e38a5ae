"""InternVL: feed a TSPO :class:`~tspo_sampler._result.Selection` to InternVL in both its forms.

**Hugging Face form** (``InternVLForConditionalGeneration`` + ``InternVLProcessor``, ``*-hf``
checkpoints such as ``OpenGVLab/InternVL3-8B-hf``): the frames go to the processor as one video; it
expands the ``<video>`` placeholder into ``Frame1: <img><IMG_CONTEXT>...</img>\\nFrame2: ...``, one tile
(``image_seq_length`` tokens, 256 at 448 px) per frame.

**Original form** (model-card code of ``OpenGVLab/InternVL2_5-*`` / ``InternVL3-*`` with
``trust_remote_code``): each frame is resized to 448 x 448 tiles (``max_num=1``: one tile per frame, as
the card's video example), normalised with ImageNet statistics, stacked into ``pixel_values`` with a
``num_patches_list``, and the question is prefixed by ``Frame1: <image>\\nFrame2: <image>\\n...``; call
``model.chat(tokenizer, pixel_values, question, generation_config, num_patches_list=num_patches_list)``.
The card picks segment centres with ``get_index``; here the frames are TSPO's chosen ones.

Neither form carries timestamps; ``time_instruction=True`` prepends a sentence with the chosen frames'
times (off by default, InternVL was not trained with one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._result import Selection
from ._base import TIME_INSTRUCTION, Answerer, as_batch, selection_frames, with_time_instruction
from ._stacked import stacked_adapter

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMG_CONTEXT_TOKEN",
    "IMG_END_TOKEN",
    "IMG_START_TOKEN",
    "InternVLAnswerer",
    "build_messages",
    "build_original_prompt",
    "dynamic_tiles",
    "expand_image_placeholders",
    "frames_to_pixel_values",
    "prepare_inputs",
    "prepare_original_inputs",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMG_START_TOKEN = "<img>"
IMG_END_TOKEN = "</img>"
IMG_CONTEXT_TOKEN = "<IMG_CONTEXT>"


# ------------------------------------------------------------------------------- Hugging Face form


build_messages, prepare_inputs = stacked_adapter(
    "InternVL",
    TIME_INSTRUCTION,
    module=__name__,
    processor_class="InternVLProcessor",
    model_class="InternVLForConditionalGeneration",
)


class InternVLAnswerer(Answerer):
    """:class:`~tspo_sampler.adapters._base.Answerer` over ``InternVLForConditionalGeneration``."""

    def prepare(self, selections: Sequence[Selection], questions: Sequence[str], **options: Any) -> Any:
        return prepare_inputs(self.processor, selections, questions, **options)


# ---------------------------------------------------------------------------------- original form


def _tile_grid(width: int, height: int, image_size: int, min_num: int, max_num: int) -> tuple[int, int]:
    """The (columns, rows) grid whose aspect ratio is closest to the image's (ties: the larger grid
    when the image has enough pixels), among grids with ``min_num <= cols * rows <= max_num``."""
    aspect = width / height
    grids = sorted(
        {
            (c, r)
            for n in range(min_num, max_num + 1)
            for c in range(1, n + 1)
            for r in range(1, n + 1)
            if min_num <= c * r <= max_num
        },
        key=lambda g: g[0] * g[1],
    )
    best, best_diff = (1, 1), float("inf")
    area = width * height
    for c, r in grids:
        diff = abs(aspect - c / r)
        if diff < best_diff:
            best, best_diff = (c, r), diff
        elif diff == best_diff and area > 0.5 * image_size * image_size * c * r:
            best = (c, r)
    return best


def dynamic_tiles(
    image: Any, *, image_size: int = 448, min_num: int = 1, max_num: int = 1, use_thumbnail: bool = True
) -> list[Any]:
    """Split a PIL image into ``image_size`` square tiles on the grid closest to its aspect ratio, plus
    a whole-image thumbnail when more than one tile was made (InternVL's dynamic resolution).
    ``max_num=1`` gives a single tile: the frame resized to ``image_size x image_size``."""
    from PIL import Image

    w, h = image.size
    cols, rows = _tile_grid(w, h, image_size, min_num, max_num)
    resized = image.resize((cols * image_size, rows * image_size), Image.BICUBIC)
    tiles = [
        resized.crop((c * image_size, r * image_size, (c + 1) * image_size, (r + 1) * image_size))
        for r in range(rows)
        for c in range(cols)
    ]
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size), Image.BICUBIC))
    return tiles


def _to_tensor(tile: Any) -> torch.Tensor:
    arr = np.asarray(tile.convert("RGB"), dtype=np.float32) / 255.0
    t = torch.from_numpy(arr).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (t - mean) / std


def frames_to_pixel_values(
    frames: np.ndarray, *, input_size: int = 448, max_num: int = 1, use_thumbnail: bool = True
) -> tuple[torch.Tensor, list[int]]:
    """``(pixel_values [sum(num_patches) x 3 x input_size x input_size], num_patches_list)``."""
    from PIL import Image

    tensors, num_patches = [], []
    for frame in frames:
        tiles = dynamic_tiles(
            Image.fromarray(np.asarray(frame, dtype=np.uint8)),
            image_size=input_size,
            max_num=max_num,
            use_thumbnail=use_thumbnail,
        )
        tensors.extend(_to_tensor(t) for t in tiles)
        num_patches.append(len(tiles))
    return torch.stack(tensors), num_patches


def build_original_prompt(num_frames: int, question: str) -> str:
    """``"Frame1: <image>\\nFrame2: <image>\\n...{question}"`` (the model card's video prompt)."""
    return "".join(f"Frame{i + 1}: <image>\n" for i in range(num_frames)) + question


def expand_image_placeholders(prompt: str, num_patches_list: Sequence[int], num_image_token: int = 256) -> str:
    """What ``model.chat`` does to the prompt: each ``<image>`` becomes
    ``<img>`` + ``<IMG_CONTEXT>`` x (``num_image_token`` x patches) + ``</img>``, in order."""
    for n in num_patches_list:
        tile = IMG_START_TOKEN + IMG_CONTEXT_TOKEN * (num_image_token * n) + IMG_END_TOKEN
        prompt = prompt.replace("<image>", tile, 1)
    return prompt


def prepare_original_inputs(
    selection: Selection,
    question: str | None = None,
    *,
    input_size: int = 448,
    max_num: int = 1,
    use_thumbnail: bool = True,
    time_instruction: bool = False,
    time_template: str = TIME_INSTRUCTION,
    device: Any = None,
    dtype: Any = None,
) -> dict[str, Any]:
    """Inputs for the original InternVL ``model.chat``: ``{"pixel_values", "num_patches_list", "question"}``.

    ``model.chat(tokenizer, inputs["pixel_values"], inputs["question"], generation_config,
    num_patches_list=inputs["num_patches_list"])``.
    """
    (sel,), (q,) = as_batch(selection, question)
    frames = selection_frames(sel)
    pixel_values, num_patches = frames_to_pixel_values(
        frames, input_size=input_size, max_num=max_num, use_thumbnail=use_thumbnail
    )
    if device is not None or dtype is not None:
        pixel_values = pixel_values.to(device=device, dtype=dtype)
    text = with_time_instruction(sel, q, time_instruction, time_template)
    return {
        "pixel_values": pixel_values,
        "num_patches_list": num_patches,
        "question": build_original_prompt(len(num_patches), text),
    }
