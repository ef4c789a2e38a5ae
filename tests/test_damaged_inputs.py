"""Deliberately damaged inputs: every case gets an error or a result with a warning, never a silent wrong answer.

Each test writes its own damaged file (stamped videos from ``media``, remuxed and cut with the ffmpeg program):
holes of zeroed bytes, truncation with the index first and last, odd sources and odd frames.

Sections, in this order: decoding (holes, truncation), sources and in-memory frames, logging, arguments,
and the feature cache's own damage at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import media
from tspo_sampler import VideoReadError
from tspo_sampler.video import MAX_LOST_FRACTION, VideoDamageWarning, VideoDecoder
from tspo_sampler.video._torchcodec import import_torchcodec

HAVE_TORCHCODEC = import_torchcodec() is not None

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="needs the ffmpeg program")
BACKENDS = ["auto", "pyav"]
FPS = 25.0
SECONDS = 20.0


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-v", "error", "-y", *args], check=True, capture_output=True, timeout=120)


def zero_bytes(src: Path, dst: Path, start: float, length: float) -> Path:
    """Copy ``src`` with a hole of zeroed bytes from ``start`` (a fraction of the file) of ``length`` (a fraction)."""
    data = bytearray(src.read_bytes())
    a, n = int(len(data) * start), int(len(data) * length)
    data[a : a + n] = bytes(n)
    dst.write_bytes(bytes(data))
    return dst


def stamps(frames: np.ndarray) -> np.ndarray:
    return np.array([media.read_stamp(f) for f in frames])


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """20 s of stamped H.264 at 25 fps, a keyframe a second (``-g 25``), and damaged copies of it."""
    if FFMPEG is None:
        pytest.skip("needs the ffmpeg program")
    root = tmp_path_factory.mktemp("damaged")
    src = media.make_video(root / "src.mp4", duration=SECONDS, fps=FPS, size=(320, 240), gop=25)
    fast = root / "faststart.mp4"
    ffmpeg("-i", str(src), "-c", "copy", "-movflags", "+faststart", str(fast))  # the index (moov) first
    moov_last = root / "moov_last.mp4"
    ffmpeg("-i", str(src), "-c", "copy", str(moov_last))
    mkv = root / "src.mkv"
    ffmpeg("-i", str(src), "-c", "copy", str(mkv))
    return {
        "mkv_hole": zero_bytes(mkv, root / "hole.mkv", 0.5, 0.2),
        "clean": fast,
        # a fifth of the media data zeroed in the middle (the 100 KB of a 20 s file)
        "hole": zero_bytes(fast, root / "hole.mp4", 0.5, 0.2),
        # most of the media data zeroed: too much is lost to return a selection
        "wrecked": zero_bytes(fast, root / "wrecked.mp4", 0.15, 0.8),
        "cut_fast": media.make_truncated(fast, root / "cut_fast.mp4", 0.5),
        "cut_moov_last": media.make_truncated(moov_last, root / "cut_moov_last.mp4", 0.5),
    }


# ================================================================== decoding: holes (issue 11, item 1)


@needs_ffmpeg
@pytest.mark.parametrize("backend", BACKENDS)
def test_hole_costs_only_its_gops_and_says_where(damaged: dict[str, Path], backend: str) -> None:
    with VideoDecoder(damaged["hole"], backend=backend) as dec:
        idx, ts = dec.candidates(1.0)
        assert len(idx) == SECONDS
        with pytest.warns(VideoDamageWarning, match=r"could not be decoded \(damaged data at \d+\.\d+-\d+\.\d+ s\)"):
            batches = list(dec.iter_frames(idx, short_side=120, batch_size=4))
    got = np.concatenate([b.indices for b in batches])
    times = np.concatenate([b.timestamps for b in batches])
    frames = np.concatenate([b.data for b in batches])
    assert len(np.unique(got)) == len(got)  # never one frame reported as several candidates
    np.testing.assert_allclose(stamps(frames), times, atol=1e-6)  # every frame is the one it claims to be
    lost = sorted(set(ts.tolist()) - set(times.tolist()))
    assert 1 <= len(lost) <= 8  # the damaged stretch, a few seconds, not everything after it
    assert {0.0, 1.0, 18.0, 19.0} <= set(times.tolist())  # decoding resumed after the hole


@needs_ffmpeg
@pytest.mark.parametrize("backend", BACKENDS)
def test_matroska_hole_skipped_by_the_demuxer_is_named(damaged: dict[str, Path], backend: str) -> None:
    """Matroska's demuxer skips damaged clusters without an error: the bytes no packet covers give it away."""
    with pytest.warns(VideoDamageWarning, match=r"no frames between (\d+\.\d+)-(\d+\.\d+) s \(\d+ bytes\)") as rec:
        dec = VideoDecoder(damaged["mkv_hole"], backend=backend)
    with dec:
        t0, t1 = (float(x) for x in re.search(r"between (\S+)-(\S+) s", str(rec[0].message)).groups())
        assert 5.0 < t0 < t1 < 16.0 and t1 - t0 > 2.0
        idx, ts = dec.candidates(1.0)
        batches = list(dec.iter_frames(idx, short_side=120))
    times = np.concatenate([b.timestamps for b in batches])
    np.testing.assert_allclose(stamps(np.concatenate([b.data for b in batches])), times, atol=1e-6)
    assert len(np.unique(times)) == len(times) < SECONDS

