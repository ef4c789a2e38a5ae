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


@pytest.mark.parametrize("bad, error", [(b"dir", ArgumentTypeError), (3, ArgumentTypeError), ("", InvalidArgumentError)])
def test_bad_cache_dir_is_named(uncached_sampler, bad, error) -> None:
    with pytest.raises(error, match="feature_cache_dir"):
        make(uncached_sampler, feature_cache_dir=bad)


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
