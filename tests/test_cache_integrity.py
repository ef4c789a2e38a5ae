"""Damaged feature caches and changed videos are never served: checksummed entries, writers killed
mid-write, orphaned temporary files, and files rewritten in place at the same size (issue 11, items 4-5)."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import media
from tspo_sampler import TemporalSampler
from tspo_sampler.features._cache import ORPHAN_AGE_S, FeatureCache, VideoFeatures, file_identity

Q = "when does the bar reach the right edge?"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return media.make_video(tmp_path_factory.mktemp("videos") / "clip.mp4", duration=10.0, fps=10.0)


@pytest.fixture(scope="module")
def big_raw(tmp_path_factory) -> Path:
    """An 11.5 MB uncompressed AVI: more than the five sampled 1 MiB regions, and any byte edited in its
    frame data changes a picture without making the file undecodable."""
    path = tmp_path_factory.mktemp("videos") / "raw.avi"
    return media.make_video(path, duration=10.0, fps=10.0, size=(320, 240), codec="rawvideo")


def cached(checkpoint_dir, directory: Path | FeatureCache, **kwargs) -> TemporalSampler:
    if isinstance(directory, FeatureCache):
        return TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache=directory, **kwargs)
    return TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache_dir=directory, **kwargs)


def only_entry(directory: Path) -> Path:
    (entry,) = list(directory.glob("*/*.safetensors"))
    return entry


def tensor_span(entry: Path, name: str) -> tuple[int, int]:
    """Byte range of tensor ``name`` inside a safetensors file (from its JSON header)."""
    raw = entry.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    begin, end = json.loads(raw[8 : 8 + n])[name]["data_offsets"]
    return 8 + n + begin, 8 + n + end


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:  # in place: same inode, same size
        f.seek(offset)
        f.write(data)


def corrupt_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "corrupt feature cache entry" in str(w.message)]


# ------------------------------------------------------------------------------------ checksummed entries


@pytest.mark.parametrize(
    "name,damage",
    [
        ("features", b"\xff" * 64),  # NaNs: used to fail every later call with "scores contains NaN"
        ("features", b"\x01"),  # one low byte: a silently different feature
        ("candidate_indices", b"\x07"),  # used to shift a candidate's source frame index
        ("candidate_timestamps", b"\x3f"),  # used to move a candidate's timestamp
    ],
)
def test_flipped_entry_bytes_warn_and_recompute(checkpoint_dir, uncached_sampler, clip, tmp_path, name, damage):
    sampler = cached(checkpoint_dir, tmp_path / "cache")
    truth = uncached_sampler.select_frames(clip, Q, k=3, return_frames=False)
    sampler.select_frames(clip, Q, k=3, return_frames=False)
    entry = only_entry(tmp_path / "cache")
    begin, end = tensor_span(entry, name)
    overwrite(entry, begin + (end - begin) // 2, damage)
    with pytest.warns(RuntimeWarning, match="corrupt feature cache entry.*checksum mismatch"):
        again = sampler.select_frames(clip, Q, k=3, return_frames=False)
    assert again.indices == truth.indices
    assert again.candidate_indices == truth.candidate_indices
    assert again.candidate_timestamps == truth.candidate_timestamps
    np.testing.assert_array_equal(again.scores, truth.scores)
    # the entry was rebuilt: the next call reads it without a warning
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        third = sampler.select_frames(clip, Q, k=3, return_frames=False)
    assert not corrupt_warnings(record)
    np.testing.assert_array_equal(third.scores, truth.scores)


def test_edited_info_json_is_detected(checkpoint_dir, clip, tmp_path):
    sampler = cached(checkpoint_dir, tmp_path / "cache")
    truth = sampler.encode_video(clip)
    entry = only_entry(tmp_path / "cache")
    raw = entry.read_bytes()
    at = raw.index(b'\\"duration\\": ') + len(b'\\"duration\\": ')
    assert raw[at : at + 1].isdigit()
    overwrite(entry, at, b"9" if raw[at : at + 1] != b"9" else b"8")  # same length: the header still parses
    with pytest.warns(RuntimeWarning, match="checksum mismatch"):
        again = sampler.encode_video(clip)
    assert again.duration == truth.duration
    assert torch.equal(again.features, truth.features)


def test_entry_without_checksum_or_truncated_is_a_miss(tmp_path):
    from safetensors.torch import save_file

    cache = FeatureCache(tmp_path)
    feats = VideoFeatures(torch.randn(6, 8), np.arange(6), np.arange(6) / 2.0, 3.0, 2.0, "v.mp4", {})
    path = cache.put("k" * 40, feats)
    tensors = {
        "features": feats.features,
        "candidate_indices": torch.arange(6),
        "candidate_timestamps": torch.arange(6, dtype=torch.float64) / 2,
    }
    save_file(tensors, str(path), metadata={"info": json.dumps({"duration": 3.0, "fps": 2.0, "source": "v"})})
    with pytest.warns(RuntimeWarning, match="no checksum"):
        assert cache.get("k" * 40) is None
    assert not path.exists()
    path = cache.put("k" * 40, feats)
    path.write_bytes(path.read_bytes()[:-100])  # a disk that lost the tail of a write
    with pytest.warns(RuntimeWarning, match="corrupt feature cache entry"):
        assert cache.get("k" * 40) is None
    got = (cache.put("k" * 40, feats), cache.get("k" * 40))[1]
    assert torch.equal(got.features, feats.features)


# ------------------------------------------------------------------------------------ killed writers

_WRITER = """
import sys, numpy as np, torch
from tspo_sampler.features._cache import FeatureCache, VideoFeatures
n = 20000  # 20000 x 768 float32: a 61 MB entry, whose put takes long enough to be caught in it
feats = VideoFeatures(torch.zeros(n, 768), np.arange(n), np.arange(n) * 1.0, float(n), 1.0, "big", {})
cache = FeatureCache(sys.argv[1])
print("ready", flush=True)
while True:
    cache.put(sys.argv[2], feats)
