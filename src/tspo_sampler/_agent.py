"""The TSPO temporal agent: windowed self-attention over CLIP frame features, scored against the question.

The arithmetic follows the released reference exactly (see ``docs/concepts.md``), but the attention is
computed over a band of ``window_size`` neighbours per frame, so time and memory grow with ``T * w``
instead of ``T * T``. :func:`dense_reference_scores` keeps the reference's dense formulation for tests and
benchmarks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WINDOW_SIZE = 12
DEFAULT_SCORE_TAU = 0.025
COSINE_EPS = 1e-6
ATTENTION_CHUNK_ELEMENTS = 1 << 23  # frames per attention chunk x window x dim (32 MB of float32)


def positional_encoding(num_frames: int, dim: int, *, device: torch.device | None = None) -> torch.Tensor:
    """Sinusoidal encoding of the relative position ``t / T`` (``T x dim``, float32).

    ``PE[t, 2i] = sin((t/T) w_i)``, ``PE[t, 2i+1] = cos((t/T) w_i)``, ``w_i = exp(-2i ln(10000) / dim)``.
    """
    if dim % 2:
        raise ValueError(f"feature dimension must be even for the positional encoding, got {dim}")
    position = torch.arange(num_frames, device=device).unsqueeze(1) / num_frames
    div_term = torch.exp(
        torch.arange(0, dim, 2, device=device) * (-torch.log(torch.tensor(10000.0, device=device)) / dim)
    )
    pe = torch.zeros(num_frames, dim, device=device)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def window_positions(num_frames: int, window_size: int, *, device: torch.device | None = None) -> torch.Tensor:
    """Key positions each frame attends to: ``clamp(j - w//2 + m, 0, T-1)`` for ``m < w`` (``T x w``)."""
    offsets = torch.arange(window_size, device=device) - window_size // 2
    pos = torch.arange(num_frames, device=device).unsqueeze(1) + offsets.unsqueeze(0)
    return pos.clamp_(0, num_frames - 1)


def _pair_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine of each row of ``a`` with the single row ``b``, dividing by ``|a||b| + 1e-6`` like the reference."""
    dot = a @ b.reshape(-1)
    return dot / (a.norm(dim=-1) * b.reshape(-1).norm() + COSINE_EPS)


class WindowedSelfAttention(nn.Module):
    """Multi-head self-attention where frame ``j`` sees only its ``window_size`` temporal neighbours.

    Parameter names match the reference (``Self_q``, ``Self_k``, ``Self_v``, ``ffn_o``) so released
    checkpoints load unchanged. ``ffn_o`` is stored but, as in the reference, not applied.
    """

    def __init__(self, dim: int = 768, num_heads: int = 8) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.Self_q = nn.Linear(dim, dim)
        self.Self_k = nn.Linear(dim, dim)
        self.Self_v = nn.Linear(dim, dim)
        self.ffn_o = nn.Linear(dim, dim)
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads

    def forward(self, x: torch.Tensor, window_size: int) -> torch.Tensor:
        """``x``: ``T x D``. Returns the concatenated head outputs, ``T x D``.

        Keys and values are padded with copies of the edge frames so that the window of frame ``j`` is the
        contiguous slice ``j .. j + w - 1`` of the padded sequence; an ``unfold`` view turns each chunk of
        frames into batched ``w``-long dot products without materialising ``T x T`` (or ``T x w x D`` at once).
        """
        T = x.shape[0]
        H, hd, w = self.num_heads, self.head_dim, window_size
        q = self.Self_q(x).view(T, H, hd)
        k = self.Self_k(x).view(T, H, hd)
        v = self.Self_v(x).view(T, H, hd)
        pad = (torch.arange(T + w - 1, device=x.device) - w // 2).clamp_(0, T - 1)
        k_pad, v_pad = k[pad], v[pad]  # (T + w - 1) x H x hd
        pos = window_positions(T, w, device=x.device)
        # Clamping repeats edge positions; the reference's binary mask counts each position once.
        repeated = torch.zeros_like(pos, dtype=torch.bool)
        repeated[:, 1:] = pos[:, 1:] == pos[:, :-1]
        scale = 1.0 / math.sqrt(hd)
        out = torch.empty_like(q)
        chunk = max(1, ATTENTION_CHUNK_ELEMENTS // (w * self.dim))
        for s in range(0, T, chunk):
            e = min(T, s + chunk)
            keys = k_pad[s : e + w - 1].unfold(0, w, 1)  # n x H x hd x w (a view)
            values = v_pad[s : e + w - 1].unfold(0, w, 1)
            logits = torch.einsum("nhd,nhdw->nhw", q[s:e], keys) * scale
            logits = logits.masked_fill(repeated[s:e].unsqueeze(1), float("-inf"))
            out[s:e] = torch.einsum("nhw,nhdw->nhd", torch.softmax(logits, dim=-1), values)
        return out.reshape(T, self.dim)


class TemporalAgent(nn.Module):
    """The TSPO agent (``selector`` in released checkpoints): ``temporal`` attention plus a residual ``mlp``."""

    def __init__(self, dim: int = 768, num_heads: int = 8) -> None:
        super().__init__()
        self.temporal = WindowedSelfAttention(dim, num_heads)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.dim = dim

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        clip_scores: torch.Tensor | None = None,
        *,
        window_size: int = DEFAULT_WINDOW_SIZE,
        tau: float = DEFAULT_SCORE_TAU,
    ) -> torch.Tensor:
        """Score every candidate frame.

        Args:
            image_features: ``T x D`` projected CLIP image features.
            text_features: ``1 x D`` (or ``D``) projected CLIP text feature of the question.
            clip_scores: ``T`` cosine similarities of text and image features (computed when ``None``).
            window_size: temporal neighbours each frame attends to.
            tau: score temperature.

        Returns:
            ``T`` logits ``(cos(A_t, q) + c_t) / tau``.
        """
        feats, text, clip_scores = _check_feature_inputs(image_features, text_features, clip_scores, self.dim)
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        x = feats + positional_encoding(feats.shape[0], feats.shape[1], device=feats.device).to(feats.dtype)
        attended = self.mlp(self.temporal(x, window_size)) + feats
        return (_pair_cosine(attended, text) + clip_scores) / tau


def _check_feature_inputs(
    image_features: torch.Tensor, text_features: torch.Tensor, clip_scores: torch.Tensor | None, dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(image_features, torch.Tensor) or image_features.ndim != 2:
        raise ValueError(
            f"image_features must be a 2-D tensor (T x {dim}), got "
            f"{getattr(image_features, 'shape', type(image_features).__name__)}"
        )
    if image_features.shape[0] == 0:
        raise ValueError("image_features has no frames (T = 0)")
    if image_features.shape[1] != dim:
        raise ValueError(f"image_features has dimension {image_features.shape[1]}, the agent expects {dim}")
    if not isinstance(text_features, torch.Tensor) or text_features.numel() != dim:
        raise ValueError(
            f"text_features must hold one {dim}-dim feature (1 x {dim}), got "
            f"{getattr(text_features, 'shape', type(text_features).__name__)}"
        )
    text = text_features.reshape(1, dim).to(image_features.dtype)
    if clip_scores is None:
        clip_scores = F.cosine_similarity(text, image_features, dim=-1)
    else:
        clip_scores = clip_scores.reshape(-1).to(image_features.dtype)
        if clip_scores.shape[0] != image_features.shape[0]:
            raise ValueError(
                f"clip_scores has {clip_scores.shape[0]} entries for {image_features.shape[0]} frames"
            )
    return image_features, text, clip_scores


def dense_reference_scores(
    agent: TemporalAgent,
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    clip_scores: torch.Tensor | None = None,
    *,
    window_size: int = DEFAULT_WINDOW_SIZE,
    tau: float = DEFAULT_SCORE_TAU,
) -> torch.Tensor:
    """The reference's dense formulation (``T x T`` mask filled with ``-1e6``), for parity tests and benchmarks.

    Quadratic in ``T``: do not use it on long videos.
    """
    feats, text, clip_scores = _check_feature_inputs(image_features, text_features, clip_scores, agent.dim)
    T, D = feats.shape
    att = agent.temporal
    x = feats + positional_encoding(T, D, device=feats.device).to(feats.dtype)
    q = att.Self_q(x).view(T, att.num_heads, att.head_dim).transpose(0, 1)
    k = att.Self_k(x).view(T, att.num_heads, att.head_dim).transpose(0, 1)
    v = att.Self_v(x).view(T, att.num_heads, att.head_dim).transpose(0, 1)
    mask = torch.zeros(T, T, device=feats.device)
    pos = window_positions(T, window_size, device=feats.device)
    mask.scatter_(1, pos, 1.0)
    logits = (q @ k.transpose(-2, -1)) / (att.head_dim**0.5)
    logits = logits.masked_fill(mask == 0, -1e6)
    out = (torch.softmax(logits, dim=-1) @ v).transpose(0, 1).reshape(T, D)
    attended = agent.mlp(out) + feats
    return (_pair_cosine(attended, text) + clip_scores) / tau
