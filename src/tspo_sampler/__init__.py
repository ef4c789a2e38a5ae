"""tspo-sampler: question-aware keyframe selection for video language models (TSPO temporal agent).

```python
from tspo_sampler import TemporalSampler
sampler = TemporalSampler.from_pretrained("hzf666/TSPO-0.4B")
selection = sampler.select_frames("lecture.mp4", "What does the speaker write on the board?", k=16)
```

The names below are imported at first use (PEP 562), so ``import tspo_sampler`` (and ``tspo --help``) does not
import torch; ``from tspo_sampler import TemporalSampler`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import CheckpointError, TSPOError, VideoDamageWarning, VideoReadError

if TYPE_CHECKING:
    from ._example import example_video
    from ._result import Selection
    from ._sampler import SamplerLike, TemporalSampler
    from .features._cache import FeatureCache, VideoFeatures
    from .scoring._agent import TemporalAgent
    from .scoring._selection import SELECTION_METHODS, select_indices
    from .scoring._settings import SelectionSettings

__version__ = "0.1.0"

# name -> module it lives in (imported on first access: these modules import torch)
_LAZY = {
    "example_video": "._example",
    "Selection": "._result",
    "TemporalSampler": "._sampler",
    "SamplerLike": "._sampler",
    "FeatureCache": ".features._cache",
    "VideoFeatures": ".features._cache",
    "TemporalAgent": ".scoring._agent",
    "SELECTION_METHODS": ".scoring._selection",
    "select_indices": ".scoring._selection",
    "SelectionSettings": ".scoring._settings",
}

__all__ = [
    "CheckpointError",
    "FeatureCache",
    "SELECTION_METHODS",
    "Selection",
    "SamplerLike",
    "SelectionSettings",
    "TSPOError",
    "TemporalAgent",
    "TemporalSampler",
    "VideoDamageWarning",
    "VideoFeatures",
    "VideoReadError",
    "__version__",
    "example_video",
    "select_indices",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
