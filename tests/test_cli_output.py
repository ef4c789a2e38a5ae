"""Issue 21: what the command line shows and writes: progress of the coarse-to-fine search, output paths checked
before the model loads and written last, the JSON keys, the messages, and the --dtype / --cache-key flags."""

from __future__ import annotations

import re

import pytest

import media

Q = "when does the bar reach the right edge?"


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    return media.make_video(tmp_path_factory.mktemp("cli-output") / "long.mp4", duration=100.0, fps=4.0,
                            size=(96, 64))


def test_coarse_to_fine_shows_rounds_and_share_encoded(uncached_sampler, long_video, capsys):
    sel = uncached_sampler.select_frames(long_video, Q, 4, search="coarse-to-fine", return_frames=False,
                                         progress=True)
    err = capsys.readouterr().err
    final = [part for part in re.split(r"[\r\n]", err) if "coarse-to-fine" in part][-1]
    n = len(sel.candidate_indices)
    assert f"{sel.encoded_frames}/{n} candidates encoded ({100 * sel.encoded_frames / n:.0f}%)" in final, err
    assert re.search(r"round ([2-9]|\d\d+) \(refining\)", final), final
    uncached_sampler.select_frames(long_video, Q, 4, search="coarse-to-fine", return_frames=False, progress=False)
    assert "coarse-to-fine" not in capsys.readouterr().err


# ------------------------------------------------------------------------- check first, write last


def _fails_cleanly(argv, capsys, command):
    from tspo_sampler.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tspo {command}: error: "), err
    return err[0]


def test_output_in_a_missing_directory_leaves_nothing_behind(tmp_path, capsys):
    """--save-grid, index --out and export --out in missing directories: the run fails (here on the model or
    the index) and neither the directories nor any file exist afterwards."""
    no_model = tmp_path / "not-a-checkpoint"
    no_model.mkdir()
    video = media.make_video(tmp_path / "v.mp4", duration=2.0)
    grid = tmp_path / "grids" / "deep" / "x.png"
    line = _fails_cleanly(["select", str(video), Q, "--save-grid", str(grid),
                           "--model", str(no_model)], capsys, "select")
    assert "config.json" in line
    dataset = tmp_path / "rows.jsonl"
    dataset.write_text('{"id": "a", "video": "v.mp4", "question": "what?"}\n')
    _fails_cleanly(["index", str(dataset), "--out", str(tmp_path / "index" / "deep" / "o.jsonl"),
                    "--model", str(no_model)], capsys, "index")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"row": 0, "id": "a", "status": "error", "error": "VideoReadError", "reason": "x"}\n')
    _fails_cleanly(["export", str(broken), "--out", str(tmp_path / "export" / "deep" / "o.json")], capsys, "export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jsonl", "not-a-checkpoint", "rows.jsonl", "v.mp4"]


def test_check_writable_creates_nothing_and_atomic_output_cleans_up(tmp_path):
    from tspo_sampler.io import atomic_output, check_writable

    target = tmp_path / "a" / "b" / "out.png"
    check_writable(target)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".png"
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and [p.name for p in target.parent.iterdir()] == ["out.png"]


# ------------------------------------------------------------------------- messages and output


