"""The tspo-sampler demo as a Hugging Face Space (the same app as ``tspo demo``).

Set the Space's ``TSPO_MODEL`` variable to another Hub id or to a directory in the Space to serve a different
checkpoint (default ``hzf666/TSPO-0.4B``). On ZeroGPU hardware every request borrows a GPU through the
``spaces.GPU`` decorator; elsewhere (CPU Spaces, a laptop) the app runs without it.
"""

from __future__ import annotations

import os

from tspo_sampler import TemporalSampler
from tspo_sampler.integrations.gradio_demo import build_demo

MODEL = os.environ.get("TSPO_MODEL", "hzf666/TSPO-0.4B")
GPU_SECONDS = int(os.environ.get("TSPO_GPU_SECONDS", "120"))

try:  # the `spaces` package exists on Hugging Face Spaces only
    import spaces
except ImportError:
    spaces = None


def gpu_wrapper():
    """``spaces.GPU`` with a per-request time budget on ZeroGPU; ``None`` (run as is) anywhere else."""
    if spaces is None:
        return None
    return spaces.GPU(duration=GPU_SECONDS)


# ZeroGPU expects the model placed on "cuda" at start-up and lends the device per decorated call.
sampler = TemporalSampler.from_pretrained(MODEL, device="cuda" if spaces is not None else None)
demo = build_demo(sampler, wrap=gpu_wrapper())

if __name__ == "__main__":
    from tspo_sampler.integrations.gradio_demo import launch_demo

    # Spaces set GRADIO_SERVER_NAME=0.0.0.0; locally the app stays on the loopback interface.
    launch_demo(demo, host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
