"""The torchcodec backend on the same kinds of real files as the other backends: presentation times on CFR
and VFR files, upright rotated frames, VP9/WebM, damaged files; skipped only where torchcodec cannot load."""

from __future__ import annotations

import numpy as np
import pytest

import media
from tspo_sampler import VideoReadError
from tspo_sampler.video import VideoDecoder
from tspo_sampler.video._torchcodec import import_torchcodec

pytestmark = pytest.mark.skipif(import_torchcodec() is None, reason="torchcodec cannot be imported here")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("torchcodec-videos")
    return {
        "mp4": media.make_video(d / "clip.mp4", duration=6.0, fps=10.0),
        "vfr": media.make_video(d / "vfr.mkv", duration=8.0, fps=4.0, vfr=True),
        "rot": media.make_video(d / "rot.mp4", duration=3.0, fps=10.0, size=(160, 96), rotate=90),
        "webm": media.make_video(d / "clip.webm", duration=4.0, fps=8.0, codec="libvpx-vp9"),
        "corrupt": media.make_corrupt(d / "corrupt.mp4"),
    }


@pytest.mark.parametrize("name", ["mp4", "vfr", "rot", "webm"])
def test_frames_show_their_presentation_times(videos, name):
    with VideoDecoder(videos[name], backend="torchcodec") as tc, VideoDecoder(videos[name], backend="pyav") as av:
        assert tc.backend == "torchcodec"
        idx, ts = tc.candidates(fps=2.0)
        assert np.array_equal(idx, av.candidates(fps=2.0)[0])
        full = tc.get_frames(idx)
        assert full.data.shape[1:3] == (av.metadata.height, av.metadata.width)  # upright
        assert np.array_equal(full.timestamps, ts)
        for frame, t in zip(full.data, ts, strict=True):
            assert abs(media.read_stamp(frame) - t) < 0.011
        small = [b for b in tc.iter_frames(idx[::-1], short_side=64, batch_size=3)]
        got = np.concatenate([b.indices for b in small])
        assert np.array_equal(got, np.unique(idx)) and min(small[0].data.shape[1:3]) == 64
        for b in small:
            for frame, t in zip(b.data, b.timestamps, strict=True):
                assert abs(media.read_stamp(frame) - t) < 0.011
        reference = av.get_frames(idx).data.astype(np.int16)
        assert np.abs(full.data.astype(np.int16) - reference).mean() < 3.0  # same pixels, up to colour conversion


def test_decodes_only_the_requested_frames_in_any_order(videos):
    with VideoDecoder(videos["mp4"], backend="torchcodec") as tc:
        batch = tc.get_frames([50, 3, 50, 17])
        assert list(batch.indices) == [50, 3, 50, 17]
        assert [round(media.read_stamp(f), 2) for f in batch.data] == [5.0, 0.3, 5.0, 1.7]


def test_unreadable_and_truncated_files(videos, tmp_path):
    with pytest.raises(VideoReadError, match="corrupt.mp4"):
        VideoDecoder(videos["corrupt"], backend="torchcodec")
    cut = media.make_truncated(videos["vfr"], tmp_path / "cut.mkv", keep=0.5)
    with VideoDecoder(cut, backend="torchcodec") as tc:
        idx, ts = tc.candidates(fps=1.0)
        frames = tc.get_frames(idx).data
    for frame, t in zip(frames, ts, strict=True):
        assert abs(media.read_stamp(frame) - t) < 0.011


def test_auto_does_not_open_torchcodec(videos):
    with VideoDecoder(videos["mp4"]) as dec:
        assert dec.backend in ("decord", "pyav")