"""


def test_kill_9_during_a_cache_write_then_rerun(checkpoint_dir, uncached_sampler, clip, tmp_path):
    """A writer killed mid-write (SIGKILL, no cleanup) leaves no entry, only an orphaned temporary file;
    the rerun computes the right answer, and a later ``put`` removes the orphan once it is old."""
    directory = tmp_path / "cache"
    sampler = cached(checkpoint_dir, directory)
    sampler.encode_video(clip)  # learn the entry's key, then start over without it
    entry = only_entry(directory)
    key = entry.stem
    entry.unlink()
    for _attempt in range(3):
        argv = [sys.executable, "-c", _WRITER, str(directory), key]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 60
            tmps: list[Path] = []
            while time.monotonic() < deadline and not tmps and not entry.exists():
                # between creating its temporary file and renaming it (checksum, serialisation, write)
                tmps = list(entry.parent.glob(".tmp-*"))
                time.sleep(0.001)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        if not entry.exists():  # caught mid-write, before the first rename
            break
        entry.unlink()
        for p in entry.parent.glob(".tmp-*"):
            p.unlink()
    else:
        pytest.skip("the writer always finished before it could be killed")
    orphans = list(entry.parent.glob(".tmp-*"))
    assert len(orphans) == 1 and not entry.exists()

    truth = uncached_sampler.select_frames(clip, Q, k=3, return_frames=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        again = sampler.select_frames(clip, Q, k=3, return_frames=False)
    assert not corrupt_warnings(record)
    assert again.indices == truth.indices
    np.testing.assert_array_equal(again.scores, truth.scores)
    assert entry.exists() and len(FeatureCache(directory).get(key)) == 10
    assert orphans[0].exists()  # young: could be another process's write in progress, so kept

    old = time.time() - ORPHAN_AGE_S - 60
    os.utime(orphans[0], (old, old))
    sampler.select_frames(clip, Q, k=3, fps=2.0, return_frames=False)  # any later put cleans up
    assert not orphans[0].exists()
    assert len(list(directory.glob("*/*.safetensors"))) == 2


def test_clear_removes_temporary_files(tmp_path):
    cache = FeatureCache(tmp_path)
    feats = VideoFeatures(torch.randn(3, 4), np.arange(3), np.arange(3) * 1.0, 3.0, 1.0, "v", {})
    path = cache.put("ab" * 20, feats)
    orphan = path.parent / ".tmp-killed.safetensors"
    orphan.write_bytes(b"partial")
    assert cache.clear() == 1
    assert not path.exists() and not orphan.exists()


# ------------------------------------------------------------------------------------ same-size edits


def frame_span(path: Path, index: int) -> tuple[int, int]:
    """Byte range of frame ``index``'s data in an uncompressed AVI (from the demuxer's packet positions)."""
    with av.open(str(path)) as container:
        for i, packet in enumerate(container.demux(video=0)):
            if i == index:
                return packet.pos, packet.pos + packet.size
    raise IndexError(index)


def sampled_regions(path: Path) -> list[bytes]:
    size, chunk = path.stat().st_size, 1 << 20
    data = path.read_bytes()
    return [data[(size - chunk) * i // 4 :][:chunk] for i in range(5)]


def edit_between_sampled_regions(path: Path) -> None:
    """Grey out candidate frame 10 (t = 1 s), which lies between the first two sampled regions."""
    size, chunk = path.stat().st_size, 1 << 20
    begin, end = frame_span(path, 10)
    assert chunk <= begin and end <= (size - chunk) // 4, "frame 10 must lie between the sampled regions"
    regions = sampled_regions(path)
    overwrite(path, begin, b"\x80" * (end - begin))
    assert path.stat().st_size == size and sampled_regions(path) == regions


def test_same_size_edit_between_sampled_regions_recomputes(checkpoint_dir, uncached_sampler, big_raw, tmp_path):
    video = tmp_path / "edited.avi"
    video.write_bytes(big_raw.read_bytes())
    sampler = cached(checkpoint_dir, tmp_path / "cache")
    before = sampler.encode_video(video)
    inode = video.stat().st_ino
    time.sleep(0.02)  # past the file system's timestamp granularity
    edit_between_sampled_regions(video)
    assert video.stat().st_ino == inode
    after = sampler.encode_video(video)
    fresh = uncached_sampler.encode_video(video)
    assert torch.equal(after.features, fresh.features)
    assert not torch.equal(after.features[1], before.features[1])  # the edited candidate changed
    assert torch.equal(after.features[2:], before.features[2:])
    assert len(list((tmp_path / "cache").glob("*/*.safetensors"))) == 2


def test_renaming_keeps_the_identity_and_copying_does_not(big_raw, tmp_path):
    a = tmp_path / "a.avi"
    a.write_bytes(big_raw.read_bytes())
    ident = file_identity(a)
    b = tmp_path / "b.avi"
    a.rename(b)
    assert file_identity(b) == ident
    c = tmp_path / "c.avi"
    c.write_bytes(b.read_bytes())
    assert file_identity(c) != ident
    assert file_identity(c, hashing="full") == file_identity(b, hashing="full")  # content only


def test_full_hash_catches_an_edit_that_restores_the_mtime(big_raw, tmp_path):
    """The documented limit of the default: an in-place edit that puts the old mtime back keeps the sampled
    identity. ``hashing="full"`` reads every byte and sees it."""
    video = tmp_path / "edited.avi"
    video.write_bytes(big_raw.read_bytes())
    st = video.stat()
    sampled, full = file_identity(video), file_identity(video, hashing="full")
    edit_between_sampled_regions(video)
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_identity(video) == sampled
    assert file_identity(video, hashing="full") != full
    assert FeatureCache(tmp_path, hashing="full").identify(video) == file_identity(video, hashing="full")
    with pytest.raises(ValueError, match="hashing must be one of sampled, full"):
        FeatureCache(tmp_path, hashing="everything")


def test_sampler_full_hash_sees_a_disguised_edit(checkpoint_dir, uncached_sampler, big_raw, tmp_path, monkeypatch):
    """``feature_cache="full-hash"`` (or ``FeatureCache(dir, hashing="full")``) reads every byte, so even an
    in-place, same-size edit with the old mtime put back is a miss; copies of the same bytes share entries."""
    video = tmp_path / "edited.avi"
    video.write_bytes(big_raw.read_bytes())
    full = cached(checkpoint_dir, FeatureCache(tmp_path / "cache", hashing="full"))
    assert full.cache.hashing == "full"
    before = full.encode_video(video)
    st = video.stat()
    edit_between_sampled_regions(video)
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = full.encode_video(video)
    assert torch.equal(after.features, uncached_sampler.encode_video(video).features)
    assert not torch.equal(after.features[1], before.features[1])
    copy = tmp_path / "copy.avi"
    copy.write_bytes(video.read_bytes())
    full.encode_video(copy)
    assert len(list((tmp_path / "cache").glob("*/*.safetensors"))) == 2  # the copy was a hit
    # the string form uses the default directory
    monkeypatch.setenv("TSPO_SAMPLER_CACHE", str(tmp_path / "default"))
    by_name = TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache="full-hash")
    assert by_name.cache.hashing == "full" and by_name.cache.directory == tmp_path / "default"
