"""``python -m tspo_sampler.cli`` (also ``accelerate launch -m tspo_sampler.cli index ...``)."""

import sys

from . import main

sys.exit(main())
