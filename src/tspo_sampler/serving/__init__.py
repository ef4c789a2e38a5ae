"""``tspo serve``: an OpenAI-compatible proxy that puts TSPO's frame selection in front of a video-LLM server.

```python
import uvicorn
from tspo_sampler import TemporalSampler
from tspo_sampler.serving import create_app

sampler = TemporalSampler.from_pretrained("hzf666/TSPO-0.4B")
app = create_app(sampler, upstream="http://127.0.0.1:8000/v1")
uvicorn.run(app, host="127.0.0.1", port=8100)
```

Clients keep their code and point ``base_url`` at the proxy (docs/serving.md). FastAPI, uvicorn and httpx
come with the ``serve`` extra; they are imported when an app is built, not when this package is.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import create_app
    from ._errors import ServeError
    from ._options import ServeOptions
    from ._settings import OVERRIDES

_LAZY = {
    "create_app": "._app",
    "ServeError": "._errors",
    "ServeOptions": "._options",
    "OVERRIDES": "._settings",
}

__all__ = ["OVERRIDES", "ServeError", "ServeOptions", "create_app"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
