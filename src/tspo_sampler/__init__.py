"""tspo-sampler: question-aware keyframe selection for video language models (TSPO temporal agent).

```python
from tspo_sampler import TemporalSampler
sampler = TemporalSampler.from_pretrained("hzf666/TSPO-0.4B")
selection = sampler.select_frames("lecture.mp4", "What does the speaker write on the board?", k=16)
```
"""

from __future__ import annotations

from ._errors import CheckpointError, TSPOError, VideoDamageWarning, VideoReadError
from ._example import example_video
from ._result import Selection
from ._sampler import TemporalSampler
from .features._cache import FeatureCache, VideoFeatures
from .scoring._agent import TemporalAgent
from .scoring._selection import SELECTION_METHODS, select_indices

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "FeatureCache",
    "SELECTION_METHODS",
    "Selection",
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
