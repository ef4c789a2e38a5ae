"""Arguments that name themselves when wrong, and messages that say what is wrong (issue 20: device and
dtype, ``tspo index --out`` onto its own dataset, and the "Messages" items)."""

from __future__ import annotations

import pytest
import torch

from tspo_sampler import TemporalSampler
from tspo_sampler._device import accelerator_device
from tspo_sampler._errors import ArgumentTypeError, InvalidArgumentError, TSPOError

NO_CUDA = not torch.cuda.is_available()
NO_MPS = accelerator_device() is None or accelerator_device().type != "mps"


# ------------------------------------------------------------------ device and dtype
@pytest.mark.parametrize(
    "device, message",
    [
        ("meta", r"device='meta' holds no data"),
        ("foo", r"device='foo' is not a torch device"),
        pytest.param("cuda", r"device='cuda', but this machine has no usable cuda", marks=pytest.mark.skipif(
            not NO_CUDA, reason="a GPU is here")),
        pytest.param("mps", r"device='mps', but this machine has no usable mps", marks=pytest.mark.skipif(
            not NO_MPS, reason="MPS is here")),
    ],
)
def test_from_pretrained_names_a_device_it_cannot_use(checkpoint_dir, device, message) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        TemporalSampler.from_pretrained(checkpoint_dir, device=device, feature_cache=False)


def test_a_device_of_the_wrong_type_is_a_type_error(checkpoint_dir) -> None:
    with pytest.raises(ArgumentTypeError, match="device must be a string"):
        TemporalSampler.from_pretrained(checkpoint_dir, device=3.5, feature_cache=False)


@pytest.mark.parametrize(
    "dtype, error, message",
    [
        ("float8", InvalidArgumentError, r"dtype='float8' is not a compute dtype; use float32, bfloat16, float16"),
        ("fp32", InvalidArgumentError, r"dtype='fp32' is not a compute dtype"),
        (torch.int8, InvalidArgumentError, r"dtype=torch.int8 is not a compute dtype"),
        (torch.bool, InvalidArgumentError, r"dtype=torch.bool is not a compute dtype"),
        (32, ArgumentTypeError, r"dtype must be a torch dtype or its name"),
    ],
)
def test_from_pretrained_names_a_dtype_it_cannot_use(checkpoint_dir, dtype, error, message) -> None:
    with pytest.raises(error, match=message) as info:
        TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", dtype=dtype, feature_cache=False)
    assert isinstance(info.value, TSPOError)


def test_dtype_names_are_the_dtypes(checkpoint_dir) -> None:
    by_name = TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", dtype="float32", feature_cache=False)
    by_type = TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", dtype=torch.float32, feature_cache=False)
    assert by_name.encoder.fingerprint() == by_type.encoder.fingerprint()


def test_from_open_clip_uses_the_same_checks() -> None:
    pytest.importorskip("open_clip")
    with pytest.raises(InvalidArgumentError, match=r"dtype='float8'"):
        TemporalSampler.from_open_clip("ViT-B-32", device="cpu", dtype="float8", feature_cache=False)
    with pytest.raises(InvalidArgumentError, match=r"device='meta'"):
        TemporalSampler.from_open_clip("ViT-B-32", device="meta", feature_cache=False)