@needs_ffmpeg
@pytest.mark.parametrize("backend", BACKENDS)
def test_matroska_hole_serves_no_half_decoded_frame(damaged: dict[str, Path], backend: str) -> None:
    """The last packet before a hole may be cut by it: that picture, and those after the hole up to the next
    keyframe, are left out (and said), never served; every frame served equals the undamaged file's."""
    with pytest.warns(VideoDamageWarning, match="no frames between") as rec:
        dec = VideoDecoder(damaged["mkv_hole"], backend=backend)
    t0, t1 = (float(x) for x in re.search(r"between (\S+)-(\S+) s", str(rec[0].message)).groups())
    with dec, VideoDecoder(damaged["clean"], backend="pyav") as clean:
        ts = dec.frame_timestamps()
        near = np.flatnonzero((ts > t0 - 0.5) & (ts < t1 + 1.5))  # both edges of the hole, every frame
        with pytest.warns(VideoDamageWarning, match=r"could not be decoded \(damaged data at") as lost:
            got = list(dec.iter_frames(near, short_side=120))
        first_lost = float(re.search(r"damaged data at (\d+\.\d+)", str(lost[0].message)).group(1))
        assert first_lost <= t0  # the cut picture's GOP goes with it when the cut makes the decoder fail
        times = np.concatenate([b.timestamps for b in got])
        assert t0 not in times and len(times) < len(near)
        ref = clean.get_frames(np.searchsorted(clean.frame_timestamps(), times), short_side=120)
        np.testing.assert_allclose(ref.timestamps, times, atol=1e-6)
        err = np.abs(np.concatenate([b.data for b in got]).astype(int) - ref.data.astype(int)).mean(axis=(1, 2, 3))
        assert err.max() < 0.5, dict(zip(times.round(2).tolist(), err.round(1).tolist(), strict=True))


@needs_ffmpeg
def test_a_damaged_first_keyframe_costs_its_gop_not_the_file(damaged: dict[str, Path], tmp_path: Path) -> None:
    """The probe decodes the first picture for the size and orientation: a damaged one used to refuse the file."""
    import av

    with av.open(str(damaged["clean"])) as container:
        first = next(p for p in container.demux(container.streams.video[0]) if p.size)
        pos, size = int(first.pos), int(first.size)
    data = bytearray(damaged["clean"].read_bytes())
    data[pos + size - 256 : pos + size - 64] = bytes(192)  # its picture data (x264's settings text comes first)
    broken = tmp_path / "first_gop.mp4"
    broken.write_bytes(bytes(data))
    with VideoDecoder(broken, backend="pyav") as dec:
        idx, _ = dec.candidates(1.0)
        lost = r"1 of 20 requested frames could not be decoded \(damaged data at 0\.00"
        with pytest.warns(VideoDamageWarning, match=lost):
            got = list(dec.iter_frames(idx, short_side=120))
    times = np.concatenate([b.timestamps for b in got])
    np.testing.assert_allclose(times, np.arange(1, SECONDS), atol=1e-6)  # only the first second is gone
    np.testing.assert_allclose(stamps(np.concatenate([b.data for b in got])), times, atol=1e-6)


