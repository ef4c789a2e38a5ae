"""The example scripts run end to end: a generated video, the tiny reference sampler, tiny saved MLLMs."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

import media
import tiny_mllms

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return media.make_video(tmp_path_factory.mktemp("ex") / "clip.mp4", duration=6.0, fps=10.0)


@pytest.mark.parametrize(
    "name,builder,extra",
    [
        ("qwen2_5_vl", tiny_mllms.build_qwen2_5_vl, ["--timestamps", "prompt"]),
        ("llava_video", tiny_mllms.build_llava_onevision, ["--time-instruction"]),
        ("internvl", tiny_mllms.build_internvl, []),
        ("qwen3_vl", tiny_mllms.build_qwen3_vl, ["--own-patches"]),
        ("smolvlm2", tiny_mllms.build_smolvlm2, []),
    ],
)
def test_mllm_example_runs(name, builder, extra, video, checkpoint_dir, tmp_path, capsys, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("TSPO_SAMPLER_CACHE", str(tmp_path / "cache"))
    model, processor = builder()
    model.save_pretrained(tmp_path / "mllm")
    processor.save_pretrained(tmp_path / "mllm")
    example = load_example(name)
    example.main(["--video", str(video), "--question", "What colour is the band?", "--k", "4",
                  "--mllm", str(tmp_path / "mllm"), "--sampler", str(checkpoint_dir), "--device", "cpu",
                  "--max-new-tokens", "3", *extra])
    out = capsys.readouterr().out
    assert "4 frames of 6.0 s chosen at:" in out
    assert "Answer:" in out
    chosen = [float(t) for t in re.findall(r"([\d.]+)s", out.split("chosen at:")[1].splitlines()[1])]
    if name == "qwen3_vl":  # --own-patches: one marker per frame, each the frame's own time
        shown = [float(t) for t in re.findall(r"<([\d.]+) seconds>", out)]
        assert shown == pytest.approx(chosen, abs=0.051)
    if name == "smolvlm2":
        shown = [int(m) * 60 + int(s) for m, s in re.findall(r"Frame from (\d\d):(\d\d)", out)]
        assert shown == [int(t) for t in chosen]


def test_select_frames_example(video, checkpoint_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TSPO_SAMPLER_CACHE", str(tmp_path / "cache"))
    example = load_example("select_frames")
    monkeypatch.setattr(sys, "argv", ["select_frames.py", "--video", str(video), "--question", "What colour?",
                                      "-k", "3", "--model", str(checkpoint_dir), "--grid", str(tmp_path / "g.png")])
    example.main()
    out = capsys.readouterr().out
    assert "3 of 6 candidates" in out and (tmp_path / "g.png").is_file()
