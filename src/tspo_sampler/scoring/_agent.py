"""The TSPO temporal agent: windowed self-attention over CLIP frame features, scored against the question.

The arithmetic follows the released reference exactly (see ``docs/concepts.md``), but the attention is
computed over a band of ``window_size`` neighbours per frame, so time and memory grow with ``T * w``
instead of ``T * T``. :func:`dense_reference_scores` keeps the reference's dense formulation for tests and
benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WINDOW_SIZE = 12
DEFAULT_SCORE_TAU = 0.025
COSINE_EPS = 1e-6
ATTENTION_CHUNK_ELEMENTS = 1 << 23  # frames per attention chunk x window x dim (32 MB of float32)
ROW_BLOCK = 16  # frames per matrix product, aligned to the video's grid (see _grid_rows)
BLEND_CHUNK = 256  # frames per step of an estimate (score_blended): its buffers stay in the CPU's caches


def positional_encoding(
    num_frames: int, dim: int, *, device: torch.device | None = None, rows: tuple[int, int] | None = None,
    blocks: dict[int, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Sinusoidal encoding of the relative position ``t / T`` (``T x dim``, float32).

    ``PE[t, 2i] = sin((t/T) w_i)``, ``PE[t, 2i+1] = cos((t/T) w_i)``, ``w_i = exp(-2i ln(10000) / dim)``.
    ``rows=(start, stop)`` gives only rows ``start .. stop-1``, bit-identical to the full table's: every row is
    computed inside its grid-aligned block of :data:`ROW_BLOCK` rows, the same call whichever rows are asked for
    (a vectorised ``sin`` may round the tail of a call differently from its body). ``blocks``: the blocks already
    computed for this ``num_frames``, ``dim`` and device, by block number; new ones are added to it, so a caller
    asking for many row ranges computes each block once.
    """
    frequencies = _encoding_frequencies(dim, device)
    start, stop = (0, num_frames) if rows is None else rows
    if not 0 <= start <= stop <= num_frames:
        raise ValueError(f"rows {start}..{stop} must lie within the {num_frames} frames")
    blocks = {} if blocks is None else blocks
    first, last = start // ROW_BLOCK, -(-stop // ROW_BLOCK)
    for block in range(first, last):
        if block not in blocks:
            positions = torch.arange(block * ROW_BLOCK, (block + 1) * ROW_BLOCK, device=device)
            blocks[block] = _sinusoid(positions, num_frames, frequencies)
    parts = [blocks[block] for block in range(first, last)]
    table = torch.cat(parts) if parts else frequencies.new_zeros(0, dim)
    return table[start - first * ROW_BLOCK : stop - first * ROW_BLOCK]


def _encoding_frequencies(dim: int, device: torch.device | None) -> torch.Tensor:
    if dim % 2:
        raise ValueError(f"feature dimension must be even for the positional encoding, got {dim}")
    return torch.exp(torch.arange(0, dim, 2, device=device) * (-torch.log(torch.tensor(10000.0, device=device)) / dim))


def _sinusoid(positions: torch.Tensor, num_frames: int, frequencies: torch.Tensor) -> torch.Tensor:
    """Rows of the encoding at ``positions`` (``sin`` and ``cos`` interleaved), computed in one call each."""
    angle = (positions.unsqueeze(1) / num_frames) * frequencies
    return torch.stack([torch.sin(angle), torch.cos(angle)], dim=2).flatten(1)


def encoding_at(positions: torch.Tensor, num_frames: int, dim: int) -> torch.Tensor:
    """The positional encoding at arbitrary ``positions``, computed directly: equal to
    :func:`positional_encoding`'s rows up to the last bits, for estimates (not for exact scores)."""
    return _sinusoid(positions, num_frames, _encoding_frequencies(dim, positions.device))


def window_positions(
    num_frames: int, window_size: int, *, device: torch.device | None = None, rows: tuple[int, int] | None = None
) -> torch.Tensor:
    """Key positions each frame attends to: ``clamp(j - w//2 + m, 0, T-1)`` for ``m < w`` (``T x w``).

    ``rows=(start, stop)`` gives only the rows of frames ``start .. stop-1`` (positions still on the full grid).
    """
    start, stop = (0, num_frames) if rows is None else rows
    offsets = torch.arange(window_size, device=device) - window_size // 2
    pos = torch.arange(start, stop, device=device).unsqueeze(1) + offsets.unsqueeze(0)
    return pos.clamp_(0, num_frames - 1)


