"""``python -m tspo_sampler.train_grpo`` (also ``accelerate launch -m tspo_sampler.train_grpo ...``)."""

from __future__ import annotations

import sys

from .training.cli import main

if __name__ == "__main__":
    sys.exit(main())
