"""Issue 10 item 2: the decoding backend chosen through the sampler (``decoder=``) and the CLI (``--decoder``),
and ``VideoDecoder(device=...)`` for torchcodec's NVDEC path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import media
from tspo_sampler.cli import main
from tspo_sampler.video import VideoDecoder
from tspo_sampler.video._decord import import_decord
from tspo_sampler.video._inputs import DECODERS
from tspo_sampler.video._routing import BACKENDS
from tspo_sampler.video._torchcodec import import_torchcodec

HAVE_TORCHCODEC = import_torchcodec() is not None
QUESTION = "when does the bar reach the right edge?"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return media.make_video(tmp_path_factory.mktemp("decoder") / "v.mp4", duration=8.0, fps=10.0, vfr=True)


def test_the_sampler_offers_every_decoder_backend():
    assert set(DECODERS) == set(BACKENDS)


@pytest.mark.parametrize("decoder", [
    "pyav",
    pytest.param("torchcodec", marks=pytest.mark.skipif(not HAVE_TORCHCODEC, reason="torchcodec not importable")),
])
def test_select_frames_gives_the_same_frames_with_each_decoder(uncached_sampler, video, decoder):
    auto = uncached_sampler.select_frames(video, QUESTION, k=4)
    chosen = uncached_sampler.select_frames(video, QUESTION, k=4, decoder=decoder)
    assert chosen.indices == auto.indices
    assert chosen.timestamps == auto.timestamps
    assert chosen.candidate_timestamps == auto.candidate_timestamps
    stamps = [media.read_stamp(f) for f in chosen.frames]
    assert stamps == pytest.approx(chosen.timestamps, abs=0.051)  # the frames shown at those presentation times
    fine = uncached_sampler.select_frames(video, QUESTION, k=4, decoder=decoder, search="coarse-to-fine")
    assert set(fine.indices) <= set(auto.candidate_indices)


@pytest.mark.parametrize("decoder", [
    "pyav",
    pytest.param("decord", marks=pytest.mark.skipif(import_decord() is None, reason="decord not importable")),
    pytest.param("torchcodec", marks=pytest.mark.skipif(not HAVE_TORCHCODEC, reason="torchcodec not importable")),
])
def test_encode_video_features_match_across_decoders(uncached_sampler, video, decoder):
    """Every backend decodes full-size frames and resizes them with one function: the encoder sees the same
    pixels, so the features agree (and may share cache entries, whose key leaves the decoder out)."""
    auto = uncached_sampler.encode_video(video, use_cache=False)
    other = uncached_sampler.encode_video(video, use_cache=False, decoder=decoder)
    np.testing.assert_array_equal(other.candidate_indices, auto.candidate_indices)
    np.testing.assert_allclose(other.features.float().numpy(), auto.features.float().numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", [
    pytest.param("decord", marks=pytest.mark.skipif(import_decord() is None, reason="decord not importable")),
    pytest.param("torchcodec", marks=pytest.mark.skipif(not HAVE_TORCHCODEC, reason="torchcodec not importable")),
])
@pytest.mark.parametrize("size, rotate", [((320, 240), None), ((160, 120), 90)])
def test_resized_frames_are_identical_across_backends(tmp_path, backend, size, rotate):
    path = media.make_video(tmp_path / "v.mp4", duration=2.0, fps=10.0, size=size, rotate=rotate)
    with VideoDecoder(path, backend="pyav") as ref, VideoDecoder(path, backend=backend) as dec:
        for short_side in (None, 64, 100):
            idx = [0, 3, 11, 19]
            np.testing.assert_array_equal(dec.get_frames(idx, short_side=short_side).data,
                                          ref.get_frames(idx, short_side=short_side).data)


@pytest.mark.parametrize("call", ["select_frames", "encode_video", "get_frames"])
def test_a_bad_decoder_name_is_refused_naming_the_argument(uncached_sampler, video, call):
    with pytest.raises(ValueError, match=r"decoder must be one of auto, pyav, decord, torchcodec, got 'ffmpeg'"):
        if call == "select_frames":
            uncached_sampler.select_frames(video, QUESTION, k=2, decoder="ffmpeg")
        elif call == "encode_video":
            uncached_sampler.encode_video(video, decoder="ffmpeg")
        else:
            uncached_sampler.get_frames(video, [0], decoder="ffmpeg")


@pytest.mark.skipif(not HAVE_TORCHCODEC, reason="torchcodec not importable")
def test_cli_select_with_torchcodec(checkpoint_dir, video, tmp_path, capsys):
    argv = ["select", str(video), QUESTION, "-k", "3", "--model", str(checkpoint_dir), "--no-cache", "--json"]
    assert main([*argv, "--decoder", "torchcodec"]) == 0
    torchcodec = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    auto = json.loads(capsys.readouterr().out)
    assert torchcodec["indices"] == auto["indices"]
    assert torchcodec["timestamps"] == auto["timestamps"]


def test_cli_refuses_an_unknown_decoder_in_one_line(checkpoint_dir, video, tmp_path, capsys):
    out = str(tmp_path / "out.jsonl")
    for command in (["select", str(video), QUESTION], ["index", str(tmp_path / "data.jsonl"), "--out", out]):
        assert main([*command, "--model", str(checkpoint_dir), "--decoder", "foo"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert "--decoder must be one of auto, pyav, decord, torchcodec, got 'foo'" in err[0]


def test_index_resumes_across_decoders(checkpoint_dir, video, tmp_path, capsys):
    """The decoder is not a recorded setting: every backend gives the same frames, so a resume is allowed."""
    data = tmp_path / "data.jsonl"
    rows = [{"video": str(video), "question": QUESTION}, {"video": str(video), "question": "what colour is it?"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    argv = ["index", str(data), "--out", str(out), "-k", "3", "--model", str(checkpoint_dir), "--no-cache",
            "--no-progress"]
    assert main([*argv, "--decoder", "pyav"]) == 0
    first = out.read_text()
    settings = json.loads((tmp_path / "out.jsonl.settings.json").read_text())
    assert "decoder" not in json.dumps(settings)
    assert main([*argv, "--decoder", "auto", "--overwrite"]) == 0
    assert [json.loads(line)["indices"] for line in out.read_text().splitlines()] == [
        json.loads(line)["indices"] for line in first.splitlines()]
    assert main([*argv, "--decoder", "pyav"]) == 0  # resuming a complete output with another decoder: no refusal
    capsys.readouterr()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_decoding_without_a_gpu_is_a_clear_error(video):
    with pytest.raises(ValueError, match=r"device='cuda': this machine has no CUDA device for NVDEC"):
        VideoDecoder(video, backend="torchcodec", device="cuda")


@pytest.mark.parametrize("backend", ["auto", "pyav", "decord"])
def test_gpu_decoding_needs_the_torchcodec_backend(video, backend):
    with pytest.raises(ValueError, match=rf"device='cuda' decodes on the GPU only with backend='torchcodec'.*"
                                         rf"backend='{backend}'"):
        VideoDecoder(video, backend=backend, device="cuda")


def test_a_cpu_device_decodes_as_before(video):
    with VideoDecoder(video, backend="pyav", device="cpu") as dec:
        assert dec.get_frames([0, 5]).data.shape[0] == 2
    with pytest.raises(ValueError, match="device must be a torch device"):
        VideoDecoder(video, device="gpu0")


@pytest.mark.skipif(not (HAVE_TORCHCODEC and torch.cuda.is_available()), reason="needs torchcodec and CUDA")
def test_nvdec_frames_come_back_as_cpu_arrays_at_the_right_times(video):
    with VideoDecoder(video, backend="torchcodec", device="cuda") as gpu, VideoDecoder(video, backend="pyav") as cpu:
        idx, ts = gpu.candidates(fps=1.0)
        got = gpu.get_frames(idx, short_side=64)
        assert isinstance(got.data, np.ndarray) and got.data.dtype == np.uint8
        np.testing.assert_array_equal(got.timestamps, ts)
        ref = cpu.get_frames(idx, short_side=64)
        assert np.abs(got.data.astype(int) - ref.data.astype(int)).mean() < 8


def test_a_cuda_sampler_decodes_with_nvdec_only_through_torchcodec():
    from tspo_sampler.video._inputs import decode_device

    assert decode_device("torchcodec", torch.device("cuda", 1)) == "cuda:1"
    assert decode_device("torchcodec", torch.device("cpu")) is None
    for decoder in ("auto", "pyav", "decord"):
        assert decode_device(decoder, torch.device("cuda")) is None


@pytest.mark.skipif(not HAVE_TORCHCODEC, reason="torchcodec is not installed")
def test_a_cpu_sampler_opens_torchcodec_on_the_cpu(sampler, video):
    assert sampler.device.type == "cpu"
    with sampler.open_decoder(video, "torchcodec") as dec:
        assert dec.backend == "torchcodec" and dec.get_frames([0]).data.shape[0] == 1
