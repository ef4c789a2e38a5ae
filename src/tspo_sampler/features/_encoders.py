"""CLIP-style image/text encoders with batched, on-device preprocessing.

Preprocessing runs as torch ops on whole batches (resize shortest edge with antialiased bicubic, round to
``uint8`` like PIL does, center crop, normalise), matching ``CLIPImageProcessor`` to about 1e-3 without a
per-frame PIL round trip.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from ._weights import (
    BF16_SLOWDOWN_NOTE,
    autocast,
    autocast_dtype,
    compute_dtype,
    cpu_has_bf16,
    stored_state_dict,
    use_autocast_matmuls,
)

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImagePreprocessing:
    """What the encoder expects of an image: shortest-edge resize, center crop and normalisation."""

    shortest_edge: int = 224
    crop_height: int = 224
    crop_width: int = 224
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD
    interpolation: str = "bicubic"

    @classmethod
    def from_processor_config(cls, cfg: dict[str, Any]) -> ImagePreprocessing:
        """Read a ``preprocessor_config.json`` of a ``CLIPImageProcessor``."""
        size = cfg.get("size", 224)
        shortest = size.get("shortest_edge", size.get("height", 224)) if isinstance(size, dict) else int(size)
        crop = cfg.get("crop_size", shortest)
        if isinstance(crop, dict):
            ch, cw = int(crop.get("height", shortest)), int(crop.get("width", shortest))
        else:
            ch = cw = int(crop)
        resample = cfg.get("resample", 3)
        interpolation = "bicubic"
        if isinstance(resample, int):
            interpolation = {2: "bilinear", 3: "bicubic"}.get(resample, "bicubic")
        return cls(
            shortest_edge=int(shortest),
            crop_height=ch,
            crop_width=cw,
            mean=tuple(float(x) for x in cfg.get("image_mean", OPENAI_CLIP_MEAN)),  # type: ignore[arg-type]
            std=tuple(float(x) for x in cfg.get("image_std", OPENAI_CLIP_STD)),  # type: ignore[arg-type]
            interpolation=interpolation,
        )

    def to_processor_config(self) -> dict[str, Any]:
        """The ``preprocessor_config.json`` of the equivalent ``CLIPImageProcessor``."""
        return {
            "crop_size": {"height": self.crop_height, "width": self.crop_width},
            "do_center_crop": True,
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": list(self.mean),
            "image_processor_type": "CLIPImageProcessor",
            "image_std": list(self.std),
            "processor_class": "CLIPProcessor",
            "resample": 3 if self.interpolation == "bicubic" else 2,
            "rescale_factor": 1 / 255,
            "size": {"shortest_edge": self.shortest_edge},
        }


def to_channels_first(frames: torch.Tensor) -> torch.Tensor:
    """``N x H x W x 3`` or ``N x 3 x H x W`` -> ``N x 3 x H x W`` (channels-last wins when ambiguous)."""
    if frames.ndim == 3:
        frames = frames.unsqueeze(0)
    if frames.ndim != 4:
        raise ValueError(f"frames must be N x H x W x 3 or N x 3 x H x W, got shape {tuple(frames.shape)}")
    if frames.shape[-1] == 3:
        return frames.permute(0, 3, 1, 2)
    if frames.shape[1] == 3:
        return frames
    raise ValueError(f"frames must have 3 (RGB) channels, got shape {tuple(frames.shape)}")


def preprocess_frames(
    frames: torch.Tensor,
    spec: ImagePreprocessing,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Batched CLIP preprocessing of ``uint8`` frames (``N x H x W x 3`` or ``N x 3 x H x W``)."""
    x = to_channels_first(frames)
    if torch.device(device).type == "cuda" and x.device.type == "cpu":
        x = x.pin_memory()  # uint8 goes over the bus (4x smaller than float), asynchronously
    x = x.to(device=device, non_blocking=True)
    _, _, h, w = x.shape
    short, long = (h, w) if h <= w else (w, h)
    new_short = spec.shortest_edge
    new_long = int(new_short * long / short)
    size = (new_short, new_long) if h <= w else (new_long, new_short)
    if size != (h, w):
        x = x.float()
        # PIL resizes uint8 images in two separable passes (width, then height), rounding to uint8 after
        # each; doing the same keeps us within one grey level of CLIPImageProcessor.
        if size[1] != w:
            x = F.interpolate(x, size=(h, size[1]), mode=spec.interpolation, antialias=True, align_corners=False)
            x = x.clamp_(0, 255).round_()
        if size[0] != h:
            x = F.interpolate(x, size=size, mode=spec.interpolation, antialias=True, align_corners=False)
            x = x.clamp_(0, 255).round_()
    _, _, h, w = x.shape
    top, left = (h - spec.crop_height) // 2, (w - spec.crop_width) // 2
    if top < 0 or left < 0:  # smaller than the crop: pad like the HF processor does
        pad_h, pad_w = max(spec.crop_height - h, 0), max(spec.crop_width - w, 0)
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        _, _, h, w = x.shape
        top, left = (h - spec.crop_height) // 2, (w - spec.crop_width) // 2
    # Crop before converting frames that need no resize (decoders already deliver the encoder's size):
    # the float copy is then only as large as the encoder's input.
    x = x[:, :, top : top + spec.crop_height, left : left + spec.crop_width]
    x = x.float() if x.dtype != torch.float32 else x.clone()  # never normalise the caller's tensor in place
    mean = torch.tensor(spec.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(1, 3, 1, 1)
    return x.div_(255.0).sub_(mean).div_(std).to(dtype)


@runtime_checkable
class ImageTextEncoder(Protocol):
    """What the sampler needs of an encoder: projected image and text features in one space.

    Optional: ``pass_rows``, the frames per forward pass when every pass is padded to that many; the CPU
    coarse-to-fine search then fills its requests to whole passes."""

    embed_dim: int
    preprocessing: ImagePreprocessing
    device: torch.device
    dtype: torch.dtype

    def encode_images(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8`` frames -> ``N x embed_dim`` float32 features (not normalised)."""

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Strings -> ``n x embed_dim`` float32 features (not normalised)."""

    def fingerprint(self) -> str:
        """A short content hash of what determines image features (weights, preprocessing, dtype)."""


def _tensor_digest(h: hashlib._Hash, tensors: dict[str, torch.Tensor], sampled: Sequence[str]) -> None:
    # Names, shapes and sampled values, not storage dtypes: weights kept compact (stored bfloat16, widened
    # on use) give the same features as the same weights widened at load, so they share cache entries.
    for name in sorted(tensors):
        h.update(f"{name}:{tuple(tensors[name].shape)};".encode())
    for name in sampled:
        if name in tensors:
            h.update(tensors[name].detach().float().cpu().contiguous().numpy().tobytes())


class _TorchEncoder(ABC):
    """What both encoders share: a torch ``model`` whose device and dtype are the encoder's."""

    model: Any
    preprocessing: ImagePreprocessing
    embed_dim: int

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype (weights kept compact are stored narrower, see :mod:`tspo_sampler.features._weights`)."""
        return compute_dtype(self.model)

    @property
    def precision(self) -> str:
        """How image features are computed: ``"float32"``, or ``"autocast-bfloat16"`` for the CPU bfloat16 path."""
        name = str(self.dtype).replace("torch.", "")
        return f"autocast-{name}" if autocast_dtype(self.model) is not None else name

    @abstractmethod
    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The projected image features of preprocessed pixels."""

    def _precision_tag(self) -> str:
        # float32, float16 and bfloat16 models keep the tags they always had (``str(dtype)``), so their
        # existing cache entries stay valid; the CPU bfloat16 path gets one of its own.
        return str(self.dtype) if autocast_dtype(self.model) is None else self.precision

    @abstractmethod
    def _image_towers(self) -> list[torch.nn.Module]:
        """The modules that compute image features (the vision tower and its projection)."""

    def autocast_images(self, dtype: torch.dtype = torch.bfloat16) -> None:
        """Compute image features with ``dtype`` matrix products under autocast (the CPU bfloat16 path).

        Text features stay float32: one question costs nothing, and it keeps the text side exact. Warns on a
        CPU without bfloat16 instructions, where the measured speed-up does not apply.
        """
        if self.device.type == "cpu" and not cpu_has_bf16():
            warnings.warn(
                "dtype=torch.bfloat16 on a CPU without AVX512-BF16 or AMX: the speed-up measured in "
                f"docs/benchmarks.md needs those instructions; here bfloat16 is {BF16_SLOWDOWN_NOTE}. "
                "Use float32 (the default) or dtype='auto'",
                RuntimeWarning,
                stacklevel=2,
            )
        use_autocast_matmuls(self.model, self._image_towers(), dtype)
        self._fingerprint = None

    batch_rows: int | None = None
    """Frames per forward pass; every pass gets exactly this many (the last one padded with blank frames).
    Matrix kernels choose their blocking by the number of rows, so without a fixed shape a frame's features
    would depend, in the last bits, on how many frames were encoded with it, and a coarse-to-fine search
    (which encodes frames in batches of any size) would not reproduce the exhaustive scores bit for bit.
    ``None``: 8 on the CPU (no slower per frame than larger passes there), 32 on an accelerator."""

    @property
    def pass_rows(self) -> int:
        """Frames per forward pass (:attr:`batch_rows` resolved for this device): a call of a multiple of it
        pads nothing, so the coarse-to-fine search fills its requests up to one."""
        if self.batch_rows is not None:
            return int(self.batch_rows)
        return 8 if self.device.type == "cpu" else 32

    @torch.inference_mode()
    def encode_images(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8`` frames -> ``N x embed_dim`` float32 features (not normalised).

        A frame's features do not depend on the other frames of the call (see :attr:`batch_rows`)."""
        pixels = preprocess_frames(frames, self.preprocessing, device=self.device, dtype=self.dtype)
        rows = self.pass_rows
        parts = []
        for start in range(0, len(pixels), rows):
            chunk = pixels[start : start + rows]
            real = len(chunk)
            if real < rows:
                chunk = torch.cat([chunk, chunk.new_zeros((rows - real, *chunk.shape[1:]))])
            with autocast(self.model):
                parts.append(self._image_features(chunk)[:real].float())
        if not parts:
            return torch.zeros(0, self.embed_dim, device=self.device)
        return torch.cat(parts) if len(parts) > 1 else parts[0]


class HFCLIPEncoder(_TorchEncoder):
    """A transformers ``CLIPModel`` (what TSPO checkpoints hold) with its tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, preprocessing: ImagePreprocessing) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.preprocessing = preprocessing
        self.embed_dim = int(model.config.projection_dim)
        max_pos = int(getattr(model.config.text_config, "max_position_embeddings", 77))
        tok_max = getattr(tokenizer, "model_max_length", max_pos) or max_pos
        self.max_text_length = int(min(max_pos, tok_max))
        self._fingerprint: str | None = None

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = self.model.vision_model(pixel_values=pixels).pooler_output
        return self.model.visual_projection(pooled)

    def _image_towers(self) -> list[torch.nn.Module]:
        return [self.model.vision_model, self.model.visual_projection]

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_text_length, return_tensors="pt"
        ).to(self.device)
        pooled = self.model.text_model(
            input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")
        ).pooler_output
        return self.model.text_projection(pooled).float()

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256(b"hf-clip-v1;")
            prefixes = ("vision_model.", "visual_projection.")
            vision = {n: p for n, p in stored_state_dict(self.model).items() if n.startswith(prefixes)}
            names = sorted(vision)
            _tensor_digest(h, vision, [names[0], names[len(names) // 2], "visual_projection.weight"])
            h.update(json.dumps(asdict(self.preprocessing), sort_keys=True).encode())
            h.update(self._precision_tag().encode())
            self._fingerprint = h.hexdigest()[:24]
        return self._fingerprint


class OpenCLIPEncoder(_TorchEncoder):
    """Any open_clip model, for agents trained on another backbone (or raw CLIP similarity without one)."""

    def __init__(self, model: Any, tokenizer: Any, preprocessing: ImagePreprocessing, name: str = "open_clip") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.preprocessing = preprocessing
        self.name = name
        self.embed_dim = int(getattr(model, "embed_dim", None) or model.text_projection.shape[-1])
        self._fingerprint: str | None = None

    @classmethod
    def from_name(
        cls,
        model_name: str,
        *,
        pretrained: str | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> OpenCLIPEncoder:
        """Build with ``open_clip.create_model`` (``pretrained`` is a tag, a local file or ``hf-hub:`` id)."""
        from ._install import install_check

        with install_check("open_clip", "open_clip"):
            import open_clip

        model = open_clip.create_model(model_name, pretrained=pretrained, device=device)
        cpu_bf16 = dtype == torch.bfloat16 and torch.device(device).type == "cpu"
        model = model.to(dtype=torch.float32 if cpu_bf16 else dtype)
        tokenizer = open_clip.get_tokenizer(model_name)
        cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", getattr(model.visual, "image_size", 224))
        size = size if isinstance(size, int) else int(min(size))
        interp = cfg.get("interpolation", "bicubic")
        spec = ImagePreprocessing(
            shortest_edge=size,
            crop_height=size,
            crop_width=size,
            mean=tuple(cfg.get("mean", OPENAI_CLIP_MEAN)),
            std=tuple(cfg.get("std", OPENAI_CLIP_STD)),
            interpolation=interp if interp in ("bicubic", "bilinear") else "bicubic",
        )
        encoder = cls(model, tokenizer, spec, name=f"{model_name}:{pretrained}")
        if cpu_bf16:  # bfloat16 products, float32 everywhere else (see tspo_sampler.features._weights)
            encoder.autocast_images(torch.bfloat16)
        return encoder

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _image_towers(self) -> list[torch.nn.Module]:
        return [self.model.visual]

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return self.model.encode_text(tokens).float()

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256(f"open-clip-v1;{self.name};".encode())
            visual = {n: p for n, p in stored_state_dict(self.model).items() if n.startswith("visual.")}
            names = sorted(visual)
            _tensor_digest(h, visual, [names[0], names[len(names) // 2], names[-1]])
            h.update(json.dumps(asdict(self.preprocessing), sort_keys=True).encode())
            h.update(self._precision_tag().encode())
            self._fingerprint = h.hexdigest()[:24]
        return self._fingerprint
