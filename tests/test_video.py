"""VideoDecoder on real files with real decoders: every frame's drawn stamp is its true time."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import media
from tspo_sampler._errors import TSPOError, VideoReadError
from tspo_sampler.video import FrameBatch, VideoDamageWarning, VideoDecoder, VideoMetadata, open_video
from tspo_sampler.video import _decord as video_decord
from tspo_sampler.video._torchcodec import import_torchcodec

HAVE_DECORD = video_decord.import_decord() is not None
BACKENDS = ["pyav", pytest.param("decord", marks=pytest.mark.skipif(not HAVE_DECORD, reason="decord absent"))]

# name -> make_video keyword arguments
SPECS = {
    "h264.mp4": {},
    "h264.mkv": {},
    "mpeg4.avi": {"codec": "mpeg4"},
    "vp9.webm": {"codec": "libvpx-vp9"},
    "vfr.mp4": {"vfr": True},
    "vfr.mkv": {"vfr": True},
    "rot90.mp4": {"rotate": 90},
    "rot270.mkv": {"rotate": 270},
    "clip.mp4": {"duration": 0.5},
    "audio.mp4": {"audio": True},
    "long.mp4": {"duration": 20.0, "gop": 10},
}


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    out = {name: media.make_video(root / name, **kw) for name, kw in SPECS.items()}
    out["audio_only.m4a"] = media.make_audio_only(root / "audio_only.m4a")
    out["empty.mp4"] = media.make_empty(root / "empty.mp4")
    out["corrupt.mp4"] = media.make_corrupt(root / "corrupt.mp4")
    out["truncated.mp4"] = media.make_truncated(out["long.mp4"], root / "truncated.mp4")  # moov at end
    return out


@pytest.fixture(scope="session")
def faststart_truncated(videos: dict[str, Path]) -> Path:
    """A cut-short MP4 whose index comes first: decord 0.6 fails to open it, PyAV reads the rest."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg not on PATH")
    src = videos["long.mp4"]
    fs = src.with_name("faststart.mp4")
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-i", str(src), "-c", "copy", "-movflags", "+faststart", str(fs)],
        check=True,
        capture_output=True,
    )
    return media.make_truncated(fs, src.with_name("faststart_cut.mp4"), keep=0.6)


def stamps(batch: FrameBatch) -> np.ndarray:
    return np.array([media.read_stamp(f) for f in batch.data])


def true_times(name: str) -> np.ndarray:
    kw = SPECS[name]
    return media.frame_times(kw.get("duration", 4.0), kw.get("fps", 10.0), kw.get("vfr", False))


# ------------------------------------------------------------------ test media themselves


def test_stamp_round_trip_and_resize() -> None:
    from PIL import Image

    for t in (0.0, 0.01, 1.37, 59.99, 600.5):
        img = media.draw_frame(t, (160, 120))
        assert media.read_stamp(img) == pytest.approx(t, abs=1e-9)
        small = np.asarray(Image.fromarray(img).resize((85, 64), Image.BILINEAR))
        assert media.read_stamp(small) == pytest.approx(t, abs=1e-9)
    with pytest.raises(ValueError):
        media.read_stamp(np.rot90(media.draw_frame(1.0)))  # sideways frames are refused


def test_generated_rotation_is_visible_to_ffprobe(videos: dict[str, Path]) -> None:
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe not on PATH")
    assert media.probe_rotation(videos["rot90.mp4"]) == 90
    assert media.probe_rotation(videos["rot270.mkv"]) == 270
    assert media.probe_rotation(videos["h264.mp4"]) == 0


# ------------------------------------------------------------------ decoding correctness

