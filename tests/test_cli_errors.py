"""Every `tspo` command turns an expected failure into one line and exit status 2 (a traceback only with
--debug), and refuses what it can before the model loads: an unwritable output, a device this machine lacks,
a missing video, bad numbers, an index resumed with other settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tspo_sampler.cli import COMMANDS, build_parser, main

NO_MODEL = "/nonexistent/tspo-model"  # any attempt to load it would fail with a model error instead


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tspo {command}: error: "), err
    return err[0]


@pytest.fixture
def dataset(tmp_path) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "a", "video": "a.mp4", "question": "what?"}) + "\n")
    return path


def test_every_command_has_debug():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for command in COMMANDS:
        assert "--debug" in sub.choices[command.NAME]._option_string_actions, command.NAME


def test_index_checks_the_output_before_loading_anything(dataset, tmp_path, capsys):
    """Issue 11 item 6: an output under a regular file used to crash with a traceback after the model loaded."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = blocker / "frames.jsonl"
    assert main(["index", str(dataset), "--out", str(out), "--model", NO_MODEL]) == 2
    line = one_error_line(capsys, "index")
    assert line == f"tspo index: error: cannot write {out}: {blocker} is not a directory"
    assert main(["index", str(dataset), "--out", str(tmp_path), "--model", NO_MODEL]) == 2
    assert one_error_line(capsys, "index") == f"tspo index: error: cannot write {tmp_path}: it is a directory"


def test_index_refuses_a_read_only_directory(dataset, tmp_path, capsys):
    """We run as root, which ignores permission bits; an immutable directory (chattr +i) still refuses."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here")
    try:
        if os.access(ro, os.W_OK) and os.geteuid() != 0:
            pytest.skip("directory still writable")
        assert main(["index", str(dataset), "--out", str(ro / "frames.jsonl"), "--model", NO_MODEL]) == 2
        line = one_error_line(capsys, "index")
        assert line.startswith(f"tspo index: error: cannot write {ro / 'frames.jsonl'}: cannot create files in {ro}")
    finally:
        subprocess.run(["chattr", "-i", str(ro)])


def test_debug_shows_the_traceback(dataset, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot write"):
        main(["index", str(dataset), "--out", str(blocker / "o.jsonl"), "--model", NO_MODEL, "--debug"])


@pytest.mark.parametrize("device, expected", [
    ("foo", "--device 'foo' is not a torch device"),
    ("cuda", "--device cuda: this machine has no cuda device"),
])  # fmt: skip
def test_select_refuses_a_device_before_loading(device, expected, tmp_path, capsys):
    """Issue 14 item 5: `--device cuda` on a CPU machine and `--device foo` printed tracebacks."""
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not really a video")
    assert main(["select", str(video), "what?", "--device", device, "--model", NO_MODEL]) == 2
    assert expected in one_error_line(capsys, "select")


@pytest.mark.parametrize("args, expected", [
    (["{missing}", "what?"], "does not exist"),
    (["{video}", "what?", "-k", "0"], "k must be a positive integer"),
    (["{video}", "   "], "QUESTION is blank"),
    (["{video}", "what?", "--fps", "inf"], "--fps must be a finite number"),
    (["{video}", "what?", "--max-candidates", "0"], "--max-candidates must be a positive integer"),
    (["{video}", "what?", "--window-size", "0"], "--window-size must be a positive integer or None, got 0"),
    (["{video}", "what?", "--save-grid", "{blocked}"], "cannot write"),
])  # fmt: skip
def test_select_checks_its_arguments_before_loading(args, expected, tmp_path, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not really a video")
    (tmp_path / "a-file").write_text("x")
    paths = {"video": str(video), "missing": str(tmp_path / "missing.mp4"),
             "blocked": str(tmp_path / "a-file" / "grid.png")}
    argv = ["select", *(a.format(**paths) for a in args), "--model", NO_MODEL]
    assert main(argv) == 2
    line = one_error_line(capsys, "select")
    assert expected in line and NO_MODEL not in line


def test_index_refuses_a_resume_with_other_settings_before_loading(tmp_path, capsys):
    """Issue 11 item 8, from the command line: the refusal names every differing setting."""
    from test_indexing import FakeSampler, sample_rows, write_jsonl
    from tspo_sampler.indexing import index_dataset, read_dataset

    dataset = write_jsonl(tmp_path / "d.jsonl", sample_rows(n_videos=2, per_video=2, bad=()))
    out = tmp_path / "frames.jsonl"
    index_dataset(FakeSampler(), read_dataset(dataset), out, k=8, method="bin-max", model=NO_MODEL, progress=False)
    before = out.read_bytes()
    assert main(["index", str(dataset), "--out", str(out), "-k", "4", "--method", "uniform", "--model", NO_MODEL]) == 2
    line = one_error_line(capsys, "index")
    assert "other settings (k 8 -> 4; method 'bin-max' -> 'uniform')" in line and "--overwrite" in line
    assert out.read_bytes() == before


def test_export_and_train_grpo_failures_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "x.json")]) == 2
    assert "does not exist" in one_error_line(capsys, "export")
    assert main(["train-grpo", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "config file not found" in one_error_line(capsys, "train-grpo")
    assert main(["train-grpo", "--num-generations", "1", "--data", "x.jsonl"]) == 2
    assert "--num-generations must be >= 2" in one_error_line(capsys, "train-grpo")


def test_a_fresh_process_prints_one_line_and_exits_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    dataset = tmp_path / "d.jsonl"
    dataset.write_text(json.dumps({"video": "a.mp4", "question": "q"}) + "\n")
    for module, argv in [
        ("tspo_sampler.cli", ["index", str(dataset), "--out", str(blocker / "o.jsonl"), "--model", NO_MODEL]),
        ("tspo_sampler.train_grpo", ["--config", str(tmp_path / "none.yaml")]),
    ]:
        res = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=300)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
