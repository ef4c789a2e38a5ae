"""From a video to candidate features: the candidates of a file decoded and encoded chunk by chunk, or
in-memory frames thinned evenly.

For files, memory stays bounded by one chunk of frames at the encoder's resolution; on accelerators the
next chunk is decoded in a producer thread (:mod:`tspo_sampler.features._prefetch`) while the encoder runs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._errors import VideoReadError
from ..video._candidates import even_positions
from ..video._sources import check_bytes, check_path, read_file_object
from ._cache import VideoFeatures, bytes_identity, file_identity
from ._prefetch import prefetch

__all__ = ["encode_candidates", "frames_features", "file_source", "progress_bar"]

PROGRESS_DELAY_S = 2.0
"""With ``progress=None`` a bar appears once encoding has run this long, whatever the candidate count."""


def progress_bar(total: int, desc: str, progress: bool | None) -> tqdm:
    """The encoding bar: ``True`` shows it at once, ``False`` never, ``None`` after :data:`PROGRESS_DELAY_S`."""
    return tqdm(total=total, desc=desc, unit="frame", disable=progress is False,
                delay=0.0 if progress else PROGRESS_DELAY_S)


def file_source(video: Any, *, identify: bool = True, hashing: str = "sampled") -> tuple[str | bytes, str]:
    """Normalise a file-like input (path -> ``str``, buffers and streams -> ``bytes``) and compute its
    content identity for the cache (``""`` with ``identify=False``; ``hashing``: see ``file_identity``)."""
    if isinstance(video, (str, os.PathLike)):
        path = check_path(video)
        return path, file_identity(Path(path), hashing=hashing) if identify else ""
    data = check_bytes(video) if isinstance(video, (bytes, bytearray, memoryview)) else read_file_object(video)
    return data, bytes_identity(data) if identify else ""


def encode_candidates(
    decoder: Any,
    encode_batch: Callable[[torch.Tensor], torch.Tensor],
    *,
    fps: float,
    max_candidates: int | None,
    candidate_mode: str,
    short_side: int | None,
    batch_size: int,
    overlap: bool,
    progress: bool | None,
) -> VideoFeatures:
    """Features of the candidates of an open :class:`~tspo_sampler.video.VideoDecoder`."""
    meta = decoder.metadata
    indices, _ = decoder.candidates(fps=fps, max_candidates=max_candidates, mode=candidate_mode)
    if len(indices) == 0:
        raise VideoReadError(meta.source, "no decodable frames")
    chunks: list[torch.Tensor] = []
    got_idx: list[np.ndarray] = []
    got_ts: list[np.ndarray] = []
    batches = decoder.iter_frames(indices, short_side=short_side, batch_size=batch_size)
    name = Path(meta.source).name if meta.source and not meta.source.startswith("<") else meta.source
    with progress_bar(len(indices), f"encoding {name}", progress) as bar:
        for batch in prefetch(batches) if overlap else batches:
            chunks.append(encode_batch(torch.from_numpy(batch.data)))
            got_idx.append(np.asarray(batch.indices, dtype=np.int64))
            got_ts.append(np.asarray(batch.timestamps, dtype=np.float64))
            bar.update(len(batch.indices))
    if not chunks:
        raise VideoReadError(meta.source, "no decodable frames")
    return VideoFeatures(
        features=torch.cat(chunks),
        candidate_indices=np.concatenate(got_idx),
        candidate_timestamps=np.concatenate(got_ts),
        duration=float(meta.duration),
        fps=float(meta.fps),
        source=str(meta.source),
        metadata={
            "codec": meta.codec,
            "width": int(meta.width),
            "height": int(meta.height),
            "rotation": int(meta.rotation),
            "num_frames": int(meta.num_frames),
            "backend": meta.backend,
            "candidate_mode": candidate_mode,
            # A coarse-to-fine search replayed on these features builds the live search's keyframe grid from them.
            "keyframes": decoder.keyframe_indices().tolist(),
            **({"damage": list(decoder.damage)} if getattr(decoder, "damage", None) else {}),
        },
    )


def warn_if_damaged(feats: VideoFeatures) -> VideoFeatures:
    """Features from the cache of a damaged video warn again, as the first read did."""
    damage = feats.metadata.get("damage") if isinstance(feats.metadata, dict) else None
    if damage:
        from .._errors import VideoDamageWarning

        text = "; ".join(str(d) for d in damage)
        warnings.warn(f"video {feats.source}: {text} (features from the cache)", VideoDamageWarning, stacklevel=3)
    return feats


def frames_features(
    frames: torch.Tensor,
    encode_frames: Callable[[torch.Tensor], torch.Tensor],
    *,
    fps: float,
    max_candidates: int | None,
) -> VideoFeatures:
    """Features of in-memory ``uint8`` frames ``T x H x W x 3``: every frame a candidate (thinned evenly to
    ``max_candidates``), sampled at ``fps`` (timestamps = position / fps)."""
    positions = even_positions(len(frames), max_candidates)
    return VideoFeatures(
        features=encode_frames(frames[torch.from_numpy(positions)]),
        candidate_indices=positions,
        candidate_timestamps=positions / float(fps),
        duration=len(frames) / float(fps),
        fps=float(fps),
        source="<frames>",
        metadata={"num_frames": int(len(frames)), "height": int(frames.shape[1]), "width": int(frames.shape[2])},
    )