def window_halo(window_size: int) -> tuple[int, int]:
    """Neighbours on each side whose features a frame's score depends on: ``(w//2, w - w//2 - 1)``.

    Frame ``j``'s agent score is a function of the features of frames ``j - w//2 .. j + w - w//2 - 1``
    (clamped to the video) and of ``j / T`` only, so a span scored with this halo matches the full pass.
    """
    return window_size // 2, window_size - window_size // 2 - 1


def _pair_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine of each row of ``a`` with the single row ``b``, dividing by ``|a||b| + 1e-6`` like the reference."""
    dot = a @ b.reshape(-1)
    return dot / (a.norm(dim=-1) * b.reshape(-1).norm() + COSINE_EPS)


def _grid_rows(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, first_row: int) -> torch.Tensor:
    """Apply a row-wise ``fn`` to ``x`` (the rows ``first_row ..`` of a video's grid) in zero-padded blocks of
    :data:`ROW_BLOCK` rows aligned to the grid.

    A BLAS matrix product may round a row differently depending on how many rows it is given and where
    the row sits among them. Computing every row inside the same grid-aligned block shape makes a frame's
    result independent of which other frames are computed with it, so a span scored alone matches the
    full pass bit for bit.
    """
    n = x.shape[0]
    base = (first_row // ROW_BLOCK) * ROW_BLOCK
    if base == first_row and n % ROW_BLOCK == 0:
        padded = x
    else:
        blocks = -(-(first_row - base + n) // ROW_BLOCK)
        padded = x.new_zeros((blocks * ROW_BLOCK, *x.shape[1:]))
        padded[first_row - base : first_row - base + n] = x
    out = torch.cat([fn(padded[s : s + ROW_BLOCK]) for s in range(0, padded.shape[0], ROW_BLOCK)])
    return out[first_row - base : first_row - base + n]


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
        """``x``: ``T x D``. Returns the concatenated head outputs, ``T x D``."""
        return self.attend_span(x, window_size, offset=0, total=x.shape[0], start=0, stop=x.shape[0])

    def attend_span(
        self, x: torch.Tensor, window_size: int, *, offset: int, total: int, start: int, stop: int
    ) -> torch.Tensor:
        """Head outputs of frames ``start .. stop-1`` of a ``total``-frame video, given ``x`` for the
        frames ``offset .. offset + len(x) - 1``, which must hold every key those frames attend to.

        Keys and values are padded with copies of the edge frames so that the window of frame ``j`` is the
        contiguous slice ``j .. j + w - 1`` of the padded sequence; an ``unfold`` view turns each chunk of
        frames into batched ``w``-long dot products without materialising ``T x T`` (or ``T x w x D`` at once).
        The whole video is the span ``offset=0, start=0, stop=total``.
        """
        L = x.shape[0]
        H, hd, w = self.num_heads, self.head_dim, window_size
        n = stop - start
        pad = (torch.arange(start, stop + w - 1, device=x.device) - w // 2).clamp_(0, total - 1) - offset
        if n < 1 or int(pad.min()) < 0 or int(pad.max()) >= L:
            raise ValueError(
                f"span {start}..{stop} of {total} frames needs features of frames {int(pad.min()) + offset}.."
                f"{int(pad.max()) + offset}, got {offset}..{offset + L - 1}"
            )
        q = _grid_rows(self.Self_q, x[start - offset : stop - offset], start).view(n, H, hd)
        k = _grid_rows(self.Self_k, x, offset).view(L, H, hd)
        v = _grid_rows(self.Self_v, x, offset).view(L, H, hd)
        return self.attend_projected(q, k[pad], v[pad], total=total, start=start)

    def attend_projected(
        self, q: torch.Tensor, k_pad: torch.Tensor, v_pad: torch.Tensor, *, total: int, start: int
    ) -> torch.Tensor:
        """Head outputs from projected queries of frames ``start .. start + len(q) - 1`` (``n x H x hd``) and
        their keys and values laid out so that frame ``j``'s window is rows ``j - start .. j - start + w - 1``
        of ``k_pad``/``v_pad`` (``(n + w - 1) x H x hd``, edge frames repeated)."""
        n, w = q.shape[0], k_pad.shape[0] - q.shape[0] + 1
        pos = window_positions(total, w, device=q.device, rows=(start, start + n))
        # Clamping repeats edge positions; the reference's binary mask counts each position once.
        repeated = torch.zeros_like(pos, dtype=torch.bool)
        repeated[:, 1:] = pos[:, 1:] == pos[:, :-1]
        scale = 1.0 / math.sqrt(self.head_dim)
        out = torch.empty_like(q)
        chunk = max(1, ATTENTION_CHUNK_ELEMENTS // (w * self.dim))
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            keys = k_pad[s : e + w - 1].unfold(0, w, 1)  # m x H x hd x w (a view)
            values = v_pad[s : e + w - 1].unfold(0, w, 1)
            logits = torch.einsum("nhd,nhdw->nhw", q[s:e], keys) * scale
            logits = logits.masked_fill(repeated[s:e].unsqueeze(1), float("-inf"))
            out[s:e] = torch.einsum("nhw,nhdw->nhd", torch.softmax(logits, dim=-1), values)
        return out.reshape(n, self.dim)


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
        T = image_features.shape[0] if isinstance(image_features, torch.Tensor) and image_features.ndim == 2 else 0
        return self.score_span(
            image_features, text_features, clip_scores, offset=0, total=T, start=0, stop=T,
            window_size=window_size, tau=tau,
        )

    def score_span(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        clip_scores: torch.Tensor | None = None,
        *,
        offset: int,
        total: int,
        start: int,
        stop: int,
        window_size: int = DEFAULT_WINDOW_SIZE,
        tau: float = DEFAULT_SCORE_TAU,
        position_encoding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores of frames ``start .. stop-1`` of a ``total``-frame video, bit-identical to :meth:`forward`
        on the whole video, from the features of frames ``offset .. offset + len(image_features) - 1`` only.

        Those must cover the span plus its halo (:func:`window_halo`). ``clip_scores`` and the result
        cover the given features and the span respectively. ``position_encoding``: the encoding's rows of the
        given features, ``positional_encoding(total, D, rows=(offset, offset + len(image_features)))``, when the
        caller already has them (computed here otherwise; their values match the full pass's exactly).
        """
        feats, text, clip_scores = _check_feature_inputs(image_features, text_features, clip_scores, self.dim)
        from ._settings import check_positive_int  # (that module imports this one)

        window_size = int(check_positive_int(window_size, "window_size") or 0)
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        if not 0 <= offset <= start < stop <= offset + feats.shape[0] <= total:
            raise ValueError(
                f"span {start}..{stop} must lie within the given frames {offset}..{offset + feats.shape[0]} "
                f"of {total}"
            )
        rows_given = (offset, offset + feats.shape[0])
        if position_encoding is None:
            position_encoding = positional_encoding(total, feats.shape[1], device=feats.device, rows=rows_given)
        elif position_encoding.shape != feats.shape:
            raise ValueError(
                f"position_encoding must hold the {feats.shape[0]} rows {rows_given[0]}..{rows_given[1]} of the "
                f"encoding ({tuple(feats.shape)}), got {tuple(position_encoding.shape)}"
            )
        pe = position_encoding.to(feats.dtype)
        x = feats + pe
        rows = slice(start - offset, stop - offset)
        heads = self.temporal.attend_span(x, window_size, offset=offset, total=total, start=start, stop=stop)
        attended = _grid_rows(self.mlp, heads, start) + feats[rows]
        cosine = _grid_rows(lambda a: _pair_cosine(a, text), attended, start)
        return (cosine + clip_scores[rows]) / tau

    def project_coarse(
        self, coarse_features: torch.Tensor, coarse_positions: torch.Tensor, *, total: int
    ) -> torch.Tensor:
        """The attention's query, key and value projections (``2C x 3D``) of ``C`` coarse frames' features (rows
        ``:C``, no bias) and of their positional encodings in a ``total``-frame video (rows ``C:``, with the bias):
        what :meth:`score_blended` blends."""
        att = self.temporal
        pe = encoding_at(coarse_positions.to(coarse_features.device), total, self.dim)
        both = torch.cat([coarse_features, pe.to(coarse_features.dtype)])
        projected = torch.cat([F.linear(both, layer.weight) for layer in (att.Self_q, att.Self_k, att.Self_v)], 1)
        projected[len(coarse_features) :] += torch.cat([att.Self_q.bias, att.Self_k.bias, att.Self_v.bias])
        return projected

    def score_blended(
        self,
        coarse_features: torch.Tensor,
        coarse_positions: torch.Tensor,
        text_features: torch.Tensor,
        *,
        left: torch.Tensor,
        right: torch.Tensor,
        weight: torch.Tensor,
        total: int,
        rows: torch.Tensor | None = None,
        window_size: int = DEFAULT_WINDOW_SIZE,
        tau: float = DEFAULT_SCORE_TAU,
        projected: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores of a reconstructed ``total``-frame video whose frame ``t`` has the features
        ``lerp(coarse_features[left[t]], coarse_features[right[t]], weight[t])``: the coarse-to-fine search's
        estimate. ``rows`` (frame positions) limits which scores are returned.

        The inputs of the attention's projections are blends of two coarse frames, and the positional
        encoding is linear between two coarse positions up to a tiny error (its fastest component turns by
        one radian over the whole video), so queries, keys and values are computed for the coarse frames
        only and blended: about half the work of :meth:`forward` on the reconstruction, with scores that
        differ from it by far less than the estimate's own error. Not for exact scores. ``projected``:
        :meth:`project_coarse` of the same coarse frames, when the caller scores several blends of them.
        """
        feats, text, _ = _check_feature_inputs(coarse_features, text_features, None, self.dim)
        att, device = self.temporal, feats.device
        H, hd, w = att.num_heads, att.head_dim, window_size
        if projected is None:
            projected = self.project_coarse(feats, coarse_positions, total=total)
        frames = torch.arange(total, device=device) if rows is None else rows.to(device)
        scores = []
        # Stretches of wanted frames (with their windows' frames) in chunks that stay in the CPU's caches.
        for a, b in _runs(frames, gap=w, longest=BLEND_CHUNK):
            padded = torch.arange(a - w // 2, b + w - 1 - w // 2, device=device).clamp_(0, total - 1)
            qkv = blended_rows(padded, left, right, weight, coarse_positions, projected, encoding=True)
            qkv = qkv.view(-1, 3, H, hd)
            q = qkv[w // 2 : w // 2 + b - a, 0]
            heads = att.attend_projected(q, qkv[:, 1].contiguous(), qkv[:, 2].contiguous(), total=total, start=a)
            wanted = frames[torch.searchsorted(frames, a) : torch.searchsorted(frames, b)]
            if len(wanted) < b - a:
                heads = heads[wanted - a]
            blended = blended_rows(wanted, left, right, weight, coarse_positions, feats, encoding=False)
            attended = self.mlp(heads) + blended
            scores.append((_pair_cosine(attended, text) + F.cosine_similarity(text, blended, dim=-1)) / tau)
        return torch.cat(scores)


def _runs(frames: torch.Tensor, gap: int, longest: int) -> list[tuple[int, int]]:
    """Runs ``[a, b)`` covering ascending frame positions, joined where at most ``gap`` frames lie between, cut
    into pieces of at most ``longest`` frames."""
    values = frames.cpu().numpy()
    breaks = np.flatnonzero(np.diff(values) > gap) + 1
    runs = []
    for part in np.split(values, breaks):
        start, stop = int(part[0]), int(part[-1]) + 1
        runs += [(a, min(stop, a + longest)) for a in range(start, stop, longest)]
    return runs


def blended_rows(
    frames: torch.Tensor, left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor,
    coarse_positions: torch.Tensor, table: torch.Tensor, *, encoding: bool,
) -> torch.Tensor:
    """Rows of ``table`` blended for each frame ``f`` of ``frames``: rows ``left[f]`` and ``right[f]`` by
    ``weight[f]``; with ``encoding``, plus rows ``C + left[f]`` and ``C + right[f]`` (the coarse frames'
    positional encodings, ``C = len(table) // 2``) blended linearly in the frame's position.

    A chunk of frames touches only the coarse rows between its first and last, so this is one small dense
    matrix product (blend weights times those rows) rather than several gathers of wide rows.
    """
    lo, hi, mix = left[frames], right[frames], weight[frames].to(table.dtype)
    first, last = int(lo.min()), int(hi.max()) + 1
    columns, values, parts = [lo - first, hi - first], [1 - mix, mix], [table[first:last]]
    if encoding:
        at_lo, at_hi = coarse_positions[lo], coarse_positions[hi]
        # Where the frame lies between (or just past) the two coarse positions.
        along = ((frames - at_lo) / (at_hi - at_lo).clamp(min=1)).to(table.dtype)
        num_coarse, width = len(table) // 2, last - first
        columns += [lo - first + width, hi - first + width]
        values += [1 - along, along]
        parts.append(table[num_coarse + first : num_coarse + last])
    rows = torch.cat(parts) if len(parts) > 1 else parts[0]
    blend = torch.zeros(len(frames), len(rows), dtype=table.dtype, device=table.device)
    blend.scatter_add_(1, torch.stack(columns, 1), torch.stack(values, 1))
    return blend @ rows


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
    agent: TemporalAgent, image_features: torch.Tensor, text_features: torch.Tensor,
    clip_scores: torch.Tensor | None = None, *, window_size: int = DEFAULT_WINDOW_SIZE, tau: float = DEFAULT_SCORE_TAU,
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
