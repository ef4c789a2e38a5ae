"""SelectionSettings: one check of the selection options, one message per mistake wherever it is made."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from tspo_sampler import SelectionSettings
from tspo_sampler._errors import ArgumentTypeError, InvalidArgumentError
from tspo_sampler.indexing import IndexSettings

FRAMES = np.zeros((6, 16, 16, 3), dtype=np.uint8)

# (field, bad value, error class, message)
MISTAKES = [
    ("k", 0, InvalidArgumentError, "k must be a positive integer, got 0"),
    ("k", 2.5, ArgumentTypeError, "k must be a positive integer, got float 2.5"),
    ("k", True, ArgumentTypeError, "k must be a positive integer, got bool True"),
    ("window_size", 2.5, ArgumentTypeError, "window_size must be a positive integer or None, got float 2.5"),
    ("window_size", 0, InvalidArgumentError, "window_size must be a positive integer or None, got 0"),
    ("max_candidates", -1, InvalidArgumentError, "max_candidates must be a positive integer or None, got -1"),
    ("fps", float("inf"), InvalidArgumentError, "fps must be a finite number, got inf"),
    ("fps", 0, InvalidArgumentError, "fps must be a positive number, got 0"),
    ("fps", "1", ArgumentTypeError, "fps must be a positive number, got str '1'"),
    ("candidate_mode", "foo", InvalidArgumentError, "candidate_mode must be one of fps, keyframes, got 'foo'"),
    ("method", "best", InvalidArgumentError, "unknown method 'best'; valid methods: topk, bin-max"),
    ("search", "fast", InvalidArgumentError, "search must be one of exhaustive, coarse-to-fine, got 'fast'"),
    ("decoder", "ffmpeg", InvalidArgumentError, "decoder must be one of auto, pyav, decord, torchcodec, got 'ffmpeg'"),
]


@pytest.mark.parametrize(("field", "value", "error", "message"), MISTAKES)
def test_each_mistake_has_one_error_class_and_message(field, value, error, message):
    with pytest.raises(error) as info:
        SelectionSettings(**{field: value})
    assert str(info.value).startswith(message)
    assert isinstance(info.value, TypeError if error is ArgumentTypeError else ValueError)


def test_numpy_integers_are_ints_and_the_settings_are_frozen():
    s = SelectionSettings(k=np.int64(4), window_size=np.int32(6), max_candidates=np.int64(50), fps=np.float32(2))
    assert (s.k, s.window_size, s.max_candidates, s.fps) == (4, 6, 50, 2.0)
    assert type(s.k) is int and type(s.window_size) is int and type(s.fps) is float
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.k = 3  # type: ignore[misc]


def test_search_needs_topk_and_its_options_go_through_the_search_check():
    with pytest.raises(InvalidArgumentError, match=r"search='coarse-to-fine' works with method='topk' only, got "
                                                   r"method='bolt'"):
        SelectionSettings(method="bolt", search="coarse-to-fine")
    assert SelectionSettings(search="coarse-to-fine", coarse_step=np.int64(4)).search_options() == {"coarse_step": 4}
    with pytest.raises(ValueError, match="max_encoded"):
        SelectionSettings(max_encoded=1.5)
    with pytest.raises(TypeError, match="coarse_step must be a positive integer, got float 2.5"):
        SelectionSettings(coarse_step=2.5)
    with pytest.raises(TypeError, match="max_encoded must be a fraction of the candidates in \\(0, 1\\], got str"):
        SelectionSettings(max_encoded="0.2")


@pytest.mark.parametrize(("field", "value", "error", "message"), [m for m in MISTAKES if m[0] != "decoder"])
def test_select_frames_and_the_index_settings_give_the_same_message(uncached_sampler, field, value, error, message):
    with pytest.raises(error) as from_sampler:
        uncached_sampler.select_frames(FRAMES, "what happens?", **({"k": 2} | {field: value}))
    index_field = "candidates" if field == "candidate_mode" else field  # the recorded name
    with pytest.raises(error) as from_index:
        IndexSettings(**{index_field: value})
    assert str(from_sampler.value) == str(from_index.value)
    assert str(from_sampler.value).startswith(message)


@pytest.mark.parametrize(("flags", "field", "value"), [
    (["-k", "0"], "k", 0),
    (["--window-size", "0"], "window_size", 0),
    (["--max-candidates", "-1"], "max_candidates", -1),
    (["--fps", "inf"], "fps", float("inf")),
    (["--decoder", "ffmpeg"], "decoder", "ffmpeg"),
])  # fmt: skip
def test_the_cli_names_the_flag_in_the_same_message(tmp_path, capsys, flags, field, value):
    from tspo_sampler.cli import main

    video = tmp_path / "v.mp4"
    video.write_bytes(b"never read: the options are refused first")
    assert main(["select", str(video), "what?", "--model", str(tmp_path / "no-model"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    with pytest.raises(ValueError) as info:
        SelectionSettings(**{field: value})
    assert err == f"tspo select: error: {flags[0]}{str(info.value)[len(field):]}"


def _accepts(method, protocol_method) -> list[str]:
    """The protocol's parameters ``method`` does not take by the same name and kind."""
    import inspect

    have = inspect.signature(method).parameters
    missing = []
    for name, p in inspect.signature(protocol_method).parameters.items():
        if name == "self":
            continue
        if name not in have or (have[name].kind != p.kind and have[name].kind is not p.POSITIONAL_OR_KEYWORD):
            missing.append(name)
    return missing


