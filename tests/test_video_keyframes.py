"""Keyframe candidate mode and the per-request choice of decode path, on real generated files."""

from __future__ import annotations

from pathlib import Path

import av  # noqa: F401  (before decord)
import numpy as np
import pytest

import media
from tspo_sampler.video import VideoDecoder
from tspo_sampler.video import _decord as video_decord
from tspo_sampler.video._pyav import PyAVReader

HAVE_DECORD = video_decord.import_decord() is not None
BACKENDS = ["auto", "pyav", pytest.param("decord", marks=pytest.mark.skipif(not HAVE_DECORD, reason="decord absent"))]
needs_decord = pytest.mark.skipif(not HAVE_DECORD, reason="decord absent")

# 20 s at 10 fps; name -> make_video keyword arguments
SPECS = {
    "gop25.mp4": {"duration": 20.0, "gop": 25},  # a keyframe every 2.5 s (sparser than 1 fps), B-frames
    "gop2.mp4": {"duration": 20.0, "gop": 2},  # every 0.2 s: denser than 1 fps, must be thinned
    "vfr_gop7.mkv": {"duration": 20.0, "gop": 7, "vfr": True},
    "vp9_gop30.webm": {"duration": 20.0, "gop": 30, "codec": "libvpx-vp9"},
    "onekey.mp4": {"duration": 6.0, "gop": 1000},  # only the first frame is a keyframe
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keyframe_videos")
    return {name: media.make_video(root / name, **kw) for name, kw in SPECS.items()}


def stamps(batch) -> np.ndarray:  # noqa: ANN001
    return np.array([media.read_stamp(f) for f in batch.data])


def key_times(path: Path) -> np.ndarray:
    """Timestamps (s from the stream start) of the packets flagged as keyframes, read independently."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        start = s.start_time or 0
        tb = float(s.time_base)
        out = [(p.pts - start) * tb for p in c.demux(s) if p.size and p.is_keyframe and p.pts is not None]
    return np.sort(np.round(np.asarray(out), 6))


def nearest(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Brute force: for each target the nearest of ``times`` (the earlier one on a tie)."""
    d = np.abs(times[None, :] - targets[:, None])
    return times[np.argmin(d + 1e-7 * (times[None, :] > targets[:, None]), axis=1)]


# ------------------------------------------------------------------ candidates


@pytest.mark.parametrize("name", ["gop25.mp4", "gop2.mp4", "vfr_gop7.mkv", "vp9_gop30.webm"])
def test_keyframe_candidates_are_the_keyframes_nearest_each_second(videos: dict[str, Path], name: str) -> None:
    keys = key_times(videos[name])
    assert len(keys) > 2
    with VideoDecoder(videos[name], backend="pyav") as dec:
        idx, ts = dec.candidates(fps=1.0, mode="keyframes")
        targets = np.arange(20, dtype=np.float64)
        expect = np.unique(nearest(keys, targets))
        np.testing.assert_allclose(ts, expect, atol=1e-6)
        np.testing.assert_allclose(dec.frame_timestamps()[idx], ts)
        err = dec.candidate_error(1.0, mode="keyframes")
        np.testing.assert_allclose(err, np.abs(nearest(keys, targets) - targets), atol=1e-6)
        # never more than one candidate a second; fps mode is within one frame gap of every target
        assert len(idx) <= 20
        assert dec.candidate_error(1.0, mode="fps").max() < np.diff(dec.frame_timestamps()).max() + 1e-6


def test_sparse_keyframes_are_all_kept_and_dense_ones_thinned(videos: dict[str, Path]) -> None:
    with VideoDecoder(videos["gop25.mp4"], backend="pyav") as dec:
        idx, ts = dec.candidates(1.0, mode="keyframes")
        np.testing.assert_allclose(ts, key_times(videos["gop25.mp4"]), atol=1e-6)  # every keyframe
        err = dec.candidate_error(1.0)
        assert err[:18].max() <= 1.25 + 1e-6  # half the 2.5 s interval
        np.testing.assert_allclose(err[18:], [0.5, 1.5])  # after the last keyframe (17.5 s) it grows
    with VideoDecoder(videos["gop2.mp4"], backend="pyav") as dec:
        idx, ts = dec.candidates(1.0, mode="keyframes")
        np.testing.assert_allclose(ts, np.arange(20.0), atol=1e-6)  # a keyframe sits on every second
        idx2, ts2 = dec.candidates(0.5, mode="keyframes", max_candidates=4)
        assert len(idx2) == 4 and set(idx2) <= set(dec._index.keyframes.tolist())


def test_stream_with_one_keyframe_falls_back_to_fps(videos: dict[str, Path]) -> None:
    with VideoDecoder(videos["onekey.mp4"], backend="pyav") as dec:
        assert len(dec._index.keyframes) == 1
        for a, b in zip(dec.candidates(1.0, mode="keyframes"), dec.candidates(1.0), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(dec.candidate_error(1.0, "keyframes"), dec.candidate_error(1.0, "fps"))


def test_bad_mode(videos: dict[str, Path]) -> None:
    with VideoDecoder(videos["gop25.mp4"], backend="pyav") as dec:
        with pytest.raises(ValueError, match="mode"):
            dec.candidates(1.0, mode="keyframe")
        with pytest.raises(ValueError, match="mode"):
            dec.candidate_error(1.0, mode="iframes")


# ------------------------------------------------------------------ decoding keyframe candidates


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["gop25.mp4", "vfr_gop7.mkv", "vp9_gop30.webm"])
def test_keyframe_candidates_decode_to_their_own_frames(videos: dict[str, Path], name: str, backend: str) -> None:
    with VideoDecoder(videos[name], backend=backend) as dec:
        idx, ts = dec.candidates(1.0, mode="keyframes")
        batches = list(dec.iter_frames(idx, short_side=64, batch_size=4))
        got = np.concatenate([b.indices for b in batches])
        np.testing.assert_array_equal(got, idx)
        np.testing.assert_allclose(np.concatenate([stamps(b) for b in batches]), ts, atol=1e-6)
        if backend != "decord" or dec.metadata.backend != "decord":
            assert dec._last_path == "pyav-keyframes"
        full = dec.get_frames(idx[::-1])
        np.testing.assert_allclose(stamps(full), ts[::-1], atol=1e-6)


def test_keyframe_path_decodes_only_the_keyframes(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    pulled: list[int] = []
    original = PyAVReader._next

    def counting(self):  # noqa: ANN001, ANN202
        item = original(self)
        if item is not None:
            pulled.append(item[0])
        return item

    monkeypatch.setattr(PyAVReader, "_next", counting)
    with VideoDecoder(videos["gop25.mp4"]) as dec:
        idx, _ = dec.candidates(1.0, mode="keyframes")
        assert len(idx) == 8
        list(dec.iter_frames(idx, short_side=64))
        assert dec._last_path == "pyav-keyframes"
        assert pulled == idx.tolist()  # one frame out of the decoder per keyframe, nothing between
        pulled.clear()
        fps_idx, _ = dec.candidates(1.0)
        list(dec.iter_frames(fps_idx, short_side=64))
        assert dec._last_path == "pyav-sequential"
        assert len(pulled) > 100  # the fps candidates need the frames between keyframes


# ------------------------------------------------------------------ decode path per request


def test_auto_picks_the_path_by_request_shape(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    paths: list[str] = []
    original = VideoDecoder._decode

    def spy(self, idx, size, path):  # noqa: ANN001, ANN202
        paths.append(path)
        return original(self, idx, size, path)

    monkeypatch.setattr(VideoDecoder, "_decode", spy)
    with VideoDecoder(videos["gop25.mp4"]) as dec:
        assert dec.metadata.backend == "pyav"  # decord conceals damage: auto never uses it
        keys = dec._index.keyframes
        cases = [
            ([keys[1], keys[3]], "pyav-keyframes"),  # keyframes only
            ([keys[1] + 3, keys[5] + 7], "pyav-sequential"),  # far apart: two GOPs
            ([keys[2] + 1, keys[2] + 9], "pyav-sequential"),  # within one GOP
            ([keys[2], keys[2] + 1], "pyav-sequential"),  # a keyframe and its neighbour: one GOP
        ]
        for req, want in cases:
            batch = dec.get_frames(req)
            assert dec._last_path == want, req
            np.testing.assert_allclose(stamps(batch), np.asarray(req) / 10.0, atol=1e-6)
        # iter_frames decides once for the whole list: every batch on the same path
        paths.clear()
        idx, ts = dec.candidates(1.0)
        got = np.concatenate([stamps(b) for b in dec.iter_frames(idx, short_side=64, batch_size=3)])
        np.testing.assert_allclose(got, ts, atol=1e-6)
        assert len(paths) == 7 and set(paths) == {"pyav-sequential"}


@pytest.mark.parametrize(
    "backend,within,keys,spread",
    [
        ("pyav", "pyav-sequential", "pyav-keyframes", "pyav-sequential"),
        pytest.param("decord", "decord", "decord", "decord", marks=needs_decord),
    ],
)
def test_forced_backend_keeps_its_own_paths(
    videos: dict[str, Path], backend: str, within: str, keys: str, spread: str
) -> None:
    with VideoDecoder(videos["gop25.mp4"], backend=backend) as dec:
        k = dec._index.keyframes
        for req, want in (([k[2] + 1, k[2] + 2], within), (k[1:4], keys), ([5, 150], spread)):
            batch = dec.get_frames(req)
            assert dec._last_path == want
            np.testing.assert_allclose(stamps(batch), np.asarray(req) / 10.0, atol=1e-6)


@needs_decord
def test_paths_agree_with_decord(videos: dict[str, Path]) -> None:
    """Indices and timestamps identical, pixels within codec/resize tolerance, whatever the path."""
    with VideoDecoder(videos["gop25.mp4"]) as auto, VideoDecoder(videos["gop25.mp4"], backend="decord") as ref:
        for mode in ("fps", "keyframes"):
            idx, ts = auto.candidates(1.0, mode=mode)
            a = np.concatenate([b.data for b in auto.iter_frames(idx, short_side=64)])
            b = np.concatenate([b.data for b in ref.iter_frames(idx, short_side=64)])
            assert a.shape == b.shape
            assert np.abs(a.astype(int) - b.astype(int)).mean() < 3.0
        far = [7, 93, 188]
        fa, fb = auto.get_frames(far), ref.get_frames(far)
        assert auto._last_path == "pyav-sequential"
        np.testing.assert_array_equal(fa.indices, fb.indices)
        np.testing.assert_array_equal(fa.timestamps, fb.timestamps)
        assert np.abs(fa.data.astype(int) - fb.data.astype(int)).mean() < 3.0