@needs_ffmpeg
def test_hole_every_frame_decoded_is_right(damaged: dict[str, Path]) -> None:
    """Dense candidates: frames drawn from missing references (just after a hole) are dropped with their GOP."""
    with VideoDecoder(damaged["hole"], backend="pyav") as dec:
        idx, ts = dec.candidates(FPS)
        with pytest.warns(VideoDamageWarning):
            batches = list(dec.iter_frames(idx, short_side=120))
    times = np.concatenate([b.timestamps for b in batches])
    np.testing.assert_allclose(stamps(np.concatenate([b.data for b in batches])), times, atol=1e-6)
    assert 0.5 * len(idx) < len(times) < len(idx)


@needs_ffmpeg
def test_select_frames_on_a_hole_has_distinct_honest_candidates(uncached_sampler, damaged: dict[str, Path]) -> None:
    with pytest.warns(VideoDamageWarning, match="damaged data"):
        sel = uncached_sampler.select_frames(damaged["hole"], "what colour is the band?", k=4)
    assert len(set(sel.candidate_indices)) == len(sel.candidate_indices) < SECONDS
    np.testing.assert_allclose(stamps(sel.frames), sel.timestamps, atol=1e-6)


@needs_ffmpeg
def test_cached_features_of_a_damaged_video_warn_again(checkpoint_dir: Path, damaged: dict, tmp_path: Path) -> None:
    from tspo_sampler import TemporalSampler

    sampler = TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache_dir=tmp_path / "cache")
    with pytest.warns(VideoDamageWarning, match="could not be decoded"):
        first = sampler.select_frames(damaged["hole"], "what colour is the band?", k=4, return_frames=False)
    with pytest.warns(VideoDamageWarning, match=r"could not be decoded.*\(features from the cache\)"):
        again = sampler.select_frames(damaged["hole"], "what colour is the band?", k=4, return_frames=False)
    assert again.candidate_indices == first.candidate_indices
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler.select_frames(damaged["clean"], "what colour is the band?", k=4, return_frames=False)
        sampler.select_frames(damaged["clean"], "what colour is the band?", k=4, return_frames=False)

@needs_ffmpeg
@pytest.mark.parametrize("backend", BACKENDS)
def test_too_much_lost_raises(damaged: dict[str, Path], backend: str) -> None:
    with VideoDecoder(damaged["wrecked"], backend=backend) as dec:
        idx, _ = dec.candidates(1.0)
        with pytest.raises(VideoReadError, match="could not be decoded.*over half"):
            list(dec.iter_frames(idx, short_side=120))
    assert MAX_LOST_FRACTION == 0.5  # documented in the README's Errors section


@needs_ffmpeg
@pytest.mark.parametrize("backend", BACKENDS)
def test_get_frames_refuses_a_frame_in_the_hole(damaged: dict[str, Path], backend: str) -> None:
    with VideoDecoder(damaged["clean"]) as clean:
        ts = clean.frame_timestamps()
    inside = int(np.searchsorted(ts, 11.5))
    with VideoDecoder(damaged["hole"], backend=backend) as dec:
        with pytest.raises(VideoReadError, match=r"1 of 2 requested frames could not be decoded .*11\.\d+ s"):
            dec.get_frames([25, inside])
        np.testing.assert_allclose(stamps(dec.get_frames([25, 475]).data), [1.0, 19.0])


# ================================================================== decoding: truncation (issue 11, item 2)


