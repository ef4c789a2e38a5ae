"""Model card written next to a pushed checkpoint, in the Hugging Face card format."""

from __future__ import annotations

from pathlib import Path

CARD_TEMPLATE = """---
library_name: tspo-sampler
tags:
- video
- frame-selection
- tspo
- clip
pipeline_tag: zero-shot-image-classification
license: apache-2.0
{base_line}---

# {name}

A TSPO temporal agent (Temporal Sampling Policy Optimization, arXiv 2508.04369) with its CLIP encoder, in the
released `TSPOModel` checkpoint format: a transformers `CLIPModel` checkpoint whose state dict also holds the
agent under `selector.`.

It scores every candidate frame of a video against a question so that a video language model sees the
frames that matter.

## Use

```python
from tspo_sampler import TemporalSampler

sampler = TemporalSampler.from_pretrained("{repo_id}")
selection = sampler.select_frames("video.mp4", "What does the speaker write on the board?", k=16)
print(selection.timestamps)
```

or on the command line: `tspo select video.mp4 "What does the speaker write on the board?" -k 16 --model {repo_id}`.
"""


def write_model_card(directory: Path, *, repo_id: str, base: str = "") -> Path:
    """Write ``README.md`` (the model card) into ``directory``."""
    base_line = f"base_model: {base}\n" if base and "/" in base and not Path(base).exists() else ""
    text = CARD_TEMPLATE.format(name=repo_id.split("/")[-1], repo_id=repo_id, base_line=base_line)
    path = directory / "README.md"
    path.write_text(text)
    return path
