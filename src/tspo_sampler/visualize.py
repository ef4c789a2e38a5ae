"""Pictures of a selection: a contact sheet of the chosen frames with their timestamps above the score curve."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ._result import Selection


def format_time(seconds: float) -> str:
    """``h:mm:ss.s`` or ``m:ss.s``."""
    seconds = max(float(seconds), 0.0)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h >= 1 else f"{int(m)}:{s:04.1f}"


COMMON_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def check_image_path(path: str | os.PathLike[str], name: str = "path") -> Path:
    """``path`` if its suffix names an image format Pillow writes; else a ``ValueError`` naming ``name``
    and the suffixes that work (Pillow's own message for ``sheet`` is "unknown file extension:" and nothing)."""
    from ._errors import InvalidArgumentError

    p = Path(path)
    suffix = p.suffix.lower()
    Image.init()
    if Image.EXTENSION.get(suffix) not in Image.SAVE:
        what = f"unknown image extension {p.suffix!r}" if suffix else "no file extension"
        raise InvalidArgumentError(
            f"{name} {str(path)!r}: {what}; use {', '.join(COMMON_IMAGE_SUFFIXES)} (any format Pillow writes)"
        )
    return p


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def score_curve(selection: Selection, width: int, height: int = 220) -> Image.Image:
    """The per-candidate score over time, with the chosen frames marked in red."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = _font(14)
    scores = np.asarray(selection.scores, dtype=np.float64)
    times = np.asarray(selection.candidate_timestamps, dtype=np.float64)
    left, right, top, bottom = 60, width - 20, 20, height - 40
    draw.rectangle([left, top, right, bottom], outline="black")
    if len(scores) == 0:
        return img
    t0, t1 = float(times.min()), float(max(times.max(), times.min() + 1e-6))
    finite = np.isfinite(scores)  # search="coarse-to-fine" leaves never-scored candidates NaN
    known = scores[finite] if finite.any() else np.zeros(1)
    s0, s1 = float(known.min()), float(max(known.max(), known.min() + 1e-6))

    def xy(t: float, s: float) -> tuple[float, float]:
        return (left + (t - t0) / (t1 - t0) * (right - left), bottom - (s - s0) / (s1 - s0) * (bottom - top))

    for t in selection.timestamps:
        x, _ = xy(t, s0)
        draw.line([x, top, x, bottom], fill=(255, 170, 170), width=1)
    pts = [xy(t, s) for t, s in zip(times, scores, strict=True)]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
    for a, b in zip(edges[0::2], edges[1::2], strict=True):  # one line per run of scored candidates
        if b - a > 1:
            draw.line(pts[a:b], fill=(30, 90, 200), width=2)
        else:
            draw.point(pts[a], fill=(30, 90, 200))
    chosen = {p for p in selection.positions if finite[p]}
    for p in chosen:
        x, y = pts[p]
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill="red")
    draw.text((left, bottom + 6), format_time(t0), fill="black", font=font)
    end_label = format_time(t1)
    draw.text((right - draw.textlength(end_label, font=font), bottom + 6), end_label, fill="black", font=font)
    draw.text((left + (right - left) / 2 - 30, bottom + 20), "time", fill="black", font=font)
    draw.text((4, top), f"{s1:.3g}", fill="black", font=font)
    draw.text((4, bottom - 14), f"{s0:.3g}", fill="black", font=font)
    title = f"score ({selection.method}, {len(selection)} of {len(scores)} candidates)"
    draw.text((left + 6, top + 4), title, fill="black", font=font)
    return img


def contact_sheet(
    selection: Selection,
    path: str | os.PathLike[str] | None = None,
    *,
    columns: int = 4,
    thumb_width: int = 320,
    with_scores: bool = True,
    gap: int = 12,
) -> Image.Image:
    """A grid of the chosen frames, each labelled with its time (and frame index), above the score curve.

    The frames stand ``gap`` pixels apart with a thin outline, so neighbours never read as one panorama.
    Needs ``selection.frames`` (select with ``return_frames=True``). Saved to ``path`` (atomically) when given.
    """
    if path is not None:
        check_image_path(path)
    if selection.frames is None or len(selection.frames) == 0:
        raise ValueError("selection has no frames: select with return_frames=True to draw a contact sheet")
    frames = selection.frames
    n = len(frames)
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    h, w = frames.shape[1:3]
    thumb_h = max(1, round(thumb_width * h / w))
    label_h, gap = 22, max(0, int(gap))
    cell_w, cell_h = thumb_width + gap, label_h + thumb_h + gap
    sheet_w = columns * cell_w + gap
    curve = score_curve(selection, sheet_w) if with_scores else None
    sheet_h = gap + rows * cell_h + (curve.height if curve else 0)
    sheet = Image.new("RGB", (sheet_w, sheet_h), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(15)
    for i, frame in enumerate(frames):
        r, c = divmod(i, columns)
        x, y = gap + c * cell_w, gap + r * cell_h
        label = f"{format_time(selection.timestamps[i])}  (frame {selection.indices[i]})"
        draw.text((x, y + 2), label, fill="black", font=font)
        sheet.paste(Image.fromarray(frame).resize((thumb_width, thumb_h), Image.BILINEAR), (x, y + label_h))
        if gap:
            draw.rectangle([x - 1, y + label_h - 1, x + thumb_width, y + label_h + thumb_h], outline=(160, 160, 160))
    if curve is not None:
        sheet.paste(curve, (0, gap + rows * cell_h))
    if path is not None:
        from .io import atomic_output

        with atomic_output(path) as tmp:
            sheet.save(tmp)
    return sheet
