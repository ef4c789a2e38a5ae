"""The bundled example video: present, small, the scenes it promises, usable by select_frames, and in the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest

from tspo_sampler import example_video
from tspo_sampler._example import FPS, SCENES, SIZE

ROOT = Path(__file__).resolve().parents[1]


def _frames_at(path: Path, times: list[float]) -> list[np.ndarray]:
    """Decode the frames shown at ``times`` (seconds) in one sequential pass."""
    wanted = sorted(times)
    out: dict[float, np.ndarray] = {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.pts * frame.time_base)
            while wanted and t >= wanted[0] - 1e-6:
                out[wanted.pop(0)] = frame.to_ndarray(format="rgb24")
            if not wanted:
                break
    return [out[t] for t in times]


def test_example_video_is_bundled_and_small():
    path = example_video()
    assert path.is_file() and path.name == "example.mp4"
    assert path.stat().st_size <= 2 * 1024 * 1024
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == SIZE
        assert not container.streams.audio
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == round(SCENES[-1].end * FPS)


def test_example_video_shows_the_scheduled_scenes():
    """Each scene's background colour is where the schedule says, so questions about it have an answer."""
    mids = [(s.start + s.end) / 2 for s in SCENES]
    for scene, frame in zip(SCENES, _frames_at(example_video(), mids), strict=True):
        corner = frame[5:25, 5:25].reshape(-1, 3).mean(axis=0)
        assert np.abs(corner - np.array(scene.background)).max() < 20, (scene.word, corner)
    words = [s.word for s in SCENES]
    assert words.count("FIREWORKS") == 1  # the scene that appears only once
    assert all(words.count(w) == 2 for w in set(words) - {"FIREWORKS"})


def test_select_frames_reads_the_example(uncached_sampler):
    sel = uncached_sampler.select_frames(example_video(), "When are there fireworks?", k=4, fps=1.0)
    assert len(sel.indices) == 4
    assert all(0 <= t < SCENES[-1].end for t in sel.timestamps)
    assert len(sel.candidate_indices) == 45


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program")
def test_generator_reproduces_the_bundled_video(tmp_path):
    out = tmp_path / "example.mp4"
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_example_video.py"), str(out)], check=True)
    times = [1.0, 27.3, 44.5]
    for ours, bundled in zip(_frames_at(out, times), _frames_at(example_video(), times), strict=True):
        assert np.abs(ours.astype(np.int16) - bundled.astype(np.int16)).mean() < 2.0


@pytest.mark.slow
def test_wheel_ships_the_video_and_py_typed(tmp_path):
    # Build from a copy: setuptools writes build/ next to pyproject.toml, and a stale build/ in the checkout
    # would leak old modules into later wheels.
    source = tmp_path / "src-copy"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(source)],
        check=True,
    )
    (wheel,) = tmp_path.glob("tspo_sampler-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "tspo_sampler/data/example.mp4" in names
    assert "tspo_sampler/py.typed" in names
