"""select_frames on real video files: timestamps, upright frames, the feature cache, bad files, the CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import media
from tspo_sampler import TemporalSampler, VideoDamageWarning, VideoReadError
from tspo_sampler.features._cache import FeatureCache, default_cache_dir

Q = "when does the bar reach the right edge?"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    return {
        "mp4": media.make_video(d / "clip.mp4", duration=10.0, fps=10.0),
        "webm": media.make_video(d / "clip.webm", duration=6.0, fps=8.0, codec="libvpx-vp9"),
        "vfr": media.make_video(d / "vfr.mkv", duration=12.0, fps=4.0, vfr=True),
        "rot": media.make_video(d / "rot.mp4", duration=4.0, fps=10.0, size=(160, 96), rotate=90),
        "short": media.make_video(d / "short.mp4", duration=0.5, fps=10.0),
        "audio": media.make_audio_only(d / "audio.m4a"),
        "corrupt": media.make_corrupt(d / "corrupt.mp4"),
        "empty": media.make_empty(d / "empty.mp4"),
    }


def assert_frames_show_their_timestamps(sel, tol):
    assert sel.frames is not None and len(sel.frames) == len(sel.indices)
    for frame, ts in zip(sel.frames, sel.timestamps, strict=True):
        assert media.read_stamp(frame) == pytest.approx(ts, abs=tol)


def test_mp4_candidates_and_frames(sampler, videos):
    sel = sampler.select_frames(videos["mp4"], Q, k=4)
    assert sel.candidate_timestamps == pytest.approx([float(t) for t in range(10)], abs=1e-6)
    assert sel.candidate_indices == [10 * t for t in range(10)]
    assert len(sel) == 4 and sel.indices == sorted(sel.indices)
    assert sel.frames.shape == (4, 120, 160, 3) and sel.frames.dtype == np.uint8
    assert_frames_show_their_timestamps(sel, 0.05)
    assert sel.duration == pytest.approx(10.0, abs=0.15) and sel.fps == pytest.approx(10.0)
    assert sel.video == str(videos["mp4"])


def test_denser_candidates_and_cap(sampler, videos):
    dense = sampler.select_frames(videos["mp4"], Q, k=3, fps=4.0)
    assert len(dense.candidate_indices) in (40, 41)
    capped = sampler.select_frames(videos["mp4"], Q, k=3, fps=4.0, max_candidates=8)
    assert len(capped.candidate_indices) == 8
    assert capped.candidate_timestamps[0] == 0.0 and capped.candidate_timestamps[-1] >= 9.0
    assert_frames_show_their_timestamps(capped, 0.05)


def test_vfr_timestamps_are_presentation_times(sampler, videos):
    sel = sampler.select_frames(videos["vfr"], Q, k=6, fps=2.0)
    true_times = media.frame_times(12.0, 4.0, vfr=True)
    # every candidate timestamp is a real frame time, not index / average fps
    for idx, ts in zip(sel.candidate_indices, sel.candidate_timestamps, strict=True):
        assert ts == pytest.approx(true_times[idx], abs=2e-3)
    assert_frames_show_their_timestamps(sel, 0.02)
    naive = [i / sel.fps for i in sel.candidate_indices]
    assert max(abs(a - b) for a, b in zip(naive, sel.candidate_timestamps, strict=True)) > 0.3


def test_rotated_video_comes_back_upright(sampler, videos):
    sel = sampler.select_frames(videos["rot"], Q, k=2)
    assert sel.frames.shape[1:] == (96, 160, 3)
    assert_frames_show_their_timestamps(sel, 0.05)  # the stamp's fiducial only reads upright


def test_vp9_webm(sampler, videos):
    sel = sampler.select_frames(videos["webm"], Q, k=3)
    assert len(sel.candidate_indices) == 6
    assert_frames_show_their_timestamps(sel, 0.07)


def test_clip_shorter_than_a_second(sampler, videos):
    sel = sampler.select_frames(videos["short"], Q, k=4)
    assert sel.candidate_indices == [0] and sel.indices == [0]
    assert media.read_stamp(sel.frames[0]) == 0.0


def test_bytes_and_file_objects(uncached_sampler, videos):
    by_path = uncached_sampler.select_frames(videos["mp4"], Q, k=3)
    data = videos["mp4"].read_bytes()
    by_bytes = uncached_sampler.select_frames(data, Q, k=3)
    with open(videos["mp4"], "rb") as f:
        by_file = uncached_sampler.select_frames(f, Q, k=3)
    by_buffer = uncached_sampler.select_frames(io.BytesIO(data), Q, k=3)
    for sel in (by_bytes, by_file, by_buffer):
        assert sel.indices == by_path.indices
        np.testing.assert_allclose(sel.scores, by_path.scores, atol=1e-4)
        np.testing.assert_array_equal(sel.frames, by_path.frames)


def test_second_question_decodes_only_the_returned_frames(checkpoint_dir, videos, tmp_path, monkeypatch):
    from tspo_sampler import video as video_module

    sampler = TemporalSampler.from_pretrained(checkpoint_dir, feature_cache_dir=tmp_path / "cache")
    decoded = []
    real_iter, real_get = video_module.VideoDecoder.iter_frames, video_module.VideoDecoder.get_frames

    def spy_iter(self, indices, **kw):
        for batch in real_iter(self, indices, **kw):
            decoded.append(("chunk", len(batch.indices)))
            yield batch

    def spy_get(self, indices, **kw):
        decoded.append(("full", len(indices)))
        return real_get(self, indices, **kw)

    monkeypatch.setattr(video_module.VideoDecoder, "iter_frames", spy_iter)
    monkeypatch.setattr(video_module.VideoDecoder, "get_frames", spy_get)
    first = sampler.select_frames(videos["mp4"], Q, k=3)
    assert sum(n for kind, n in decoded if kind == "chunk") == 10
    decoded.clear()
    second = sampler.select_frames(videos["mp4"], "what colour is the band at the start?", k=3)
    assert decoded == [("full", 3)]
    assert second.candidate_indices == first.candidate_indices
    entries = list((tmp_path / "cache").glob("*/*.safetensors"))
    assert len(entries) == 1
    # a copy is another file (new inode and mtime): a new entry; renaming it keeps it a hit
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(videos["mp4"].read_bytes())
    sampler.select_frames(copy, Q, k=3, return_frames=False)
    renamed = copy.rename(tmp_path / "renamed.mp4")
    decoded.clear()
    sampler.select_frames(renamed, Q, k=3, return_frames=False)
    assert decoded == []
    # other candidate settings are another entry
    sampler.select_frames(videos["mp4"], Q, k=3, fps=2.0, return_frames=False)
    assert len(list((tmp_path / "cache").glob("*/*.safetensors"))) == 3


def test_corrupt_cache_entry_is_rebuilt(checkpoint_dir, videos, tmp_path):
    sampler = TemporalSampler.from_pretrained(checkpoint_dir, feature_cache_dir=tmp_path / "cache")
    first = sampler.select_frames(videos["mp4"], Q, k=3, return_frames=False)
    (entry,) = list((tmp_path / "cache").glob("*/*.safetensors"))
    entry.write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="corrupt feature cache entry"):
        again = sampler.select_frames(videos["mp4"], Q, k=3, return_frames=False)
    assert again.indices == first.indices
    assert FeatureCache(tmp_path / "cache").get(entry.stem) is not None  # rewritten, readable
    assert not list((tmp_path / "cache").glob("*/.tmp-*"))


def test_cache_off_writes_nothing(checkpoint_dir, videos, tmp_path, monkeypatch):
    monkeypatch.setenv("TSPO_SAMPLER_CACHE", str(tmp_path / "should-stay-empty"))
    sampler = TemporalSampler.from_pretrained(checkpoint_dir, feature_cache=False)
    sampler.select_frames(videos["mp4"], Q, k=2, return_frames=False)
    assert not (tmp_path / "should-stay-empty").exists()


def test_default_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("TSPO_SAMPLER_CACHE", str(tmp_path / "a"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("TSPO_SAMPLER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "tspo_sampler"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "tspo_sampler"


@pytest.mark.parametrize("name,cause", [("audio", "video stream"), ("corrupt", ""), ("empty", "empty")])
def test_unreadable_files(uncached_sampler, videos, name, cause):
    with pytest.raises(VideoReadError) as err:
        uncached_sampler.select_frames(videos[name], Q, k=2)
    assert videos[name].name in str(err.value)
    assert cause.lower() in str(err.value).lower()


def test_truncated_mp4_without_its_index_is_a_clear_error(uncached_sampler, videos, tmp_path):
    truncated = media.make_truncated(videos["mp4"], tmp_path / "truncated.mp4", keep=0.3)  # index (moov) at the end
    with pytest.raises(VideoReadError, match=r"truncated\.mp4: not a readable media file"):
        uncached_sampler.select_frames(truncated, Q, k=2)


def test_truncated_fast_start_mp4_gives_what_survives(uncached_sampler, videos, tmp_path):
    fast = tmp_path / "fast.mp4"  # the index (moov) first, as streaming sites serve: a cut file still opens
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(videos["mp4"]), "-c", "copy", "-movflags", "+faststart",
                    str(fast)], check=True)
    truncated = media.make_truncated(fast, tmp_path / "truncated.mp4", keep=0.3)
    with pytest.warns(VideoDamageWarning, match=r"truncated\.mp4: the file ends early: the container states 10\.00 s"):
        sel = uncached_sampler.select_frames(truncated, Q, k=2)
    assert sel.duration < 4.0 and max(sel.timestamps) < sel.duration  # only what survives the cut
    assert_frames_show_their_timestamps(sel, 0.05)


def test_missing_file_and_directory(uncached_sampler, tmp_path):
    with pytest.raises(VideoReadError, match="nope.mp4.*does not exist"):
        uncached_sampler.select_frames(tmp_path / "nope.mp4", Q, k=2)
    with pytest.raises(VideoReadError, match="directory"):
        uncached_sampler.select_frames(tmp_path, Q, k=2)
    with pytest.raises(VideoReadError, match="0 bytes"):
        uncached_sampler.select_frames(b"", Q, k=2)


def test_cli_select_table_json_and_grid(checkpoint_dir, videos, tmp_path, monkeypatch, capsys):
    from tspo_sampler.cli import main

    monkeypatch.setenv("TSPO_SAMPLER_CACHE", str(tmp_path / "cli-cache"))
    base = ["select", str(videos["mp4"]), Q, "-k", "3", "--model", str(checkpoint_dir)]
    assert main(base) == 0
    table = capsys.readouterr().out
    assert "3 of 10 candidates" in table and "rank" in table
    grid = tmp_path / "sheet.png"
    assert main(base + ["--json", "--method", "bin-max", "--save-grid", str(grid)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "bin-max" and len(out["indices"]) == 3 and len(out["timestamps"]) == 3
    from PIL import Image

    sheet = Image.open(grid)
    assert sheet.size[0] == 3 * 320 + 4 * 12 and sheet.size[1] > 200  # three 320 px frames, 12 px apart
    assert main(base[:3] + ["-k", "0", "--model", str(checkpoint_dir)]) == 2
    assert "k must be a positive integer" in capsys.readouterr().err
    assert main(["select", str(tmp_path / "x.mp4"), Q, "--model", str(checkpoint_dir)]) == 2
    assert "x.mp4" in capsys.readouterr().err


def test_console_script_entry_point(checkpoint_dir, videos, tmp_path):
    """`python -m tspo_sampler.cli` in a fresh process: errors are one line, never a traceback."""
    env = {**os.environ, "TSPO_SAMPLER_CACHE": str(tmp_path / "cli-cache")}
    video = str(tmp_path / "x.mp4")
    cmd = [sys.executable, "-m", "tspo_sampler.cli", "select", video, Q, "--model", str(checkpoint_dir)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 2 and "x.mp4" in res.stderr and "Traceback" not in res.stderr


def test_keyframe_candidates(uncached_sampler, tmp_path):
    video = media.make_video(tmp_path / "gop.mp4", duration=12.0, fps=10.0, gop=20, bframes=False)
    sel = uncached_sampler.select_frames(video, Q, k=3, candidate_mode="keyframes")
    assert sel.candidate_indices == list(range(0, 120, 20))  # one keyframe every 2 s
    assert sel.candidate_timestamps == pytest.approx([0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
    assert_frames_show_their_timestamps(sel, 0.05)
    with pytest.raises(ValueError, match="candidate_mode must be one of fps, keyframes"):
        uncached_sampler.select_frames(video, Q, k=3, candidate_mode="scenes")


def test_overlapped_and_inline_decoding_agree(checkpoint_dir, videos):
    inline = TemporalSampler.from_pretrained(checkpoint_dir, feature_cache=False)
    overlapped = TemporalSampler.from_pretrained(checkpoint_dir, feature_cache=False, overlap_decoding=True)
    assert inline.overlap_decoding is False and overlapped.overlap_decoding is True  # CPU default: inline
    a = inline.encode_video(videos["vfr"], fps=2.0)
    b = overlapped.encode_video(videos["vfr"], fps=2.0)
    assert np.array_equal(a.candidate_indices, b.candidate_indices)
    assert torch.equal(a.features, b.features)


def test_coarse_to_fine_decodes_in_the_producer_thread_when_overlapping(checkpoint_dir, tmp_path, monkeypatch):
    from tspo_sampler.video import VideoDecoder

    video = media.make_video(tmp_path / "long.mp4", duration=120.0, fps=10.0, gop=20, bframes=False)
    threads: list[str] = []
    original = VideoDecoder.iter_frames

    def recording(self, *args, **kwargs):
        for batch in original(self, *args, **kwargs):
            threads.append(threading.current_thread().name)
            yield batch

    monkeypatch.setattr(VideoDecoder, "iter_frames", recording)
    picks = {}
    for overlap in (False, True):
        sampler = TemporalSampler.from_pretrained(checkpoint_dir, feature_cache=False, overlap_decoding=overlap)
        threads.clear()
        sel = sampler.select_frames(video, Q, k=4, search="coarse-to-fine", max_encoded=0.3, return_frames=False)
        assert sel.encoded_frames < len(sel.candidate_indices)  # a search, not an exhaustive pass
        assert threads and set(threads) == ({"tspo-decode"} if overlap else {"MainThread"})
        picks[overlap] = (sel.indices, np.asarray(sel.scores))
    assert picks[True][0] == picks[False][0]
    assert np.array_equal(picks[True][1], picks[False][1], equal_nan=True)
