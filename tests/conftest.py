"""Shared fixtures: the reference checkpoint (tiny CLIP + agent in the released format) and samplers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

TESTS = Path(__file__).parent
REFERENCE = TESTS / "data" / "tspo_reference"
sys.path.insert(0, str(TESTS))  # tests import helpers such as `media` directly

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return REFERENCE


@pytest.fixture(scope="session")
def checkpoint_dir() -> Path:
    return REFERENCE / "checkpoint"


@pytest.fixture(scope="session")
def expected() -> list[dict]:
    return json.loads((REFERENCE / "expected.json").read_text())


def load_case(n: int) -> dict[str, np.ndarray]:
    with np.load(REFERENCE / f"case{n}.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def cases(expected) -> list[tuple[dict, dict[str, np.ndarray]]]:
    return [(c, load_case(c["case"])) for c in expected]


@pytest.fixture(scope="session")
def sampler(checkpoint_dir, tmp_path_factory):
    """A sampler on the tiny reference checkpoint with its own feature cache directory."""
    from tspo_sampler import TemporalSampler

    return TemporalSampler.from_pretrained(
        checkpoint_dir, device="cpu", feature_cache_dir=tmp_path_factory.mktemp("feature-cache")
    )


@pytest.fixture(scope="session")
def uncached_sampler(checkpoint_dir):
    from tspo_sampler import TemporalSampler

    return TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache=False)
