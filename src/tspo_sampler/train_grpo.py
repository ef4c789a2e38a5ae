"""``python -m tspo_sampler.train_grpo`` (also ``accelerate launch -m tspo_sampler.train_grpo ...``).

An entry point only: the flags live in :mod:`tspo_sampler.cli.train_grpo`, the algorithm in
:mod:`tspo_sampler.training`.
"""

from __future__ import annotations

import sys

from .cli.train_grpo import main

if __name__ == "__main__":
    sys.exit(main())
