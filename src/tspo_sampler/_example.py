"""The bundled example video: a short clip made by the project (``tools/make_example_video.py``) so that the
README's first command and the demo run on a fresh machine without anybody's own video.

Each scene is a flat colour with a large printed word and a simple drawn object, so a CLIP model can tell
the scenes apart by a question; the fireworks scene appears only once.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

EXAMPLE_NAME = "example.mp4"


@dataclass(frozen=True)
class Scene:
    """One scene of the example video: ``[start, end)`` seconds, the printed word, colours and the object."""

    start: float
    end: float
    word: str
    background: tuple[int, int, int]
    foreground: tuple[int, int, int]
    shape: str


# The schedule the generator draws and the tests check against (seconds at 10 fps, 640x360).
SCENES: tuple[Scene, ...] = (
    Scene(0.0, 5.0, "BEACH", (80, 170, 235), (250, 215, 60), "sun"),
    Scene(5.0, 10.0, "FOREST", (30, 110, 45), (120, 70, 30), "trees"),
    Scene(10.0, 15.0, "STOP", (215, 35, 35), (255, 255, 255), "octagon"),
    Scene(15.0, 20.0, "CLOCK", (235, 235, 235), (20, 20, 20), "clock"),
    Scene(20.0, 25.0, "BEACH", (80, 170, 235), (250, 215, 60), "sun"),
    Scene(25.0, 30.0, "FIREWORKS", (10, 10, 40), (255, 80, 200), "fireworks"),
    Scene(30.0, 35.0, "FOREST", (30, 110, 45), (120, 70, 30), "trees"),
    Scene(35.0, 40.0, "CLOCK", (235, 235, 235), (20, 20, 20), "clock"),
    Scene(40.0, 45.0, "STOP", (215, 35, 35), (255, 255, 255), "octagon"),
)
FPS = 10
SIZE = (640, 360)

# Questions that have one clear answer in the example (shown by the demo).
EXAMPLE_QUESTIONS: tuple[str, ...] = (
    "When are there fireworks in the night sky?",
    "Where is the red stop sign?",
    "Show me the trees of the forest.",
)


def example_video() -> Path:
    """Path of the bundled example video (45 s, 640x360, 10 fps, H.264, no audio).

    The file ships inside the wheel as package data. If the package is imported from a zip, the video is
    copied to a temporary directory first so the path can be opened by any decoder.
    """
    resource = resources.files("tspo_sampler") / "data" / EXAMPLE_NAME
    if not resource.is_file():
        raise FileNotFoundError(
            f"the bundled example video ({EXAMPLE_NAME}) is missing from this installation of tspo-sampler; "
            "reinstall the package or run tools/make_example_video.py from a source checkout"
        )
    if isinstance(resource, Path):
        return resource
    target = Path(tempfile.gettempdir()) / "tspo_sampler_example" / EXAMPLE_NAME
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with resources.as_file(resource) as real:
            shutil.copyfile(real, target)
    return target