FILES = ["h264.mp4", "h264.mkv", "mpeg4.avi", "vp9.webm", "vfr.mp4", "vfr.mkv", "rot90.mp4", "rot270.mkv", "clip.mp4"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", FILES)
def test_candidate_frames_show_their_timestamps(videos: dict[str, Path], name: str, backend: str) -> None:
    with VideoDecoder(videos[name], backend=backend) as dec:
        meta = dec.metadata
        assert meta.backend == backend
        assert (meta.width, meta.height) == (160, 120)  # upright, even for rotated files
        expected = true_times(name)
        assert meta.num_frames == len(expected)
        np.testing.assert_allclose(dec.frame_timestamps(), expected, atol=1e-3)

        idx, ts = dec.candidates(fps=3.0)
        assert idx[0] == 0 and np.all(np.diff(idx) > 0)
        half_interval = 0.5 / SPECS[name].get("fps", 10.0)
        seen = []
        for batch in dec.iter_frames(idx, short_side=64, batch_size=4):
            assert len(batch) <= 4 and batch.data.shape[1:] == (64, 85, 3) and batch.data.dtype == np.uint8
            np.testing.assert_allclose(stamps(batch), batch.timestamps, atol=half_interval)
            seen.append(batch.indices)
        np.testing.assert_array_equal(np.concatenate(seen), idx)

        few = dec.get_frames(idx[-2:])  # full resolution
        assert few.data.shape == (len(few), 120, 160, 3)
        np.testing.assert_allclose(stamps(few), ts[-2:], atol=half_interval)


# ------------------------------------------------------------------ containers with odd timelines (issue 20)

HAVE_TORCHCODEC = import_torchcodec() is not None
ALL_BACKENDS = [
    "auto",
    "pyav",
    pytest.param("decord", marks=pytest.mark.skipif(not HAVE_DECORD, reason="decord absent")),
    pytest.param("torchcodec", marks=pytest.mark.skipif(not HAVE_TORCHCODEC, reason="torchcodec absent")),
]
# name -> (stamp minus reported time, the warning the file deserves or None)
ODD = {
    "bframes.ts": (0.0, None),  # B-frames, a PTS starting near 1.4 s, no index
    "bframes.m2ts": (0.0, None),
    "joined.ts": (0.0, None),  # two segments joined with cat: the PTS restarts at 2 s
    "edit_list.mp4": (0.5, None),  # the edit list hides the first 5 frames of the first GOP
    "ptsless.mkv": (1.0, "no presentation time"),  # the first second of frames has no PTS
    "cut.mkv": (0.0, "ends early: the container states 4.00 s"),  # truncated Matroska
}


@pytest.fixture(scope="session")
def odd(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not on PATH")
    root = tmp_path_factory.mktemp("odd")
    mkv = media.make_small_cluster_mkv(root / "whole.mkv", duration=4.0)
    return {
        "bframes.ts": media.make_mpegts(root / "bframes.ts"),
        "bframes.m2ts": media.make_mpegts(root / "bframes.m2ts"),
        "joined.ts": media.make_joined_mpegts(root / "joined.ts"),
        "edit_list.mp4": media.make_edit_list_mp4(root / "edit_list.mp4", cut=0.5),
        "ptsless.mkv": media.make_ptsless_mkv(root / "ptsless.mkv", untimed=1.0),
        "cut.mkv": media.make_truncated(mkv, root / "cut.mkv", keep=0.5),
        "hole.mkv": media.make_hole(mkv, root / "hole.mkv", 0.45, 0.2),
    }


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("name", list(ODD))
def test_odd_timelines_every_frame_shows_its_time(odd: dict[str, Path], name: str, backend: str) -> None:
    """Every backend either returns each frame at its time (relative to the first frame with a PTS) with no
    frame dropped, or refuses the file in one clear line; the auto backend always reads it."""
    shift, warning = ODD[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dec = VideoDecoder(odd[name], backend=backend)
        except VideoReadError as exc:
            assert backend in ("decord", "torchcodec"), exc
            assert name in str(exc) and ("use decoder='pyav' or 'auto'" in exc.reason or "frames, the container" in
                                         exc.reason)
            return
        with dec:
            if backend != "auto":
                assert dec.metadata.backend == backend
            idx, ts = dec.candidates(fps=5.0)
            assert ts[0] == 0.0 and np.all(np.diff(ts) > 0)
            batches = list(dec.iter_frames(idx, short_side=64, batch_size=4))
            np.testing.assert_array_equal(np.concatenate([b.indices for b in batches]), idx)  # nothing dropped
            for batch in batches:
                np.testing.assert_allclose(stamps(batch), batch.timestamps + shift, atol=1e-6)
            few = dec.get_frames(idx[[-1, 1]])  # backwards, full size
            np.testing.assert_allclose(stamps(few), ts[[-1, 1]] + shift, atol=1e-6)
    messages = [str(w.message) for w in caught if issubclass(w.category, VideoDamageWarning)]
    if warning is None:
        assert messages == []
    else:
        assert len(messages) == 1 and warning in messages[0]


def test_mpegts_is_read_by_pyav_and_keeps_its_length(odd: dict[str, Path]) -> None:
    with VideoDecoder(odd["bframes.ts"]) as dec:
        assert dec.metadata.backend == "pyav"  # no index: decord and torchcodec misplace frames
        assert dec.metadata.num_frames == 30 and dec.metadata.duration == pytest.approx(3.0)
    with VideoDecoder(odd["joined.ts"]) as dec:
        assert dec.metadata.num_frames == 40 and dec.metadata.duration == pytest.approx(4.0)
        np.testing.assert_allclose(dec.frame_timestamps(), np.arange(40) / 10.0, atol=1e-6)


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_holed_matroska_serves_no_garbage_frame(odd: dict[str, Path], backend: str) -> None:
    with VideoDecoder(odd["hole.mkv"], backend=backend) as dec:
        idx, ts = dec.candidates(fps=10.0)  # every frame, including those at the edges of the hole
        with pytest.warns(VideoDamageWarning, match="could not be decoded"):
            batches = list(dec.iter_frames(idx, short_side=64))
    got = np.concatenate([b.timestamps for b in batches])
    np.testing.assert_allclose(stamps_of(np.concatenate([b.data for b in batches])), got, atol=1e-6)
    assert 0.3 * len(idx) < len(got) < len(idx)


def stamps_of(frames: np.ndarray) -> np.ndarray:
    return np.array([media.read_stamp(f) for f in frames])


def test_candidate_rule_cfr(videos: dict[str, Path]) -> None:
    with VideoDecoder(videos["h264.mp4"], backend="pyav") as dec:
        assert dec.metadata.duration == pytest.approx(4.0)
        assert dec.metadata.fps == pytest.approx(10.0)
        idx, ts = dec.candidates(fps=1.0)
        np.testing.assert_array_equal(idx, [0, 10, 20, 30])
        np.testing.assert_allclose(ts, [0, 1, 2, 3])
        idx, _ = dec.candidates(fps=2.0, max_candidates=3)
        np.testing.assert_array_equal(idx, [0, 20, 35])  # evenly over [0, 5, ..., 35]
        idx, _ = dec.candidates(fps=100.0)  # denser than the video: every frame once
        np.testing.assert_array_equal(idx, np.arange(40))


def test_candidate_rule_vfr_uses_real_pts(videos: dict[str, Path]) -> None:
    with VideoDecoder(videos["vfr.mp4"], backend="pyav") as dec:
        ts_all = dec.frame_timestamps()
        idx, ts = dec.candidates(fps=1.0)
        for k, (i, t) in enumerate(zip(idx, ts, strict=True)):
            # the frame on screen at k seconds: latest pts <= k
            assert t <= k + 1e-9 and (i + 1 == len(ts_all) or ts_all[i + 1] > k)
        # index / average fps would be wrong for this file
        assert not np.allclose(ts, idx / dec.metadata.fps, atol=0.05)
        batch = dec.get_frames(idx)
        np.testing.assert_allclose(stamps(batch), ts, atol=0.011)


def test_short_clip_has_a_candidate(videos: dict[str, Path]) -> None:
    with VideoDecoder(videos["clip.mp4"]) as dec:
        assert dec.metadata.duration == pytest.approx(0.5)
        idx, ts = dec.candidates(fps=1.0)
        np.testing.assert_array_equal(idx, [0])
        np.testing.assert_array_equal(ts, [0.0])


@pytest.mark.skipif(not HAVE_DECORD, reason="decord absent")
@pytest.mark.parametrize("name", ["h264.mp4", "vfr.mkv", "rot90.mp4", "rot270.mkv", "vp9.webm"])
def test_backends_agree(videos: dict[str, Path], name: str) -> None:
    with VideoDecoder(videos[name], backend="decord") as a, VideoDecoder(videos[name], backend="pyav") as b:
        assert dataclass_fields(a.metadata) == dataclass_fields(b.metadata)
        np.testing.assert_array_equal(a.frame_timestamps(), b.frame_timestamps())
        for x, y in zip(a.candidates(2.0), b.candidates(2.0), strict=True):
            np.testing.assert_array_equal(x, y)
        idx = np.arange(a.metadata.num_frames)[::3]
        fa, fb = a.get_frames(idx), b.get_frames(idx)
        np.testing.assert_array_equal(fa.indices, fb.indices)
        assert np.abs(fa.data.astype(int) - fb.data.astype(int)).mean() < 3.0


def dataclass_fields(meta: VideoMetadata) -> tuple:
    return (meta.num_frames, meta.width, meta.height, meta.rotation, meta.codec, round(meta.duration, 6))


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotated_frames_come_back_upright(videos: dict[str, Path], backend: str) -> None:
    for name, rot in (("rot90.mp4", 90), ("rot270.mkv", 270)):
        with VideoDecoder(videos[name], backend=backend) as dec:
            assert dec.metadata.rotation == rot
            assert (dec.metadata.width, dec.metadata.height) == (160, 120)
            batch = dec.get_frames([0, 13])
            assert batch.data.shape == (2, 120, 160, 3)
            np.testing.assert_allclose(stamps(batch), [0.0, 1.3], atol=1e-6)
            small = dec.get_frames([13], short_side=60)
            assert small.data.shape == (1, 60, 80, 3)
            assert media.read_stamp(small.data[0]) == pytest.approx(1.3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_get_frames_order_duplicates_and_range(videos: dict[str, Path], backend: str) -> None:
    with VideoDecoder(videos["h264.mp4"], backend=backend) as dec:
        batch = dec.get_frames([30, 2, 30, 7])
        np.testing.assert_array_equal(batch.indices, [30, 2, 30, 7])
        np.testing.assert_allclose(stamps(batch), [3.0, 0.2, 3.0, 0.7])
        np.testing.assert_allclose(batch.timestamps, [3.0, 0.2, 3.0, 0.7])
        # going backwards after a later request still works
        assert media.read_stamp(dec.get_frames([1]).data[0]) == pytest.approx(0.1)
        batches = list(dec.iter_frames([9, 3, 3, 1], batch_size=2))
        assert [b.indices.tolist() for b in batches] == [[1, 3], [9]]
        assert len(dec.get_frames([])) == 0
        with pytest.raises(IndexError):
            dec.get_frames([40])
        with pytest.raises(IndexError):
            list(dec.iter_frames([-1]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_short_side_resizes_and_never_upscales(videos: dict[str, Path], backend: str) -> None:
    with VideoDecoder(videos["h264.mp4"], backend=backend) as dec:
        assert dec.get_frames([5], short_side=48).data.shape == (1, 48, 64, 3)
        assert dec.get_frames([5], short_side=1000).data.shape == (1, 120, 160, 3)
        with pytest.raises(ValueError):
            dec.get_frames([5], short_side=0)


def test_pyav_seeks_over_long_gaps(videos: dict[str, Path]) -> None:
    with VideoDecoder(videos["long.mp4"], backend="pyav") as dec:
        idx = np.array([3, 95, 96, 150, 199])
        batch = dec.get_frames(idx)
        np.testing.assert_allclose(stamps(batch), idx / 10.0)
        idx, ts = dec.candidates(fps=0.5)
        np.testing.assert_allclose(stamps(dec.get_frames(idx, short_side=64)), ts)


# ------------------------------------------------------------------ inputs


@pytest.mark.parametrize("backend", BACKENDS)
def test_bytes_and_file_objects(videos: dict[str, Path], backend: str) -> None:
    raw = videos["vfr.mp4"].read_bytes()
    with VideoDecoder(raw, backend=backend) as dec:
        assert dec.metadata.source == "<bytes>"
        tmp = dec._path
        assert os.path.exists(tmp)
        idx, ts = dec.candidates(1.0)
        np.testing.assert_allclose(stamps(dec.get_frames(idx)), ts, atol=0.011)
    assert not os.path.exists(tmp)  # temporary copy removed on close
    with VideoDecoder(io.BytesIO(raw), backend=backend) as dec:
        assert dec.metadata.source == "<file object>"
        assert dec.metadata.num_frames == len(true_times("vfr.mp4"))
    with open(videos["h264.mkv"], "rb") as fh, open_video(fh, backend=backend) as dec:
        assert media.read_stamp(dec.get_frames([12]).data[0]) == pytest.approx(1.2)


def test_audio_track_is_ignored(videos: dict[str, Path]) -> None:
    with VideoDecoder(videos["audio.mp4"]) as dec:
        assert dec.metadata.num_frames == 40
        assert media.read_stamp(dec.get_frames([39]).data[0]) == pytest.approx(3.9)


# ------------------------------------------------------------------ errors, fallback, timeout


@pytest.mark.parametrize("backend", ["auto", "pyav", "decord"])
@pytest.mark.parametrize(
    "name, reason",
    [
        ("missing.mp4", "does not exist"),
        ("empty.mp4", "empty"),
        ("corrupt.mp4", "not a readable media file"),
        ("truncated.mp4", "not a readable media file"),
        ("audio_only.m4a", "no video stream"),
    ],
)
def test_bad_files_raise_video_read_error(videos: dict[str, Path], name: str, reason: str, backend: str) -> None:
    path = videos["h264.mp4"].with_name(name)
    with pytest.raises(VideoReadError) as info:
        VideoDecoder(path, backend=backend)
    assert name in str(info.value) and reason in str(info.value)
    assert info.value.source == str(path)
    assert isinstance(info.value, TSPOError)


def test_bad_inputs() -> None:
    with pytest.raises(VideoReadError, match="<bytes>"):
        VideoDecoder(b"")
    with pytest.raises(VideoReadError, match="<bytes>.*not a readable"):
        VideoDecoder(b"\x00garbage" * 100)
    with pytest.raises(ValueError):
        VideoDecoder(b"x", backend="opencv")


@pytest.mark.skipif(not HAVE_DECORD, reason="decord absent")
def test_truncated_file_refused_by_decord_is_read_by_auto(faststart_truncated: Path) -> None:
    with pytest.raises(VideoReadError, match="decord"):
        VideoDecoder(faststart_truncated, backend="decord")
    with pytest.warns(VideoDamageWarning, match="ends early"):
        dec = VideoDecoder(faststart_truncated)
    with dec:
        assert dec.metadata.backend == "pyav"
        assert 100 < dec.metadata.num_frames < 200
        idx, ts = dec.candidates(1.0)
        with warnings.catch_warnings(record=True) as lost:  # the picture the cut goes through is left out
            warnings.simplefilter("always", VideoDamageWarning)
            batches = list(dec.iter_frames(idx, short_side=64))
        times = np.concatenate([b.timestamps for b in batches])
        assert len(times) >= len(idx) - 1 and len(lost) == len(idx) - len(times)
        np.testing.assert_allclose(stamps_of(np.concatenate([b.data for b in batches])), times)


def test_decord_absent_is_named_when_asked_for(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video_decord, "import_decord", lambda: None)
    with VideoDecoder(videos["h264.mp4"]) as dec:
        assert dec.metadata.backend == "pyav"
    with pytest.raises(VideoReadError, match="decord is not installed"):
        VideoDecoder(videos["h264.mp4"], backend="decord")


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_auto_and_pyav_never_touch_decord(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """decord conceals bitstream errors (a damaged GOP comes out as wrong pictures, said nowhere), so ``auto``
    decodes every request shape with PyAV, which reports them."""

    def boom() -> None:
        raise AssertionError("decord used")

    monkeypatch.setattr(video_decord, "import_decord", boom)
    with VideoDecoder(videos["vp9.webm"], backend=backend) as dec:
        assert dec.metadata.backend == "pyav"
        keys = dec.keyframe_indices()
        for request in ([7], [7, 8], [int(keys[0])], [3, 35]):  # one GOP, a keyframe, several GOPs
            np.testing.assert_allclose(stamps(dec.get_frames(request)), np.asarray(request) / 10.0, atol=1e-6)


@pytest.mark.skipif(not HAVE_DECORD, reason="decord absent")
def test_forced_decord_batch_error_is_raised_with_its_name(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import decord

    def broken(self, indices):  # noqa: ANN001
        raise decord.DECORDError("simulated C++ failure")

    with VideoDecoder(videos["h264.mp4"], backend="decord") as dec:
        assert dec.metadata.backend == "decord"
        monkeypatch.setattr(decord.VideoReader, "get_batch", broken)
        with pytest.raises(VideoReadError, match="decord failed") as info:
            dec.get_frames([4, 8])
        assert "h264.mp4" in str(info.value)


class _Stall:
    """A decoder call stuck until the test releases it (never by the clock): it counts the calls that got
    stuck and the ones that finished, so a test sees whether the caller waited for it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = 0
        self.finished = 0

    def __call__(self) -> None:
        self.entered += 1
        self.release.wait(120)
        self.finished += 1
        raise RuntimeError("should have been abandoned")


@pytest.mark.skipif(not HAVE_DECORD, reason="decord absent")
def test_stalled_decord_times_out(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import decord

    stall = _Stall()
    monkeypatch.setattr(decord.VideoReader, "get_batch", lambda self, indices: stall())
    try:
        with VideoDecoder(videos["h264.mp4"], backend="decord", timeout=0.5) as dec:
            with pytest.raises(VideoReadError, match=r"timed out after 0.5s") as info:
                dec.get_frames([5])
            assert "h264.mp4" in str(info.value)
        # the call came back while the stalled decode was still blocked: abandoned, not waited for
        assert stall.entered == 1 and stall.finished == 0
    finally:
        stall.release.set()


def test_stalled_open_times_out(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeDecord:
        @staticmethod
        def cpu(i: int) -> int:
            return i

        class VideoReader:
            def __init__(self, *a: object, **k: object) -> None:
                stall()

    stall = _Stall()
    monkeypatch.setattr(video_decord, "import_decord", lambda: FakeDecord)
    try:
        with pytest.raises(VideoReadError, match="timed out"):
            VideoDecoder(videos["h264.mp4"], backend="decord", timeout=0.5)
        assert stall.entered == 1 and stall.finished == 0  # the open abandoned while still stuck
    finally:
        stall.release.set()


def test_closed_decoder_refuses_work(videos: dict[str, Path]) -> None:
    dec = open_video(videos["h264.mp4"])
    dec.close()
    dec.close()  # idempotent
    with pytest.raises(ValueError):
        dec.get_frames([0])


def test_orientation_matching_refuses_ambiguous_frames() -> None:
    frame = media.draw_frame(1.0)
    assert video_decord.match_orientation(frame, frame) == 0
    assert video_decord.match_orientation(np.rot90(frame, k=1), frame) == 90  # turned back clockwise
    assert video_decord.match_orientation(np.rot90(frame, k=2), frame) == 180
    black = np.zeros_like(frame)
    assert video_decord.match_orientation(black, black) is None


@pytest.mark.skipif(not HAVE_DECORD, reason="decord absent")
def test_decord_rotation_quirk_is_detected(videos: dict[str, Path]) -> None:
    # decord 0.6 rotates MP4 (its FFmpeg 4 exposes the matrix) but not MKV: both must come out upright
    with VideoDecoder(videos["rot90.mp4"], backend="decord") as dec:
        assert dec._readers["decord"].fix == 0
    with VideoDecoder(videos["rot270.mkv"], backend="decord") as dec:
        assert dec._readers["decord"].fix == 270


# ------------------------------------------------------------------ every PyAV the project allows (av>=12)


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_mp4_rotation_read_from_the_track_header_matches_pyav(tmp_path: Path, rotate: int) -> None:
    """PyAV 12 has no frame.rotation: the tkhd matrix gives the same clockwise turn."""
    import av

    from tspo_sampler.video._rotation import mp4_track_rotation

    path = media.make_video(tmp_path / f"r{rotate}.mov", duration=0.3, rotate=rotate)
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    assert mp4_track_rotation(str(path), 0) == rotate == (-int(round(frame.rotation))) % 360


def test_disposition_flags_compare_values_not_ints() -> None:
    """av 15's Disposition is a plain enum.Flag, where int() raises TypeError (lmms-eval pins av<16)."""
    import enum

    from tspo_sampler.video._probe import _flag

    class Disposition(enum.Flag):
        attached_pic = 1024
        timed_thumbnails = 2048

    with pytest.raises(TypeError):
        int(Disposition.attached_pic)
    assert _flag(Disposition.attached_pic) | _flag(Disposition.timed_thumbnails) == 3072
    assert _flag(Disposition(0)) == 0 and _flag(1024) == 1024


def test_decord_reader_is_idle_after_a_batch(tmp_path):
    """decord's reader goes on decoding ahead after ``get_batch`` (dmlc/decord issue 157): a core and hundreds of
    MB a second until the video ends, while the caller encodes. The decoder must park it after every batch."""
    pytest.importorskip("decord")
    video = media.make_long_video(tmp_path / "long.mp4", 1.5, size=(640, 360), fps=25.0, threads=2)
    with VideoDecoder(video, backend="decord") as dec:
        dec.get_frames([60, 61])
        before = time.process_time()  # CPU time of every thread of this process
        time.sleep(1.0)
        busy = time.process_time() - before
    assert busy < 0.3, f"the decoder used {busy:.2f} s of CPU in the background during 1 s of idling"
