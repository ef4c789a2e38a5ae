"""Arguments that name themselves when wrong, and messages that say what is wrong (issue 20: device and
dtype, ``tspo index --out`` onto its own dataset, and the "Messages" items)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from tspo_sampler import TemporalSampler
from tspo_sampler._device import accelerator_device
from tspo_sampler._errors import ArgumentTypeError, InvalidArgumentError, TSPOError
from tspo_sampler.cli import main

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


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, "float8"])
def test_save_pretrained_refuses_a_dtype_that_would_save_zeros(uncached_sampler, tmp_path, dtype) -> None:
    with pytest.raises(InvalidArgumentError, match="is not a compute dtype"):
        uncached_sampler.save_pretrained(tmp_path / "out", dtype=dtype)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_from_open_clip_uses_the_same_checks() -> None:
    pytest.importorskip("open_clip")
    with pytest.raises(InvalidArgumentError, match=r"dtype='float8'"):
        TemporalSampler.from_open_clip("ViT-B-32", device="cpu", dtype="float8", feature_cache=False)
    with pytest.raises(InvalidArgumentError, match=r"device='meta'"):
        TemporalSampler.from_open_clip("ViT-B-32", device="meta", feature_cache=False)


# ------------------------------------------------------------------ tspo index: OUT is the dataset
NO_MODEL = "/nonexistent/tspo-model"  # loading it would fail with a model error instead of the one checked


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tspo {command}: error: "), err
    return err[0]


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "ds.jsonl"
    path.write_text(json.dumps({"id": "a", "video": "a.mp4", "question": "what?"}) + "\n")
    return path


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink", "dotted"])
@pytest.mark.parametrize("overwrite", [True, False])
def test_index_refuses_to_write_over_its_dataset(dataset, tmp_path, capsys, link, overwrite) -> None:
    before = dataset.read_bytes()
    out = {"same": dataset, "symlink": tmp_path / "link.jsonl", "hardlink": tmp_path / "hard.jsonl",
           "dotted": tmp_path / "sub" / ".." / "ds.jsonl"}[link]
    if link == "symlink":
        out.symlink_to(dataset)
    elif link == "hardlink":
        os.link(dataset, out)
    elif link == "dotted":
        (tmp_path / "sub").mkdir()
    argv = ["index", str(dataset), "--out", str(out), "--model", NO_MODEL] + (["--overwrite"] if overwrite else [])
    assert main(argv) == 2
    line = one_error_line(capsys, "index")
    assert f"--out {str(out)!r} is the dataset {str(dataset)!r}" in line and "would destroy it" in line
    assert ("a link to the same file" in line) == (link in ("symlink", "hardlink"))
    assert dataset.read_bytes() == before


def test_index_dataset_that_is_a_directory_says_so(tmp_path, capsys) -> None:
    assert main(["index", str(tmp_path), "--out", str(tmp_path / "o.jsonl"), "--model", NO_MODEL]) == 2
    line = one_error_line(capsys, "index")
    assert f"dataset {str(tmp_path)!r} is a directory" in line and "does not exist" not in line


# ------------------------------------------------------------------ messages
@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    import media

    return media.make_video(tmp_path_factory.mktemp("videos") / "clip.mp4", duration=2.0, fps=5.0)


@pytest.mark.parametrize("grid, what", [("x", "no file extension"), ("sheet.xyz", "unknown image extension '.xyz'")])
def test_save_grid_names_the_extensions_that_work(clip, tmp_path, capsys, grid, what) -> None:
    out = tmp_path / grid
    assert main(["select", str(clip), "what?", "--save-grid", str(out), "--model", NO_MODEL]) == 2
    line = one_error_line(capsys, "select")
    assert f"--save-grid {str(out)!r}: {what}; use .png, .jpg" in line
    assert not out.exists()


def test_export_names_out_not_its_temporary_file(tmp_path, capsys) -> None:
    index = tmp_path / "idx.jsonl"
    index.write_text(json.dumps({"row": 0, "id": "a", "status": "ok", "indices": [1, 4], "input": {"id": "a"}}) + "\n")
    assert main(["export", str(index), "--out", "/proc/x.json"]) == 2
    line = one_error_line(capsys, "export")
    assert line.startswith("tspo export: error: cannot write /proc/x.json: ") and ".tmp-" not in line
    assert main(["export", str(index), "--out", str(tmp_path / "ok.json")]) == 0  # the same index exports fine
    capsys.readouterr()


def test_export_index_that_is_a_directory_says_so(tmp_path, capsys) -> None:
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    assert "is a directory" in one_error_line(capsys, "export")


@pytest.mark.parametrize(
    "conversations, message",
    [
        (["hello"], r"conversations\[0\] must be a message dict or a list of them, got str 'hello'"),
        ("hello", r"conversations must be a list of messages"),
        ([["hi"]], r"conversations\[0\]\[0\] must be a message dict"),
    ],
)
def test_process_vision_info_names_what_is_not_a_message(conversations, message) -> None:
    from tspo_sampler.integrations.qwen_vl_utils import process_vision_info

    with pytest.raises(TypeError, match=message):
        process_vision_info(conversations, sampler=None)


@pytest.mark.parametrize("nframes", ["abc", 2.5, True, float("inf")])
def test_nframes_that_is_not_a_whole_number_is_named(clip, nframes) -> None:
    from tspo_sampler.integrations.qwen_vl_utils import process_vision_info

    messages = [{"role": "user", "content": [{"type": "video", "video": str(clip), "nframes": nframes},
                                             {"type": "text", "text": "what?"}]}]
    with pytest.raises(ValueError, match=r"nframes must be a whole number of frames, got"):
        process_vision_info(messages, sampler=None)
