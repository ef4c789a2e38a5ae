"""Video decoding: real frame timestamps, candidates, and batched, resized, upright frames.

:class:`VideoDecoder` puts the backends (PyAV; decord or torchcodec when asked for) behind one index space:
frame ``i`` is the ``i``-th frame of the video stream in presentation order, read from the packet table
(:class:`~tspo_sampler.video._types.StreamIndex`), so timestamps are the real ones for variable-frame-rate
files.  Frames are returned upright (:attr:`VideoMetadata.rotation` is the clockwise turn a player
applies).  Every decoder call is bounded by a timeout, and unreadable input raises
:class:`~tspo_sampler.VideoReadError`.

Modules: ``_types`` (data), ``_probe`` (the stream index), ``_pyav``, ``_decord``, ``_torchcodec`` (one per backend),
``_routing`` (which backend serves a request), ``_watchdog`` (timeouts and error translation),
``_decoder`` (:class:`VideoDecoder`).  Sources are checked in :mod:`tspo_sampler.video._sources` and the
candidate rules live in :mod:`tspo_sampler.video._candidates`.
"""

from __future__ import annotations

from .._errors import VideoDamageWarning
from ._decoder import MAX_LOST_FRACTION, VideoDecoder, open_video
from ._types import FrameBatch, VideoMetadata

__all__ = ["MAX_LOST_FRACTION", "FrameBatch", "VideoDamageWarning", "VideoDecoder", "VideoMetadata", "open_video"]
