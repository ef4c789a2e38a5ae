"""The video code on every PyAV the project allows (``av>=12``): CI runs this file again under ``av==12.*``.

The test files are made only in ways every allowed PyAV (or the ffmpeg program) can make them: H.264 through
PyAV's plain encoding API, cover art and rotation through ``ffmpeg``. Each frame carries its own time stamp
(``media.read_stamp``), so a frame from the wrong stream, at the wrong time or turned the wrong way fails.
"""

from __future__ import annotations

import shutil
import subprocess

import av
import numpy as np
import pytest
from PIL import Image

from media import make_video, read_stamp
from tspo_sampler.video import open_video

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program")
QUESTION = "When does the bar reach the right edge?"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("av-floor")
    out = {
        "cfr": make_video(d / "cfr.mp4", duration=4.0, fps=10.0),
        "vfr": make_video(d / "vfr.mkv", duration=4.0, fps=10.0, vfr=True),
    }
    if shutil.which("ffmpeg"):
        Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(d / "cover.png")
        out["cover"] = d / "cover.mp4"  # cover art (attached_pic) as the FIRST video stream
        ffmpeg("-i", str(d / "cover.png"), "-i", str(out["cfr"]), "-map", "0", "-map", "1", "-c:v:0", "png",
               "-c:v:1", "copy", "-disposition:v:0", "attached_pic", str(out["cover"]))
        # stored pixels turned a quarter, and a display matrix turning them back: ffmpeg's own autorotation
        # shows this file upright (checked when the test was written), so the decoder must too
        ffmpeg("-i", str(out["cfr"]), "-vf", "transpose=1", "-c:v", "libx264", "-preset", "veryfast",
               str(d / "turned.mp4"))
        out["rot90"] = d / "rot90.mp4"
        ffmpeg("-i", str(d / "turned.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(out["rot90"]))
    return out


def test_pyav_is_an_allowed_version():
    assert int(av.__version__.split(".")[0]) >= 12


@pytest.mark.parametrize("kind", ["cfr", "vfr", "cover", "rot90"])
def test_frames_are_the_right_ones(files, kind):
    if kind not in files:
        pytest.skip("needs the ffmpeg program")
    with open_video(files[kind], backend="pyav") as video:
        batch = video.get_frames([0, 5, 11, 17])
    assert batch.data.shape[1:] == (120, 160, 3)  # the real stream, upright, display size
    stamps = np.array([read_stamp(f) for f in batch.data])
    assert np.allclose(stamps, batch.timestamps, atol=0.011)


@pytest.mark.parametrize("kind", ["cfr", "vfr", "cover", "rot90"])
def test_select_frames(sampler, files, kind):
    if kind not in files:
        pytest.skip("needs the ffmpeg program")
    sel = sampler.select_frames(files[kind], QUESTION, k=4)
    assert len(sel.indices) == 4 and sel.frames.shape == (4, 120, 160, 3)
    stamps = np.array([read_stamp(f) for f in sel.frames])
    assert np.allclose(stamps, sel.timestamps, atol=0.011)
    assert sel.duration == pytest.approx(4.0, abs=0.5)
