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
