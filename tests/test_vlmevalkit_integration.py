"""tspo_sampler.integrations.vlmevalkit without VLMEvalKit (it is not on PyPI).

The dataset class below has the shape of VLMEvalKit's frame-based video datasets (``build_prompt(line,
video_llm)`` calling ``save_video_frames(video, video_llm)``, which writes evenly spaced JPEG frames and
returns ``(paths, indices, video_info)``); the patch is applied to it exactly as to VLMEvalKit's classes.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from media import make_video, read_stamp
from tspo_sampler.integrations import vlmevalkit as vk

NFRAME = 4


class FrameDataset:
    """Video-MME's shape: videos under ``data_root/video``, frames under ``frame_root/<video>``."""

    def __init__(self, data_root, frame_root, sampler):
        self.data_root, self.frame_root, self.nframe, self._sampler = str(data_root), str(frame_root), NFRAME, sampler

    def save_video_frames(self, video, video_llm=False):
        path = vk.resolve_video(self.data_root, {}, video)
        n = len(self._sampler.select_frames(str(path), "x", k=10_000, method="uniform", return_frames=False).indices)
        indices = [int(i * n / (self.nframe + 1)) for i in range(1, self.nframe + 1)]
        frames = self._sampler.get_frames(str(path), indices)
        paths = []
        for i, f in enumerate(frames, 1):
            p = f"{self.frame_root}/{video}-frame-{i}-of-{self.nframe}.jpg"
            Image.fromarray(f).save(p)
            paths.append(p)
        return paths, indices, {"fps": 10.0, "n_frames": n}

    def build_prompt(self, line, video_llm):
        frames, indices, _ = self.save_video_frames(line["video"], video_llm)
        return [dict(type="image", value=p) for p in frames] + [dict(type="text", value=line["question"])]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sampler):
    root = tmp_path_factory.mktemp("vlmevalkit")
    (root / "video").mkdir()
    (root / "frames").mkdir()
    make_video(root / "video" / "v0.mp4", duration=6.0, fps=10.0)
    cls = type("PatchedFrameDataset", (FrameDataset,), dict(FrameDataset.__dict__))
    frames = vk.TSPOFrames(sampler)
    vk.patch_class(cls, frames)
    vk.patch_class(cls, frames)  # idempotent
    return cls(root, root / "frames", sampler), frames


def stamps(paths):
    return np.array([read_stamp(np.asarray(Image.open(p).convert("RGB"))) for p in paths])


def test_build_prompt_gets_tspo_frames(dataset, sampler):
    ds, frames = dataset
    q = "When does the bar reach the right edge?"
    msg = ds.build_prompt({"index": 0, "video": "v0", "question": q}, False)
    images = [m["value"] for m in msg if m["type"] == "image"]
    sel = sampler.select_frames(f"{ds.data_root}/video/v0.mp4", q, k=NFRAME)
    assert len(images) == NFRAME and all("tspo-" in p for p in images)
    assert np.allclose(stamps(images), sel.timestamps, atol=0.02)  # JPEG-decoded frames carry their times
    # the indices returned to build_prompt (subtitles use them) are TSPO's
    result = ds.save_video_frames.__wrapped__(ds, "v0")
    assert frames.replace(ds, {"video": "v0", "question": q}, "v0", result)[1] == sel.indices
    other = ds.build_prompt({"index": 1, "video": "v0", "question": "What colour is the band?"}, False)
    assert {m["value"] for m in other if m["type"] == "image"}.isdisjoint(images)  # per-question files
    assert frames.selected >= 2 and frames.fallbacks == 0


def test_outside_build_prompt_and_fallback(dataset, tmp_path):
    ds, frames = dataset
    upstream = ds.save_video_frames("v0")  # no line: upstream frames untouched
    assert all("tspo-" not in p for p in upstream[0])
    with pytest.warns(UserWarning, match=r"line 5 \(gone\).*FileNotFoundError"):
        out = frames.replace(ds, {"index": 5, "video": "gone", "question": "q"}, "gone", upstream)
    assert out is upstream and frames.fallbacks == 1


def test_resolve_video(tmp_path):
    (tmp_path / "video").mkdir()
    (tmp_path / "video" / "a.mkv").write_bytes(b"x")
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "b.mp4").write_bytes(b"x")
    assert vk.resolve_video(tmp_path, {}, "a") == tmp_path / "video" / "a.mkv"
    assert vk.resolve_video(tmp_path, {"video_path": "./clips/b.mp4"}, "b") == tmp_path / "clips" / "b.mp4"
    with pytest.raises(FileNotFoundError, match="'c'"):
        vk.resolve_video(tmp_path, {}, "c")


def test_import_does_not_load_vlmevalkit_and_launcher_says_why():
    code = ("import sys, tspo_sampler.integrations.vlmevalkit as v; assert 'vlmeval' not in sys.modules; "
            "raise SystemExit(v.main(['--data', 'Video-MME']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "VLMEVALKIT_RUN": "/nonexistent/run.py"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == ["tspo vlmevalkit: VLMEVALKIT_RUN='/nonexistent/run.py': no such file"]
