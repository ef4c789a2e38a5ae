"""The video as the sampler sees it, and the features of its candidates behind one interface.

Every public entry point (``select_frames``, ``encode_video``, ``get_frames``) turns what the user passed
into one tagged value at the top, :func:`as_video`: a :class:`FileVideo` (a path or the bytes of a stream,
with its cache identity) or :class:`FramesVideo` (``uint8`` frames). Everything below takes that value, so
"file or frames?" is asked once and in-memory frames are converted once.

:class:`FileFeatureSource` is what the search (and the exhaustive pass) asks of a video file: its
candidates, the features of chosen candidates, a cached exhaustive result, and the candidates that are
cheap to decode (right after a keyframe). The sampler hands one out through
:meth:`~tspo_sampler.TemporalSampler.feature_source`; the decoder opens only when the file has to be read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from .._errors import MissingFramesError, VideoReadError
from ..video._inputs import frames_to_uint8
from ..video._sources import is_file_source
from ..video._types import RESIZE_METHOD
from ._cache import FeatureCache, VideoFeatures
from ._prefetch import prefetch
from ._video_features import encode_candidates, file_source, warn_if_damaged

__all__ = ["FeatureSource", "FileFeatureSource", "FileVideo", "FramesVideo", "as_video"]


@dataclass(frozen=True)
class FileVideo:
    """A video file: ``source`` is its path (``str``) or the bytes of a buffer or stream, ``identity`` its
    content identity for the feature cache (``""`` when not needed), ``name`` the path the user gave
    (``None`` for bytes and streams)."""

    source: str | bytes
    identity: str = ""
    name: str | None = None


@dataclass(frozen=True)
class FramesVideo:
    """In-memory frames, ``uint8`` ``T x H x W x 3`` on the CPU."""

    frames: torch.Tensor


def as_video(video: Any, *, identify: bool = True, hashing: str = "sampled") -> FileVideo | FramesVideo:
    """What the user passed as one tagged value (an already tagged value is returned as it is).

    Files are checked (and streams read) here; their identity follows ``hashing`` (``identify=False``: none).
    Frames are converted to ``uint8`` here, once.
    """
    if isinstance(video, (FileVideo, FramesVideo)):
        return video
    if is_file_source(video):
        source, identity = file_source(video, identify=identify, hashing=hashing)
        name = os.fspath(video) if isinstance(video, (str, os.PathLike)) else None
        return FileVideo(source, identity, str(name) if name is not None else None)
    return FramesVideo(frames_to_uint8(video))


class FeatureSource(Protocol):
    """What the search asks of a video: its candidates, features at candidate positions, an exhaustive result
    already cached, and the candidate positions that are cheap to decode."""

    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """``(frame indices, timestamps)`` of the candidates, ascending."""
        ...

    def features(self, positions: np.ndarray, on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
        """``len(positions) x D`` features of the candidates at ``positions`` (ascending)."""
        ...

    def cached(self) -> VideoFeatures | None:
        """Every candidate's features when an exhaustive run stored them, else ``None``."""
        ...

    def keyframe_indices(self) -> np.ndarray:
        """Frame indices of the stream's keyframes, ascending (decoding right after one is cheap)."""
        ...


class FileFeatureSource:
    """:class:`FeatureSource` of a video file: decodes and encodes just the candidates asked for.

    Args:
        video: the file.
        settings: which frames are candidates (``fps``, ``max_candidates``, ``candidate_mode``).
        open_decoder: ``(source) -> VideoDecoder``, called once, when the file first has to be read.
        encode_batch: features of a batch of ``uint8`` frames (on the CPU).
        short_side: the encoder's input resolution (frames are decoded at it).
        batch_size: frames per encoder batch.
        cache: where an exhaustive result is looked up and stored (``None``: no cache).
        fingerprint: the encoder's fingerprint (part of the cache key), asked only with a cache.
        overlap: decode the next batch in a producer thread while the encoder works on this one, in the
            exhaustive pass and in each of the search's requests (the sampler's ``overlap_decoding``).
    """

    def __init__(
        self,
        video: FileVideo,
        settings: Any,
        open_decoder: Callable[[str | bytes], Any],
        encode_batch: Callable[[torch.Tensor], torch.Tensor],
        *,
        short_side: int | None,
        batch_size: int,
        cache: FeatureCache | None = None,
        fingerprint: Callable[[], str] | None = None,
        overlap: bool = False,
    ) -> None:
        self.video = video
        self.open_decoder = open_decoder
        self.encode_batch = encode_batch
        self.fps, self.max_candidates = float(settings.fps), settings.max_candidates
        self.candidate_mode = settings.candidate_mode
        self.short_side, self.batch_size = short_side, batch_size
        self.overlap = bool(overlap)
        self.cache = cache
        self.cache_key = None if cache is None or fingerprint is None else FeatureCache.make_key(
            video.identity, fingerprint(), fps=self.fps, max_candidates=self.max_candidates,
            candidate_mode=self.candidate_mode, short_side=short_side, resize=RESIZE_METHOD)
        self._decoder: Any = None
        self._candidates: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def decoder(self) -> Any:
        """The open :class:`~tspo_sampler.video.VideoDecoder` (opened on first use)."""
        if self._decoder is None:
            self._decoder = self.open_decoder(self.video.source)
        return self._decoder

    @property
    def metadata(self) -> Any:
        return self.decoder.metadata

    def cached(self) -> VideoFeatures | None:
        if self.cache is None or self.cache_key is None:
            return None
        hit = self.cache.get(self.cache_key)
        return warn_if_damaged(hit) if hit is not None else None

    def store(self, features: VideoFeatures) -> None:
        if self.cache is not None and self.cache_key is not None:
            self.cache.put(self.cache_key, features)

    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        if self._candidates is None:
            indices, timestamps = self.decoder.candidates(
                fps=self.fps, max_candidates=self.max_candidates, mode=self.candidate_mode
            )
            if len(indices) == 0:
                raise VideoReadError(self.metadata.source, "no decodable frames")
            self._candidates = (indices, timestamps)
        return self._candidates

    def features(self, positions: np.ndarray, on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
        """Raises :class:`~tspo_sampler._errors.MissingFramesError` when a wanted candidate does not decode."""
        wanted = self.candidates()[0][positions]
        chunks, got = [], []
        batches = self.decoder.iter_frames(wanted, short_side=self.short_side, batch_size=self.batch_size)
        for batch in prefetch(batches) if self.overlap else batches:
            chunks.append(self.encode_batch(torch.from_numpy(batch.data)))
            got.append(np.asarray(batch.indices, dtype=np.int64))
            if on_batch is not None:
                on_batch(len(got[-1]))
        if not chunks or not np.array_equal(np.concatenate(got), wanted):
            raise MissingFramesError
        return torch.cat(chunks)

    def keyframe_indices(self) -> np.ndarray:
        return self.decoder.keyframe_indices()

    def encode_all(self, *, progress: bool | None) -> VideoFeatures:
        """Every candidate's features in one pass (decoding in chunks, in a producer thread with ``overlap``)."""
        return encode_candidates(
            self.decoder, self.encode_batch, fps=self.fps, max_candidates=self.max_candidates,
            candidate_mode=self.candidate_mode, short_side=self.short_side, batch_size=self.batch_size,
            overlap=self.overlap, progress=progress,
        )

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None

    def __enter__(self) -> FileFeatureSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
