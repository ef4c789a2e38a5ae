"""Features: candidate frames turned into CLIP image features, streamed and cached on disk.

Modules: ``_encoders`` (the transformers and open_clip encoders behind one protocol), ``_weights``
(bfloat16 weights widened layer by layer on the CPU), ``_heap`` (returning freed memory between
batches), ``_prefetch`` (decoding that overlaps encoding), ``_video_features`` (a video's candidates
encoded in chunks) and ``_cache`` (the on-disk feature cache keyed by video identity).
"""

from __future__ import annotations

from ._cache import FeatureCache, VideoFeatures, default_cache_dir
from ._encoders import HFCLIPEncoder, ImagePreprocessing, ImageTextEncoder, OpenCLIPEncoder

__all__ = [
    "FeatureCache",
    "HFCLIPEncoder",
    "ImagePreprocessing",
    "ImageTextEncoder",
    "OpenCLIPEncoder",
    "VideoFeatures",
    "default_cache_dir",
]
