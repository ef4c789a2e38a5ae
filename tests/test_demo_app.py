"""The Gradio demo served on 127.0.0.1 and driven through gradio_client's ``/select`` endpoint: a good
request, each user mistake (answered with the library's message), and a good request after them."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from launchers import free_port  # noqa: E402
from tspo_sampler import example_video  # noqa: E402
from tspo_sampler.integrations.gradio_demo import build_demo, launch_demo, upload_root  # noqa: E402


@pytest.fixture(scope="module")
def client(uncached_sampler):
    demo = build_demo(uncached_sampler)
    _, url, _ = launch_demo(demo, host="127.0.0.1", port=free_port(), block=False, quiet=True)
    assert url.startswith("http://127.0.0.1:")
    try:
        yield Client(url, verbose=False)
    finally:
        demo.close()


def _good(client: Client, video, k: int = 6) -> dict:
    gallery, uniform, curve, result = client.predict(video, "When are there fireworks?", k, "topk",
                                                      api_name="/select")
    assert len(gallery) == len(uniform) == k
    assert all(item["caption"].startswith("0:") for item in gallery)
    assert curve
    return result


def test_good_request(client):
    result = _good(client, handle_file(str(example_video())))
    assert len(result["indices"]) == len(result["timestamps"]) == 6
    assert result["indices"] == sorted(result["indices"])
    assert len(result["uniform"]["timestamps"]) == 6
    assert result["video"] == "example.mp4" and result["method"] == "topk"
    assert "/" not in json.dumps(result)  # no server path anywhere in the JSON


def test_uploads_are_deleted_after_the_request(client, tmp_path):
    from media import make_video

    video = make_video(tmp_path / "tspo_demo_upload_check.mp4", duration=6.0)
    result = _good(client, handle_file(str(video)), k=3)
    assert result["video"] == video.name
    assert not list(upload_root().rglob(video.name))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((None, "what happens?", 6, "topk"), "no video"),
        (("EXAMPLE", "   ", 6, "topk"), "question is blank"),
        (("UNREADABLE", "what happens?", 6, "topk"), "cannot read video"),
        (("EXAMPLE", "what happens?", 0, "topk"), "k must be"),
        (("EXAMPLE", "what happens?", -3, "topk"), "k must be"),
        (("EXAMPLE", "what happens?", 6, "best"), "best is not in the list of choices"),
    ],
    ids=["no-video", "blank-question", "unreadable-file", "k-zero", "k-negative", "unknown-method"],
)
def test_user_mistakes_come_back_as_errors(client, tmp_path, args, message):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    files = {"EXAMPLE": handle_file(str(example_video())), "UNREADABLE": handle_file(str(bad))}
    args = tuple(files.get(a, a) if isinstance(a, str) else a for a in args)
    with pytest.raises(AppError) as info:
        client.predict(*args, api_name="/select")
    text = str(info.value)
    assert message in text, text
    assert str(tmp_path) not in text and "/tmp/" not in text and "gradio" not in text.lower()


def test_good_request_after_the_bad_ones(client):
    with pytest.raises(AppError):
        client.predict(None, "q", 6, "topk", api_name="/select")
    result = _good(client, handle_file(str(example_video())), k=4)
    assert len(result["indices"]) == 4


@pytest.mark.parametrize("suffix", [".mkv", ".avi", ".webm"])
def test_other_containers_work(client, tmp_path, suffix):
    """Any file select_frames reads works: Gradio hands the upload over unconverted."""
    from media import make_video

    codec = {".webm": "libvpx-vp9", ".avi": "mpeg4"}.get(suffix, "libx264")
    video = make_video(tmp_path / f"clip{suffix}", duration=5.0, codec=codec)
    result = _good(client, handle_file(str(video)), k=3)
    assert result["video"] == video.name and result["duration"] == pytest.approx(5.0, abs=0.2)


def test_a_cut_file_is_answered_with_a_warning(client, tmp_path):
    """A Matroska file cut short is read in part: the page and the JSON say what was lost (issue 20)."""
    import media

    whole = media.make_small_cluster_mkv(tmp_path / "whole.mkv", duration=8.0)
    cut = media.make_truncated(whole, tmp_path / "cut_short.mkv", keep=0.5)
    result = _good(client, handle_file(str(cut)), k=3)
    assert result["warnings"], result
    assert any("cut_short.mkv" in w or "ends" in w or "lost" in w for w in result["warnings"]), result["warnings"]
    assert "/tmp/" not in "".join(result["warnings"])
    assert _good(client, handle_file(str(whole)), k=3)["warnings"] == []


def test_requests_are_bounded(uncached_sampler):
    """On a CPU at most 60 candidates by default; the bound given to build_demo holds for every request."""
    from tspo_sampler.integrations.gradio_demo import MAX_CANDIDATES_CPU, DemoApp

    assert DemoApp(uncached_sampler).max_candidates == MAX_CANDIDATES_CPU == 60
    demo = build_demo(uncached_sampler, max_candidates=5)
    _, url, _ = launch_demo(demo, host="127.0.0.1", port=free_port(), block=False, quiet=True)
    try:
        result = Client(url, verbose=False).predict(handle_file(str(example_video())), "a clock", 3, "topk",
                                                    api_name="/select")[-1]
    finally:
        demo.close()
    assert result["num_candidates"] == 5