def test_json_keys_rounding_and_distinct_scores(checkpoint_dir, capsys):
    import json

    from tspo_sampler.cli import main

    base = ["select", "--example", "When are there fireworks?", "-k", "6", "--method", "clip", "--no-cache",
            "--model", str(checkpoint_dir), "--device", "cpu"]
    assert main([*base, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "fps" not in out and out["source_fps"] == 10.0 and out["candidate_fps"] == 1.0
    assert out["duration"] == 45.0 and out["num_candidates"] == 45
    for t in [out["duration"], *out["timestamps"]]:
        assert round(t, 3) == t
    assert main(base) == 0
    table = capsys.readouterr().out.splitlines()
    header = table[1].split()
    assert header == ["rank", "frame", "time", "score"]
    printed = [line.split()[-1] for line in table[2:]]
    assert len(printed) == 6
    # scores that differ print differently (three decimals printed 0.011 for most of these)
    assert len(set(printed)) == len(set(out["scores"]))
    assert [float(s) for s in printed] == pytest.approx(out["scores"], rel=1e-3)


@pytest.mark.parametrize(("argv", "message"), [
    (["select", "--example"], "missing QUESTION: --example needs the question"),
    (["select", "--example", "  "], "QUESTION is blank"),
])
def test_missing_question_is_named(argv, message, capsys):
    line = _fails_cleanly([*argv, "--model", "not-loaded"], capsys, "select")
    assert message in line and "None" not in line


def test_contact_sheet_leaves_a_gap_and_labels_times(tmp_path):
    import numpy as np
    from PIL import Image

    from tspo_sampler import Selection
    from tspo_sampler.visualize import contact_sheet

    frames = np.zeros((2, 48, 64, 3), dtype=np.uint8)  # black frames: a white gap shows between them
    sel = Selection(indices=[3, 40], timestamps=[0.3, 4.0], frames=frames, scores=np.array([0.1, 0.2]),
                    candidate_indices=[3, 40], candidate_timestamps=[0.3, 4.0], method="topk", positions=[0, 1])
    path = tmp_path / "sheet.png"
    sheet = contact_sheet(sel, path, columns=2, thumb_width=64, with_scores=False, gap=12)
    assert Image.open(path).size == sheet.size == (2 * 64 + 3 * 12, 12 + 22 + 48 + 12)
    px = np.asarray(sheet)
    mid_row = 12 + 22 + 24
    assert (px[mid_row, 12 + 5] == 0).all() and (px[mid_row, 12 + 64 + 12 + 5] == 0).all()  # the two frames
    assert (px[mid_row, 12 + 64 + 2: 12 + 64 + 10] == 255).all()  # white between them
    label_band = px[12: 12 + 20, 12: 12 + 64]
    assert (label_band < 128).any()  # a label above each frame
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]


# ------------------------------------------------------------------------- --dtype and --cache-key


def test_dtype_flag_sets_the_encoder_dtype(checkpoint_dir):
    import warnings

    import torch

    from tspo_sampler.cli import build_parser
    from tspo_sampler.cli._common import load_sampler

    parser = build_parser()
    for command in (["select", "v.mp4", "q"], ["index", "rows.jsonl", "--out", "o.jsonl"], ["demo"]):
        args = parser.parse_args([*command, "--dtype", "bfloat16", "--cache-key", "full-hash"])
        assert (args.dtype, args.cache_key) == ("bfloat16", "full-hash"), command
    base = ["select", "v.mp4", "q", "--model", str(checkpoint_dir), "--device", "cpu", "--no-cache"]
    assert load_sampler(parser.parse_args(base)).encoder.dtype == torch.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the slow-bfloat16 warning on CPUs without bfloat16 units
        bf16 = load_sampler(parser.parse_args([*base, "--dtype", "bfloat16"]))
    assert bf16.encoder.dtype == torch.bfloat16
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--dtype", "int8"])


def _overwrite(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


@pytest.mark.parametrize(("key", "entries_after_edit"), [("sampled", 1), ("full-hash", 2)])
def test_cache_key_decides_whether_a_disguised_edit_is_a_hit(checkpoint_dir, tmp_path, capsys, key,
                                                             entries_after_edit):
    """A same-size, in-place edit between the sampled regions that puts the old mtime back: a hit with
    --cache-key sampled (the documented limit), a miss (a second entry) with --cache-key full-hash."""
    import os

    from tspo_sampler.cli import main

    video = media.make_video(tmp_path / "raw.avi", duration=6.0, fps=10.0, size=(320, 240), codec="rawvideo")
    size = video.stat().st_size
    assert size > 5 * (1 << 20)  # more than the five sampled 1 MiB regions
    cache = tmp_path / "cache"
    argv = ["select", str(video), Q, "-k", "2", "--json", "--model", str(checkpoint_dir), "--device", "cpu",
            "--cache-dir", str(cache), "--cache-key", key]
    assert main(argv) == 0
    assert len(list(cache.glob("*/*.safetensors"))) == 1
    st = video.stat()
    offset = (1 << 20) + 64 * 1024  # after the first sampled region, before the second ((size - 1 MiB) / 4)
    assert offset + 4096 < (size - (1 << 20)) // 4
    _overwrite(video, offset, b"\x80" * 4096)
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert video.stat().st_size == size
    assert main(argv) == 0
    capsys.readouterr()
    assert len(list(cache.glob("*/*.safetensors"))) == entries_after_edit