@needs_ffmpeg
@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_faststart_warns_with_both_durations(damaged: dict[str, Path], backend: str) -> None:
    with pytest.warns(VideoDamageWarning, match=r"ends early: the container states 20\.00 s .*only \d+\.\d+ s"):
        dec = VideoDecoder(damaged["cut_fast"], backend=backend)
    with dec:
        assert 5.0 < dec.metadata.duration < 15.0
        idx, ts = dec.candidates(1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VideoDamageWarning)  # the cut tail may lose its last GOP too
            batches = list(dec.iter_frames(idx, short_side=120))
        times = np.concatenate([b.timestamps for b in batches])
        np.testing.assert_allclose(stamps(np.concatenate([b.data for b in batches])), times, atol=1e-6)


@needs_ffmpeg
def test_clean_file_gives_no_warning(damaged: dict[str, Path]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with VideoDecoder(damaged["clean"]) as dec:
            idx, _ = dec.candidates(FPS)
            assert sum(len(b) for b in dec.iter_frames(idx, short_side=64)) == len(idx)


@needs_ffmpeg
@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_with_index_last_raises(damaged: dict[str, Path], backend: str) -> None:
    with pytest.raises(VideoReadError, match="cut_moov_last.mp4.*not a readable media file"):
        VideoDecoder(damaged["cut_moov_last"], backend=backend)



# ================================================================== odd timelines (issue 20, media)


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Short stamped files (3-4 s, 160x120) in the containers and states issue 20 names."""
    if FFMPEG is None:
        pytest.skip("needs the ffmpeg program")
    root = tmp_path_factory.mktemp("odd")
    mkv = media.make_small_cluster_mkv(root / "whole.mkv", duration=4.0)
    return {
        "ts": media.make_mpegts(root / "bframes.ts"),
        "joined": media.make_joined_mpegts(root / "joined.ts"),
        "edit": media.make_edit_list_mp4(root / "edit.mp4", cut=0.5),
        "ptsless": media.make_ptsless_mkv(root / "ptsless.mkv", untimed=1.0),
        "cut": media.make_truncated(mkv, root / "cut.mkv", keep=0.5),
        "hole": media.make_hole(mkv, root / "hole.mkv", 0.45, 0.2),
        "whole": mkv,
        "whole_mp4": media.make_video(root / "whole.mp4", duration=4.0),
        "whole_ts": media.make_mpegts(root / "whole.ts", duration=4.0),
    }


def every_frame(dec: VideoDecoder) -> tuple[np.ndarray, np.ndarray]:
    """(times, stamps) of every frame the decoder serves."""
    idx, _ = dec.candidates(fps=dec.metadata.fps)
    batches = list(dec.iter_frames(idx, short_side=64))
    return np.concatenate([b.timestamps for b in batches]), stamps(np.concatenate([b.data for b in batches]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_mpegts_with_bframes_and_a_late_start_is_whole_and_silent(odd: dict[str, Path], backend: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no false damage warning
        with VideoDecoder(odd["ts"], backend=backend) as dec:
            times, seen = every_frame(dec)
    np.testing.assert_allclose(times, np.arange(30) / 10.0, atol=1e-6)  # from the stream start, none dropped
    np.testing.assert_allclose(seen, times, atol=1e-6)


@pytest.mark.parametrize("backend", ["decord", "torchcodec"])
def test_mpegts_is_refused_by_backends_that_misplace_its_frames(odd: dict[str, Path], backend: str) -> None:
    with pytest.raises(VideoReadError, match=r"bframes.ts: .*cannot place frames in mpegts files .*decoder='pyav'"):
        VideoDecoder(odd["ts"], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_joined_mpegts_segments_follow_on_after_the_pts_reset(odd: dict[str, Path], backend: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with VideoDecoder(odd["joined"], backend=backend) as dec:
            times, seen = every_frame(dec)
            assert len(dec._index.resets) == 1 and 1.5 <= dec._index.resets[0] <= 2.0  # by decode time
    np.testing.assert_allclose(times, np.arange(40) / 10.0, atol=1e-6)  # the second segment is used
    np.testing.assert_allclose(seen, times, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_matroska_warns_with_both_durations(odd: dict[str, Path], backend: str) -> None:
    with pytest.warns(VideoDamageWarning, match=r"ends early: the container states 4\.00 s, only \d\.\d+ s"):
        dec = VideoDecoder(odd["cut"], backend=backend)
    with dec:
        times, seen = every_frame(dec)
    assert 0.5 < times[-1] < 3.0
    np.testing.assert_allclose(seen, times, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_holed_matroska_drops_the_frames_at_the_edges(odd: dict[str, Path], backend: str) -> None:
    with VideoDecoder(odd["hole"], backend=backend) as dec:
        with pytest.warns(VideoDamageWarning, match=r"could not be decoded \(damaged data at \d\.\d+-\d\.\d+ s\)"):
            times, seen = every_frame(dec)
    np.testing.assert_allclose(seen, times, atol=1e-6)  # no half-decoded frame next to the hole
    assert 10 < len(times) < 40


@pytest.mark.parametrize("container", ["mkv", "mp4", "ts"])
def test_holes_anywhere_serve_no_wrong_frame_and_say_what_is_lost(
    odd: dict[str, Path], tmp_path: Path, container: str
) -> None:
    """Zeroed bytes swept over a 4 s file: the Matroska demuxer skips them silently, MPEG-TS loses packets,
    MP4 hands them to the decoder, which conceals what it can and by default says nothing.  Before the decoder
    reported every bitstream error and the probe found small holes, most of these served wrong pictures
    (mkv 35 of 48 cases here, ts 30, mp4 6).  One case in a few dozen may still decode wrong without any error
    (zeros cutting the tail of one packet decode as a valid, shorter picture); never more."""
    src = {"mkv": odd["whole"], "mp4": odd["whole_mp4"], "ts": odd["whole_ts"]}[container]
    wrong, silent_loss = [], []
    for start in np.arange(0.1, 0.9, 0.05):
        for length in (0.01, 0.05, 0.2):
            holed = media.make_hole(src, tmp_path / f"hole.{container}", float(start), length)
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always", VideoDamageWarning)
                try:
                    with VideoDecoder(holed, backend="pyav") as dec:
                        times, seen = every_frame(dec)
                except VideoReadError:
                    continue  # the index or the first picture is gone: refused, and said
                except ValueError:  # a frame whose stamp cannot be read at all
                    wrong.append((round(start, 2), length))
                    continue
            if not np.allclose(seen, times, atol=1e-6):
                wrong.append((round(start, 2), length))
            if len(times) < 40 and not said and (container != "ts" or start + length < 1):
                silent_loss.append((round(start, 2), length))  # (MPEG-TS states no duration: a lost tail is silent)
    assert len(wrong) <= 1, wrong
    assert not silent_loss


@pytest.mark.parametrize("backend", BACKENDS)
def test_ptsless_frames_are_no_candidates_and_are_named(odd: dict[str, Path], backend: str) -> None:
    with pytest.warns(VideoDamageWarning, match="10 frames have no presentation time"):
        dec = VideoDecoder(odd["ptsless"], backend=backend)
    with dec:
        times, seen = every_frame(dec)
    np.testing.assert_allclose(times, np.arange(20) / 10.0, atol=1e-6)
    np.testing.assert_allclose(seen, times + 1.0, atol=1e-6)  # the frames after the untimed second, in order


@pytest.mark.parametrize("backend", ["auto", "pyav", "torchcodec"])
def test_edit_list_hidden_frames_are_not_frames(odd: dict[str, Path], backend: str) -> None:
    if backend == "torchcodec" and not HAVE_TORCHCODEC:
        pytest.skip("torchcodec absent")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with VideoDecoder(odd["edit"], backend=backend) as dec:
            times, seen = every_frame(dec)
    np.testing.assert_allclose(times, np.arange(25) / 10.0, atol=1e-6)
    np.testing.assert_allclose(seen, times + 0.5, atol=1e-6)


def test_a_killed_process_leaves_its_spool_to_the_next_one(odd: dict[str, Path], tmp_path: Path) -> None:
    """A SIGKILL during decoding of in-memory bytes leaves the spool; the next process to spool removes it."""
    import signal

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    child = f"""
import sys, time
from pathlib import Path
from tspo_sampler.video import VideoDecoder
dec = VideoDecoder(Path({str(odd["edit"])!r}).read_bytes())
print("spooled", flush=True)
time.sleep(300)
"""
    proc = subprocess.Popen([sys.executable, "-c", child], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "spooled"
        left = [p.name for p in tmp_path.iterdir() if p.name.startswith(f"tspo-video-{proc.pid}-")]
        assert len(left) == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert (tmp_path / left[0]).exists()  # the kill left it behind
    mine = "from pathlib import Path; from tspo_sampler.video import VideoDecoder; "
    mine += f"VideoDecoder(Path({str(odd['edit'])!r}).read_bytes()).close()"
    subprocess.run([sys.executable, "-c", mine], env=env, check=True, timeout=120)
    assert not (tmp_path / left[0]).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("tspo-video-")] == []


# ================================================================== sources and in-memory frames (issue 11, item 9)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_not_a_regular_file_and_never_blocks(uncached_sampler, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    with pytest.raises(VideoReadError, match="pipe.mp4: not a regular file"):
        VideoDecoder(fifo)
    with pytest.raises(VideoReadError, match="pipe.mp4: not a regular file"):
        uncached_sampler.select_frames(str(fifo), "what is shown?", k=2)


@pytest.mark.parametrize("url", ["https://example.com/videos/a.mp4", "http://host//x.mp4", "rtsp://cam/live"])
def test_url_is_refused_as_a_url(uncached_sampler, url: str) -> None:
    with pytest.raises(VideoReadError, match="URLs are not supported") as info:
        uncached_sampler.select_frames(url, "what is shown?", k=2)
    assert info.value.source == url  # named as given, "//" intact
    with pytest.raises(VideoReadError, match="URLs are not supported"):
        VideoDecoder(url)


@needs_ffmpeg
def test_text_mode_file_object_is_a_type_error(uncached_sampler, damaged: dict[str, Path]) -> None:
    for call in (
        lambda f: uncached_sampler.select_frames(f, "what is shown?", k=2),
        lambda f: VideoDecoder(f),
    ):
        with open(damaged["clean"], encoding="utf-8") as f, pytest.raises(TypeError, match="binary mode"):
            call(f)
        with open(damaged["clean"], encoding="latin-1") as f, pytest.raises(TypeError, match="binary mode"):
            call(f)  # decodes without error, still text


@pytest.mark.parametrize(
    "frames, message",
    [
        (np.full((4, 8, 8, 3), np.nan, np.float32), "NaN"),
        (np.where(np.arange(4)[:, None, None, None] == 2, np.nan, 0.5) * np.ones((4, 8, 8, 3)), "NaN"),
        (np.full((4, 8, 8, 3), np.inf, np.float64), "infinite"),
        (np.full((4, 8, 8, 3), 300, np.int64), "0-255"),
        (np.full((4, 8, 8, 3), 1000.0, np.float32), "0-255"),
    ],
)
def test_frames_that_cannot_be_pixels_raise(uncached_sampler, frames: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uncached_sampler.select_frames(frames, "what is shown?", k=2)


def test_uint16_frames_are_scaled_not_clamped(uncached_sampler) -> None:
    rng = np.random.default_rng(0)
    frames8 = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    frames16 = frames8.astype(np.uint16) * 257  # the same picture in 16 bits
    a = uncached_sampler.select_frames(frames8, "what is shown?", k=3)
    b = uncached_sampler.select_frames(frames16, "what is shown?", k=3)
    np.testing.assert_array_equal(b.frames, a.frames)
    assert a.indices == b.indices


# ================================================================== logging: one warning, no FFmpeg flood (item 9)


@needs_ffmpeg
def test_damage_is_one_warning_not_a_flood_of_ffmpeg_lines(damaged: dict[str, Path]) -> None:
    code = f"""
import warnings
from tspo_sampler import VideoReadError
from tspo_sampler.video import VideoDecoder
warnings.simplefilter("always")
with VideoDecoder({str(damaged["hole"])!r}) as dec:
    try:
        dec.get_frames([250, 251])  # one GOP inside the hole
    except VideoReadError as exc:
        print("refused:", exc.reason)
    idx, _ = dec.candidates(25.0)
    print("decoded", sum(len(b) for b in dec.iter_frames(idx, short_side=64)))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "refused:" in res.stdout and "decoded" in res.stdout
    assert "NAL" not in res.stderr and "[h264 @" not in res.stderr
    assert res.stderr.count("VideoDamageWarning") == 1

# ================================================================== arguments: finite numbers (issue 11, item 3)

INF, NAN = float("inf"), float("nan")


@needs_ffmpeg
@pytest.mark.parametrize("fps", [INF, NAN, -INF])
def test_select_frames_refuses_non_finite_fps(uncached_sampler, damaged: dict[str, Path], fps: float) -> None:
    with pytest.raises(ValueError, match="fps must be a finite number"):
        uncached_sampler.select_frames(damaged["clean"], "what is shown?", k=2, fps=fps)
    frames = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="fps must be a finite number"):
        uncached_sampler.select_frames(frames, "what is shown?", k=2, fps=fps)
    with pytest.raises(ValueError, match="fps must be a finite number"):
        uncached_sampler.encode_video(frames, fps=fps)


