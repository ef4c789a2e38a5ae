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