def test_the_sampler_the_test_double_and_the_simulation_implement_one_protocol():
    from test_indexing import FakeSampler
    from tspo_sampler import SamplerLike, TemporalSampler
    from tspo_sampler.training._simulation import SyntheticVideos

    names = [n for n in vars(SamplerLike) if not n.startswith("_")]
    assert sorted(names) == ["encode_text", "encode_video", "select_frames", "select_from_features"]
    for cls in (TemporalSampler, FakeSampler, SyntheticVideos):
        for name in names:
            assert _accepts(getattr(cls, name), getattr(SamplerLike, name)) == [], (cls.__name__, name)


def test_the_simulation_selects_through_the_protocol():
    from tspo_sampler.training._simulation import SyntheticVideos

    env = SyntheticVideos(num_videos=2, num_frames=40, dim=32)
    video, question = env.examples[0].video, env.examples[0].question
    picked = env.select_frames(video, question, np.int64(5), decoder="pyav")
    again = env.select_from_features(env.encode_video(video), env.encode_text([question])[0], 5)
    assert picked.indices == again.indices and len(picked.indices) == 5 and picked.frames.shape[0] == 5


# ---- issue 20's argument holes


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    import media

    return media.make_video(tmp_path_factory.mktemp("settings") / "clip.mp4", duration=2.0, fps=10.0)


def test_an_unknown_candidate_mode_is_refused_for_frames_too(uncached_sampler):
    with pytest.raises(ValueError, match="candidate_mode must be one of fps, keyframes, got 'foo'"):
        uncached_sampler.select_frames(FRAMES, "what happens?", 2, candidate_mode="foo")


@pytest.mark.parametrize("indices", [[1.5], [0, np.float64(2.0)], [True], "12"])
def test_get_frames_refuses_indices_that_are_not_integers(uncached_sampler, clip, indices):
    for video in (FRAMES, clip):
        with pytest.raises(TypeError, match="indices must be a sequence of integers"):
            uncached_sampler.get_frames(video, indices)
    assert uncached_sampler.get_frames(FRAMES, [np.int64(1), 3]).shape == (2, 16, 16, 3)


def test_an_fps_above_the_frame_rate_takes_every_frame_once_with_a_warning(clip):
    from tspo_sampler.video import open_video

    with open_video(clip) as decoder:
        with pytest.warns(UserWarning, match=r"fps=1e\+09 asks for more candidates than the video has frames \(20\)"):
            indices, _ = decoder.candidates(fps=1e9)  # 2e9 instants would need 15 GiB
        assert indices.tolist() == list(range(20))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the same frames at a rate just above the video's, without a warning
            assert decoder.candidates(fps=15.0)[0].tolist() == list(range(20))


def test_in_memory_fps_is_the_sampling_rate(uncached_sampler):
    selection = uncached_sampler.select_frames(FRAMES, "what happens?", 2, fps=1e9, window_size=np.int64(4))
    assert len(selection.candidate_indices) == 6 and selection.duration == pytest.approx(6e-9)


def test_a_question_with_a_lone_surrogate_is_refused_naming_it(uncached_sampler):
    with pytest.raises(ValueError, match=r"question is not valid text: it holds the lone surrogate '\\ud800' at "
                                         r"position 1"):
        uncached_sampler.select_frames(FRAMES, "a\ud800b", 2)


# ---- index_dataset as its steps, its options as two objects


def test_index_dataset_takes_the_objects_or_their_fields_and_its_steps_are_public(tmp_path):
    import json

    from test_indexing import FakeSampler, sample_rows, write_jsonl
    from tspo_sampler.indexing import (
        RunOptions,
        index_dataset,
        load_done,
        merge,
        plan_rows,
        process_video,
        read_dataset,
    )

    rows = read_dataset(write_jsonl(tmp_path / "d.jsonl", sample_rows()))
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    index_dataset(FakeSampler(), rows, a, k=4, method="bin-max", progress=False, fsync=False)
    index_dataset(FakeSampler(), rows, b, SelectionSettings(k=4, method="bin-max"),
                  run=RunOptions(progress=False, fsync=False))
    assert a.read_text() == b.read_text()
    with pytest.raises(TypeError, match="not both"):
        index_dataset(FakeSampler(), rows, b, SelectionSettings(k=4), k=4)
    with pytest.raises(TypeError, match="unexpected keyword arguments: kk"):
        index_dataset(FakeSampler(), rows, b, kk=4)
    with pytest.raises(ValueError, match="rank 2 is not in a world of 2 processes"):
        RunOptions(rank=2, world_size=2)

    # the steps by hand (what another engine does) give the same records
    from tspo_sampler.indexing import IndexSettings
    from tspo_sampler.indexing._records import part_path
    from tspo_sampler.io import JsonlAppender

    c = tmp_path / "c.jsonl"
    settings = IndexSettings(k=4, method="bin-max")
    plan = load_done(c, rows, settings)
    assert len(plan.pending) == len(rows) and not plan.mixed
    with JsonlAppender(part_path(c, 0, 1), fsync=False) as appender:
        for group in plan_rows(plan.pending):
            records, _ = process_video(FakeSampler(), group, settings)
            for record in records:
                appender.write(record)
    assert merge(c, rows) == 0
    assert [json.loads(x) for x in c.read_text().splitlines()] == [json.loads(x) for x in a.read_text().splitlines()]