@needs_ffmpeg
@pytest.mark.parametrize(
    "call, name",
    [
        (lambda d: d.candidates(fps=INF), "fps"),
        (lambda d: d.candidates(fps=NAN), "fps"),
        (lambda d: d.candidate_error(fps=INF), "fps"),
        (lambda d: d.candidates(max_candidates=2.5), "max_candidates"),
        (lambda d: d.candidates(max_candidates=NAN), "max_candidates"),
        (lambda d: d.get_frames([0], short_side=NAN), "short_side"),
        (lambda d: list(d.iter_frames([0], batch_size=INF)), "batch_size"),
    ],
)
def test_decoder_methods_name_the_bad_number(damaged: dict[str, Path], call, name: str) -> None:
    with VideoDecoder(damaged["clean"]) as dec:
        with pytest.raises(ValueError, match=name):
            call(dec)


@needs_ffmpeg
@pytest.mark.parametrize("kwargs, name", [({"timeout": NAN}, "timeout"), ({"num_threads": 1.5}, "num_threads")])
def test_decoder_constructor_names_the_bad_number(damaged: dict[str, Path], kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        VideoDecoder(damaged["clean"], **kwargs)


@pytest.mark.parametrize(
    "kwargs, name", [({"tau": NAN}, "tau"), ({"tau": INF}, "tau"), ({"decode_timeout": INF}, "decode_timeout"),
                     ({"window_size": 0}, "window_size")],
)
def test_sampler_constructor_names_the_bad_number(uncached_sampler, kwargs: dict, name: str) -> None:
    from tspo_sampler import TemporalSampler

    with pytest.raises(ValueError, match=name):
        TemporalSampler(uncached_sampler.encoder, uncached_sampler.agent, feature_cache=False, **kwargs)


@needs_ffmpeg
def test_cli_refuses_infinite_fps_in_one_line(damaged: dict[str, Path], checkpoint_dir: Path) -> None:
    cmd = [sys.executable, "-m", "tspo_sampler.cli", "select", str(damaged["clean"]), "what?", "--fps", "inf",
           "--model", str(checkpoint_dir)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["tspo select: error: --fps must be a finite number, got inf"]


# ================================================================== feature cache (issue 11, items 4-5)
# Damaged cache entries live in tests/test_cache_integrity.py (the cache owner's file, to keep edits apart):
# flipped bytes in each tensor and in the info JSON, entries without a checksum or cut short, kill -9 of a
# writer mid-write then a rerun (orphan removed once an hour old), same-size in-place edits between the
# sampled regions, and feature_cache="full-hash" catching an edit that restores the old mtime.
