"""Checks on what users pass to the sampler: questions, the decoder, and in-memory frames as ``uint8`` tensors.

File sources are checked in :mod:`tspo_sampler.video._sources`, candidate settings in
:mod:`tspo_sampler.video._candidates`.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["DECODERS", "check_decoder", "check_question", "decode_device", "frames_to_uint8"]

DECODERS = ("auto", "pyav", "decord", "torchcodec")
"""What ``decoder=`` accepts: the :class:`~tspo_sampler.video.VideoDecoder` backends. They decode the same frames
at the same presentation times, so the feature cache key leaves the decoder out."""


def check_question(question: object, name: str = "question") -> str:
    if question is None:
        raise ValueError(f"{name} is None; pass the question the frames should answer")
    if not isinstance(question, str):
        raise TypeError(f"{name} must be a string, got {type(question).__name__}")
    if not question.strip():
        raise ValueError(f"{name} is blank; pass the question the frames should answer")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800"): no tokenizer can read it
        raise ValueError(
            f"{name} is not valid text: it holds the lone surrogate {question[exc.start]!r} at position {exc.start} "
            "(a broken decode of the input?)"
        ) from None
    return question


def check_decoder(decoder: object) -> str:
    """``decoder`` checked before any work starts (the video package is imported only to decode)."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")  # as SelectionSettings says
    return str(decoder)


def decode_device(decoder: str, device: torch.device) -> str | None:
    """Where ``decoder`` decodes for a sampler on ``device``: torchcodec on a CUDA sampler decodes with NVDEC on
    that GPU, so decoding leaves the CPU; every other case decodes on the CPU (``None``)."""
    return str(device) if decoder == "torchcodec" and device.type == "cuda" else None


_UINT16_SCALE = 255.0 / 65535.0


def _as_tensor(video: object) -> torch.Tensor:
    if isinstance(video, np.ndarray):
        if video.dtype == np.uint16:  # 16-bit pixels: scaled to 8 bits, not clamped
            return torch.from_numpy(np.round(video.astype(np.float32) * _UINT16_SCALE).astype(np.uint8))
        return torch.from_numpy(np.ascontiguousarray(video))
    if isinstance(video, torch.Tensor):
        return video.detach().cpu()
    if isinstance(video, (list, tuple)):
        if len(video) == 0:
            raise ValueError("video is an empty list: there are no frames to select from")
        from PIL import Image

        if not all(isinstance(im, Image.Image) for im in video):
            kinds = sorted({type(im).__name__ for im in video})
            raise TypeError(f"video as a list must hold PIL images, got {', '.join(kinds)}")
        sizes = {im.size for im in video}
        if len(sizes) > 1:
            raise ValueError(f"video frames must all have one size, got {sorted(sizes)}")
        return torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in video]))
    raise TypeError(
        "video must be a path, bytes, a binary file object, a uint8 array T x H x W x 3, a torch tensor "
        f"(T x H x W x 3 or T x 3 x H x W) or a list of PIL images; got {type(video).__name__}"
    )


def frames_to_uint8(video: object) -> torch.Tensor:
    """In-memory frames (array, tensor, PIL list) -> ``uint8`` tensor ``T x H x W x 3``.

    Float input is taken as 0-255 values, or 0-1 when its maximum is at most 1; NaN or infinite values raise.
    ``uint16`` input is scaled to 0-255; other integer input must hold values in 0-255.
    """
    tensor = _as_tensor(video)
    if tensor.dtype == getattr(torch, "uint16", None):
        tensor = (tensor.to(torch.float32) * _UINT16_SCALE).round().to(torch.uint8)
    if tensor.ndim != 4:
        raise ValueError(f"video frames must be T x H x W x 3 (or T x 3 x H x W), got shape {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise ValueError("video has no frames (T = 0)")
    if tensor.shape[-1] != 3:
        if tensor.shape[1] == 3:
            tensor = tensor.permute(0, 2, 3, 1)
        else:
            raise ValueError(f"video frames must have 3 RGB channels, got shape {tuple(tensor.shape)}")
    if tensor.shape[1] == 0 or tensor.shape[2] == 0:
        raise ValueError(f"video frames are empty (shape {tuple(tensor.shape)})")
    if tensor.dtype != torch.uint8:
        if tensor.dtype == torch.bool or tensor.is_complex():
            raise TypeError(f"video frames must be uint8 or float, got {tensor.dtype}")
        tensor = _to_0_255(tensor)
        tensor = tensor.clamp(0, 255).round().to(torch.uint8)
    return tensor.contiguous()


def _to_0_255(tensor: torch.Tensor) -> torch.Tensor:
    """Float or integer pixels as float 0-255; values that cannot be pixels raise instead of being clamped."""
    floating = tensor.is_floating_point()
    tensor = tensor.float()
    if not tensor.numel():
        return tensor
    if floating and not bool(torch.isfinite(tensor).all()):
        bad = "NaN" if bool(torch.isnan(tensor).any()) else "infinite"
        raise ValueError(f"video frames contain {bad} values")
    low, high = float(tensor.min()), float(tensor.max())
    if floating and high <= 1.0:
        return tensor * 255.0
    if low < -0.5 or high > 255.5:
        raise ValueError(
            f"video frames must hold pixel values in 0-255 (or 0-1 for floats, or uint16), got {low:g} to {high:g}"
        )
    return tensor
