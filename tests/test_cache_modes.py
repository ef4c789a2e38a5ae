"""The feature cache's arguments and faults (issue 20, "Arguments and cache"): modes and directories are
separate arguments, an entry copied under another video's key is never served, and a cache that cannot be
written costs a warning, never the result."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import media
from tspo_sampler import TemporalSampler
from tspo_sampler._errors import ArgumentTypeError, InvalidArgumentError, TSPOError
from tspo_sampler.features._cache import FeatureCache

Q = "when does the bar reach the right edge?"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("videos")
    a = media.make_video(root / "a.mp4", duration=6.0, fps=5.0)
    b = media.make_video(root / "b.mp4", duration=9.0, fps=5.0)
    return a, b


def make(uncached_sampler, **kwargs) -> TemporalSampler:
    return TemporalSampler(uncached_sampler.encoder, uncached_sampler.agent, **kwargs)


def entries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*/*.safetensors") if not p.name.startswith(".tmp-"))


# ------------------------------------------------------------------ modes vs directories
@pytest.mark.parametrize("mode, hashing", [(True, "sampled"), ("sampled", "sampled"), ("full-hash", "full")])
def test_modes_use_the_directory_given_separately(uncached_sampler, tmp_path, mode, hashing) -> None:
    sampler = make(uncached_sampler, feature_cache=mode, feature_cache_dir=tmp_path / "c")
    assert sampler.cache is not None
    assert sampler.cache.directory == tmp_path / "c" and sampler.cache.hashing == hashing


@pytest.mark.parametrize("mode", ["sampled", "full-hash"])
def test_a_mode_never_becomes_a_directory(uncached_sampler, tmp_path, monkeypatch, clips, mode) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TSPO_SAMPLER_CACHE", str(tmp_path / "default"))
    sampler = make(uncached_sampler, feature_cache=mode)
    sampler.encode_video(clips[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default"]
    assert len(entries(tmp_path / "default")) == 1


@pytest.mark.parametrize("bad", ["full_hash", "FULL-HASH", "", "some/dir", "true"])
def test_unknown_mode_strings_are_refused(uncached_sampler, tmp_path, monkeypatch, bad) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgumentError, match=r"feature_cache must be True, False, 'sampled', 'full-hash'"):
        make(uncached_sampler, feature_cache=bad)
    assert list(tmp_path.iterdir()) == []  # no directory named after the typo


@pytest.mark.parametrize("bad", [1, 0.5, b"dir", ["sampled"], np.True_])
def test_wrong_types_are_type_errors(uncached_sampler, bad) -> None:
    with pytest.raises(ArgumentTypeError, match="feature_cache must be"):
        make(uncached_sampler, feature_cache=bad)


@pytest.mark.parametrize(
    "bad, error", [(b"dir", ArgumentTypeError), (3, ArgumentTypeError), ("", InvalidArgumentError)]
)
def test_bad_cache_dir_is_named(uncached_sampler, bad, error) -> None:
    with pytest.raises(error, match="feature_cache_dir"):
        make(uncached_sampler, feature_cache_dir=bad)


def test_an_empty_feature_cache_directory_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgumentError, match="must not be empty"):
        FeatureCache("")
    assert list(tmp_path.iterdir()) == []


def test_contradictions_are_refused(uncached_sampler, tmp_path) -> None:
    with pytest.raises(InvalidArgumentError, match="turns the cache off"):
        make(uncached_sampler, feature_cache=False, feature_cache_dir=tmp_path)
    with pytest.raises(InvalidArgumentError, match="not both"):
        make(uncached_sampler, feature_cache=FeatureCache(tmp_path), feature_cache_dir=tmp_path)
    assert issubclass(InvalidArgumentError, TSPOError) and issubclass(InvalidArgumentError, ValueError)


def test_a_path_object_still_works_with_a_deprecation_warning(uncached_sampler, tmp_path) -> None:
    with pytest.warns(DeprecationWarning, match="feature_cache_dir"):
        sampler = make(uncached_sampler, feature_cache=tmp_path / "old")
    assert sampler.cache is not None and sampler.cache.directory == tmp_path / "old"


def test_from_pretrained_keeps_cache_dir_for_the_hub(checkpoint_dir, tmp_path) -> None:
    sampler = TemporalSampler.from_pretrained(
        checkpoint_dir, device="cpu", cache_dir=tmp_path / "hf", feature_cache="full-hash",
        feature_cache_dir=tmp_path / "features",
    )
    assert sampler.cache is not None and sampler.cache.directory == tmp_path / "features"
    assert not (tmp_path / "hf").exists()  # a local checkpoint never touches the Hub cache


# ------------------------------------------------------------------ an entry records what it was made for
def test_an_entry_copied_under_another_videos_key_is_not_served(uncached_sampler, tmp_path, clips) -> None:
    a, b = clips
    sampler = make(uncached_sampler, feature_cache_dir=tmp_path / "c")
    sampler.encode_video(a)
    (entry_a,) = entries(tmp_path / "c")
    sampler.encode_video(b)
    (entry_b,) = (p for p in entries(tmp_path / "c") if p != entry_a)
    entry_a.write_bytes(entry_b.read_bytes())  # a sound entry (its checksum holds), of the wrong video
    truth = uncached_sampler.select_frames(a, Q, k=3, return_frames=False)
    with pytest.warns(RuntimeWarning, match=r"misplaced feature cache entry .*made for .*b\.mp4"):
        again = sampler.select_frames(a, Q, k=3, return_frames=False)
    assert again.indices == truth.indices and again.candidate_timestamps == truth.candidate_timestamps
    assert len(again.candidate_timestamps) == 6  # a's 6 s at 1 candidate per second, not b's 9 s
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recomputed entry is a's own: a quiet hit
        assert sampler.select_frames(a, Q, k=3, return_frames=False).indices == truth.indices


# ------------------------------------------------------------------ a cache that cannot be written
def test_over_long_cache_dir_warns_enametoolong_and_returns(uncached_sampler, tmp_path, clips) -> None:
    directory = tmp_path / ("x" * 300)
    sampler = make(uncached_sampler, feature_cache_dir=directory)
    truth = uncached_sampler.select_frames(clips[0], Q, k=3, return_frames=False)
    with pytest.warns(RuntimeWarning, match=r"could not write to the feature cache .*xxx.* \(ENAMETOOLONG"):
        sel = sampler.select_frames(clips[0], Q, k=3, return_frames=False)
    assert sel.indices == truth.indices


def test_cache_dir_under_a_file_warns_enotdir_and_returns(uncached_sampler, tmp_path, clips) -> None:
    (tmp_path / "file").write_text("not a directory")
    sampler = make(uncached_sampler, feature_cache_dir=tmp_path / "file" / "cache")
    with pytest.warns(RuntimeWarning, match=r"feature cache .*file/cache \(ENOTDIR"):
        sel = sampler.select_frames(clips[0], Q, k=3, return_frames=False)
    assert len(sel.indices) == 3


def test_read_only_cache_dir_warns_and_returns(uncached_sampler, tmp_path, clips) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i (an immutable, hence read-only, directory even for root) is not available here")
    try:
        if os.access(directory, os.W_OK) and os.geteuid() != 0:
            pytest.skip("the directory is still writable")
        sampler = make(uncached_sampler, feature_cache_dir=directory)
        with pytest.warns(RuntimeWarning, match=r"feature cache .*/ro \((EPERM|EACCES|EROFS)"):
            sel = sampler.select_frames(clips[0], Q, k=3, return_frames=False)
        assert len(sel.indices) == 3 and list(directory.iterdir()) == []
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_enospc_during_the_write_warns_and_returns(uncached_sampler, tmp_path, clips, monkeypatch) -> None:
    """No tiny file system here: the entry's own write fails with ENOSPC (the one fault simulated)."""
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FullDisk(real_fdopen(fd, *a, **k)))
    sampler = make(uncached_sampler, feature_cache_dir=tmp_path / "c")
    with pytest.warns(RuntimeWarning, match=r"feature cache .*/c \(ENOSPC: No space left on device\)"):
        sel = sampler.select_frames(clips[0], Q, k=3, return_frames=False)
    assert len(sel.indices) == 3
    assert [p.name for p in (tmp_path / "c").glob("*/*")] == []  # no half-written entry or temporary file left


_EFBIG = """
import resource, sys, warnings
import numpy as np, torch
from tspo_sampler.features._cache import FeatureCache, VideoFeatures
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # Python ignores SIGXFSZ: writes fail with EFBIG
feats = VideoFeatures(torch.ones(64, 512), np.arange(64), np.arange(64) / 2.0, 32.0, 2.0, "v.mp4", {})
with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    print(FeatureCache(sys.argv[1]).put("ab" * 20, feats))
print("|".join(str(w.message) for w in record))
"""


def test_file_size_limit_efbig_warns_and_returns(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-c", _EFBIG, str(tmp_path / "c")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    result, message = out.stdout.splitlines()
    assert result == "None"
    assert "could not write to the feature cache" in message and "(EFBIG: File too large)" in message
    assert str(tmp_path / "c") in message
    assert [p.name for p in (tmp_path / "c").glob("*/*")] == []
