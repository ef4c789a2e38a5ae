"""``tspo serve``: the OpenAI-compatible proxy, against a recording upstream and a real ``transformers serve``.

The recording upstream (tests/serve_helpers.py) stores every request body, so the tests read exactly what the
proxy forwards. The real upstream is ``transformers serve`` with a tiny random Qwen2.5-VL built offline; it
starts in the background when this module starts (it takes a while on a busy CPU) and its tests come last.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from PIL import Image  # noqa: E402

from launchers import free_port  # noqa: E402
from media import make_corrupt, make_video, read_stamp  # noqa: E402
from serve_helpers import (  # noqa: E402
    CHUNKS,
    COMPLETION,
    UPSTREAM_ERROR,
    Served,
    TransformersServe,
    recording_upstream,
)
from tspo_sampler import SelectionSettings, TemporalSampler  # noqa: E402
from tspo_sampler.serving import create_app  # noqa: E402

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
UPSTREAM_KEY_ENV = "TSPO_UPSTREAM_API_KEY"
QUESTION = "When does the bar reach the right edge?"


def data_url(path: Path, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()


def jpeg(url: str) -> np.ndarray:
    head, _, payload = url.partition(",")
    assert head == "data:image/jpeg;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB"))


def chat(url: object, *parts: dict, **fields) -> dict:
    """A chat request with a video_url part (``url``) followed by the question (or by ``parts``)."""
    content = [{"type": "video_url", "video_url": {"url": url}}, *(parts or [{"type": "text", "text": QUESTION}])]
    return {"model": "recorder", "messages": [{"role": "user", "content": content}], **fields}


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-media")
    allowed, outside = root / "allowed", root / "outside"
    allowed.mkdir()
    outside.mkdir()
    clip = make_video(allowed / "clip.mp4", duration=4.0, fps=10.0)
    other = make_video(outside / "other.mp4", duration=2.0, fps=10.0)
    (allowed / "escape.mp4").symlink_to(other)
    corrupt = make_corrupt(allowed / "corrupt.mp4", nbytes=8 * 1024)
    return {"root": root, "allowed": allowed, "clip": clip, "other": other, "escape": allowed / "escape.mp4",
            "corrupt": corrupt}


@pytest.fixture(scope="module", autouse=True)
def real_upstream(tmp_path_factory, checkpoint_dir, media):
    """``transformers serve`` and ``tspo serve`` (the CLI) in front of it, both started at once in the
    background; the tests that use them come last in this module."""
    root = tmp_path_factory.mktemp("real-upstream")
    upstream = TransformersServe(root / "tiny-qwen2.5-vl", root / "transformers-serve.log")
    port = free_port()
    log = open(root / "tspo-serve.log", "w")  # noqa: SIM115 - closed below
    (root / "tmp").mkdir()
    env = {**os.environ, "TSPO_SAMPLER_CACHE": str(root / "cache"), "TMPDIR": str(root / "tmp")}
    env.pop(UPSTREAM_KEY_ENV, None)
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tspo_sampler.cli", "serve", "--upstream", f"{upstream.url}/v1", "--model",
         str(checkpoint_dir), "--device", "cpu", "-k", "3", "--port", str(port), "--allow-local",
         str(media["allowed"])],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    yield {"upstream": upstream, "proxy": proxy, "url": f"http://127.0.0.1:{port}", "log": root / "tspo-serve.log",
           "tmp": root / "tmp"}
    proxy.terminate()
    try:
        proxy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proxy.kill()
    log.close()
    upstream.stop()


@pytest.fixture(scope="module")
def recorder(media):
    served = Served(recording_upstream(media["clip"]))
    yield served
    served.stop()


def _size_limit_mb(media) -> float:
    return 1.5 * media["clip"].stat().st_size / (1 << 20)


@pytest.fixture(scope="module")
def proxy(sampler, recorder, media):
    """The images form, a client key and an upstream key, local files under allowed/, a 1.5 s upstream timeout."""
    app = create_app(sampler, upstream=f"{recorder.url}/v1", selection=SelectionSettings(k=3),
                     allow_local=[media["allowed"]], api_key=KEY, upstream_api_key="upstream-key",
                     upstream_timeout=1.5, max_video_mb=_size_limit_mb(media))
    served = Served(app)
    yield served
    served.stop()


@pytest.fixture(scope="module")
def vllm_proxy(sampler, recorder, media):
    """vLLM's form; http(s) URLs on private addresses allowed (the recorder serves the video); no keys."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(UPSTREAM_KEY_ENV, raising=False)
        app = create_app(sampler, upstream=f"{recorder.url}/v1", selection=SelectionSettings(k=3),
                         upstream_format="vllm", allow_private_urls=True, max_video_mb=_size_limit_mb(media))
    served = Served(app)
    yield served
    served.stop()


def post(server, body, *, headers=AUTH, **kwargs):
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=120, **kwargs)


# ------------------------------------------------------------------------------------------- what is forwarded


def test_images_form_forwards_timed_frames_in_place_of_the_video(proxy, recorder, sampler, media, caplog):
    tools = [{"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}]
    body = {
        "model": "recorder", "temperature": 0.2, "max_tokens": 7, "tools": tools, "seed": 3,
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": [
                {"type": "text", "text": "When does the bar"},
                {"type": "video_url", "video_url": {"url": data_url(media["clip"])}},
                {"type": "text", "text": "reach the right edge?"},
            ]},
        ],
        "tspo": {"k": 3},
    }
    with caplog.at_level("INFO", logger="tspo_sampler.serving"):
        reply = post(proxy, body)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    tspo = answer.pop("tspo")
    assert answer == COMPLETION
    expected = sampler.select_frames(media["clip"], "When does the bar reach the right edge?", k=3)
    [video] = tspo["videos"]
    assert video["indices"] == expected.indices
    assert video["timestamps"] == pytest.approx(expected.timestamps)
    assert (video["k"], video["method"], video["message"], video["part"]) == (3, "topk", 1, 1)

    forwarded = recorder.app.state.bodies[-1]
    assert recorder.app.state.headers[-1]["authorization"] == "Bearer upstream-key"  # never the client's key
    assert {k: v for k, v in forwarded.items() if k != "messages"} == {
        k: v for k, v in body.items() if k not in ("messages", "tspo")}
    assert forwarded["messages"][0] == body["messages"][0]
    content = forwarded["messages"][1]["content"]
    assert content[0] == {"type": "text", "text": "When does the bar"}
    assert content[-1] == {"type": "text", "text": "reach the right edge?"}
    frames = content[1:-1]
    assert [p["type"] for p in frames] == ["text", "image_url"] * 3
    stated = []
    for label, image in zip(frames[::2], frames[1::2], strict=True):
        match = re.fullmatch(r"<(\d+\.\d) s>", label["text"])
        assert match, label
        stated.append(float(match.group(1)))
        assert read_stamp(jpeg(image["image_url"]["url"])) == pytest.approx(stated[-1], abs=0.051)
    assert stated == sorted(stated) and stated == pytest.approx(expected.timestamps, abs=0.051)
    text = json.dumps(forwarded)
    assert "video_url" not in text and '"tspo"' not in text

    lines = [r.getMessage() for r in caplog.records if r.name == "tspo_sampler.serving"]
    assert len(lines) == 1 and "videos=1" in lines[0] and "k=[3]" in lines[0] and "upstream=200" in lines[0]
    assert "right edge" not in lines[0]  # no request content without --log-content


def test_vllm_form_forwards_one_video_url_of_frames_with_their_times(vllm_proxy, recorder, sampler, media):
    url = f"{recorder.url}/files/video.mp4"  # fetched over http (private addresses allowed on this proxy)
    reply = post(vllm_proxy, chat(url, tspo={"k": 2}), headers={"Authorization": "Bearer client-own"})
    assert reply.status_code == 200, reply.text
    # no key of the proxy's own and none for the upstream: the client's header is passed on
    assert recorder.app.state.headers[-1]["authorization"] == "Bearer client-own"
    [video] = reply.json()["tspo"]["videos"]
    expected = sampler.select_frames(media["clip"], QUESTION, k=2)
    assert video["indices"] == expected.indices

    forwarded = recorder.app.state.bodies[-1]
    content = forwarded["messages"][0]["content"]
    assert [p["type"] for p in content] == ["video_url", "text"]
    assert content[1] == {"type": "text", "text": QUESTION}
    head, _, frames = content[0]["video_url"]["url"].partition(",")
    assert head == "data:video/jpeg;base64"
    kwargs = forwarded["media_io_kwargs"]["video"]
    assert kwargs["num_frames"] == -1 and kwargs["do_sample_frames"] is False
    times = [i / kwargs["fps"] for i in kwargs["frames_indices"]]
    assert times == pytest.approx(expected.timestamps, abs=1e-6)
    stamps = [read_stamp(jpeg("data:image/jpeg;base64," + f)) for f in frames.split(",")]
    assert stamps == pytest.approx(times, abs=0.011)
    assert url not in json.dumps(forwarded) and "tspo" not in forwarded

    two = chat(url, {"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": QUESTION})
    refused = post(vllm_proxy, two, headers={})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "too_many_videos"
    redirect = post(vllm_proxy, chat(f"{recorder.url}/files/redirect"), headers={})
    assert redirect.status_code == 400 and redirect.json()["error"]["code"] == "url_redirect"
    big = post(vllm_proxy, chat(f"{recorder.url}/files/big.mp4"), headers={})
    assert big.status_code == 400 and big.json()["error"]["code"] == "video_too_large"
    assert post(vllm_proxy, chat(url), headers={}).status_code == 200


def test_streaming_relays_events_as_they_arrive_with_tspo_in_the_first(proxy, recorder, media):
    state = recorder.app.state
    state.gate.clear()
    body = chat(data_url(media["clip"]), model="gated", stream=True)
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body, headers=AUTH, timeout=60) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = reply.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        # the upstream holds its second event until the first has reached the client: nothing is buffered
        state.gate.set()
        rest = [line for line in lines if line.startswith("data:")]
    event = json.loads(first[5:])
    tspo = event.pop("tspo")
    assert event == CHUNKS[0]
    assert len(tspo["videos"][0]["indices"]) == 3
    assert [json.loads(x[5:]) for x in rest[:-1]] == CHUNKS[1:] and rest[-1] == "data: [DONE]"
    assert state.gate_opened is True
    assert state.bodies[-1]["stream"] is True and "tspo" not in state.bodies[-1]


def test_models_and_health(proxy):
    models = httpx.get(f"{proxy.url}/v1/models", headers=AUTH, timeout=30)
    assert models.status_code == 200 and models.json()["data"][0]["id"] == "recorder"
    assert httpx.get(f"{proxy.url}/v1/models", timeout=30).status_code == 401
    unknown = httpx.get(f"{proxy.url}/v1/nothing", headers=AUTH, timeout=30)
    assert unknown.status_code == 404 and set(unknown.json()["error"]) == {"message", "type", "param", "code"}
    health = httpx.get(f"{proxy.url}/health", timeout=30)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "sampler": "loaded", "upstream": "answers"}


# ------------------------------------------------------------------------------------------------------ errors


def _bad_requests(media, recorder_url: str) -> dict[str, tuple]:
    """name -> (body, headers, status, error code or param expected)."""
    clip = data_url(media["clip"])
    big = "data:video/mp4;base64," + base64.b64encode(os.urandom(2 * media["clip"].stat().st_size)).decode()
    return {
        "no question": (chat(clip, {"type": "text", "text": "  "}), AUTH, 400, "no_question"),
        "unknown tspo key": (chat(clip, tspo={"k": 2, "topk": 2}), AUTH, 400, "tspo.topk"),
        "tspo k": (chat(clip, tspo={"k": 0}), AUTH, 400, "tspo.k"),
        "tspo method": (chat(clip, tspo={"method": "best"}), AUTH, 400, "tspo.method"),
        "tspo search": (chat(clip, tspo={"method": "aks", "search": "coarse-to-fine"}), AUTH, 400, "tspo.search"),
        "tspo not an object": (chat(clip, tspo=[3]), AUTH, 400, "tspo"),
        "outside the allow-list": (chat(str(media["other"])), AUTH, 400, "path_not_allowed"),
        "symlink out": (chat(str(media["escape"])), AUTH, 400, "path_not_allowed"),
        "dot-dot out": (chat(f"{media['allowed']}/../outside/other.mp4"), AUTH, 400, "path_not_allowed"),
        "file URL out": (chat(media["other"].as_uri()), AUTH, 400, "path_not_allowed"),
        "unreadable data": (chat(data_url(media["corrupt"])), AUTH, 400, "unreadable_video"),
        "unreadable file": (chat(str(media["corrupt"])), AUTH, 400, "unreadable_video"),
        "too large": (chat(big), AUTH, 400, "video_too_large"),
        "private URL": (chat(f"{recorder_url}/files/video.mp4"), AUTH, 400, "url_not_allowed"),
        "scheme": (chat("ftp://example.com/v.mp4"), AUTH, 400, "messages[0].content[0].video_url.url"),
        "no key": (chat(clip), {}, 401, "invalid_api_key"),
        "wrong key": (chat(clip), {"Authorization": "Bearer nope"}, 401, "invalid_api_key"),
        "upstream timeout": (chat(clip, model="slow"), AUTH, 504, "upstream_timeout"),
    }


BAD = ["no question", "unknown tspo key", "tspo k", "tspo method", "tspo search", "tspo not an object",
       "outside the allow-list", "symlink out", "dot-dot out", "file URL out", "unreadable data",
       "unreadable file", "too large", "private URL", "scheme", "no key", "wrong key", "upstream timeout"]


@pytest.mark.parametrize("name", BAD)
def test_each_error_in_openai_shape_then_a_good_request(name, proxy, recorder, media):
    body, headers, status, expected = _bad_requests(media, recorder.url)[name]
    sent = len(recorder.app.state.bodies)
    reply = post(proxy, body, headers=headers)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert expected in (error["code"], error["param"]), error
    for leak in ("Traceback", "site-packages", "tspo-video-", str(media["other"].parent)):
        assert leak not in reply.text or leak in json.dumps(body)  # only what the client sent itself
    if status == 400:
        assert len(recorder.app.state.bodies) == sent  # refused before the upstream
    good = post(proxy, chat(data_url(media["clip"])))
    assert good.status_code == 200, good.text


def test_invalid_json_and_upstream_errors_pass_through(proxy, media):
    raw = httpx.post(f"{proxy.url}/v1/chat/completions", content=b"{not json", headers=AUTH, timeout=30)
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"
    failed = post(proxy, chat(data_url(media["clip"]), model="fail"))
    assert failed.status_code == 404 and failed.json() == UPSTREAM_ERROR
    streamed = post(proxy, chat(data_url(media["clip"]), model="fail", stream=True))
    assert streamed.status_code == 404 and streamed.json() == UPSTREAM_ERROR
    assert post(proxy, chat(str(media["clip"]))).status_code == 200


def test_unreachable_upstream_is_502_until_it_answers(sampler, media, monkeypatch):
    monkeypatch.setenv(UPSTREAM_KEY_ENV, "from-env")
    port = free_port()
    served = Served(create_app(sampler, upstream=f"http://127.0.0.1:{port}/v1", selection=SelectionSettings(k=2)))
    try:
        reply = post(served, chat(data_url(media["clip"])), headers={})
        assert reply.status_code == 502 and reply.json()["error"]["code"] == "upstream_unreachable"
        assert str(port) not in reply.json()["error"]["message"]
        assert httpx.get(f"{served.url}/health", timeout=30).status_code == 503
        upstream = Served(recording_upstream(media["clip"]), port=port)
        try:
            assert post(served, chat(data_url(media["clip"])), headers={}).status_code == 200
            assert upstream.app.state.headers[-1]["authorization"] == "Bearer from-env"
        finally:
            upstream.stop()
    finally:
        served.stop()


class HeldSampler:
    """The real sampler, with each selection held until the test lets it go (to fill the one slot)."""

    def __init__(self, sampler: TemporalSampler) -> None:
        self.sampler, self.cache = sampler, sampler.cache
        self.entered, self.release = threading.Event(), threading.Event()

    def select_frames(self, *args, **kwargs):
        self.entered.set()
        assert self.release.wait(60)
        return self.sampler.select_frames(*args, **kwargs)


def test_a_full_queue_answers_429_and_the_next_request_succeeds(sampler, recorder, media):
    held = HeldSampler(sampler)
    app = create_app(held, upstream=f"{recorder.url}/v1", selection=SelectionSettings(k=2), max_concurrency=1,
                     max_queue=0)
    served = Served(app)
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(post, served, chat(data_url(media["clip"])), headers={})
            assert held.entered.wait(60)
            busy = post(served, chat(data_url(media["clip"])), headers={})
            held.release.set()
            assert first.result().status_code == 200
        assert busy.status_code == 429 and busy.json()["error"]["code"] == "queue_full"
        assert post(served, chat(data_url(media["clip"])), headers={}).status_code == 200
    finally:
        served.stop()


def test_eight_concurrent_requests_on_one_video_encode_it_once(checkpoint_dir, recorder, media, tmp_path):
    fresh = TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache_dir=tmp_path / "cache")
    calls = []
    encode_images = fresh.encoder.encode_images

    def counting(frames):
        calls.append(len(frames))
        return encode_images(frames)

    fresh.encoder.encode_images = counting
    served = Served(create_app(fresh, upstream=f"{recorder.url}/v1", selection=SelectionSettings(k=2)))
    try:
        video = data_url(media["clip"])
        questions = [f"{QUESTION} ({i})" for i in range(8)]
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda q: post(served, chat(video, {"type": "text", "text": q}), headers={}),
                                    questions))
    finally:
        served.stop()
    assert [r.status_code for r in replies] == [200] * 8
    # the same bytes: a cache hit, which encodes nothing (a path has another cache identity than its bytes)
    candidates = len(fresh.encode_video(media["clip"].read_bytes()).candidate_indices)
    assert sum(calls) == candidates and len(calls) == math.ceil(candidates / fresh.batch_size)
    for question, reply in zip(questions, replies, strict=True):
        expected = fresh.select_frames(media["clip"], question, k=2)
        assert reply.json()["tspo"]["videos"][0]["indices"] == expected.indices


# ---------------------------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("argv, message", [
    (["--upstream", "ftp://host/v1"], "upstream must be an http(s) URL"),
    (["--upstream", "http://127.0.0.1:9/v1", "--allow-local", "/no/such/dir"], "--allow-local"),
    (["--upstream", "http://127.0.0.1:9/v1", "--api-key-env", "TSPO_TEST_UNSET_VARIABLE"], "TSPO_TEST_UNSET"),
    (["--upstream", "http://127.0.0.1:9/v1", "--port", "0"], "--port"),
    (["--upstream", "http://127.0.0.1:9/v1", "--max-concurrency", "0"], "--max-concurrency"),
    (["--upstream", "http://127.0.0.1:9/v1", "-k", "0"], "-k"),
])
def test_cli_refuses_bad_options_in_one_line(argv, message, capsys):
    from tspo_sampler.cli import main

    os.environ.pop("TSPO_TEST_UNSET_VARIABLE", None)
    assert main(["serve", *argv, "--model", "/no/such/checkpoint"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tspo serve: error:") and "\n" not in err and message in err, err


def test_importing_the_package_imports_no_web_framework():
    code = ("import sys, tspo_sampler, tspo_sampler.serving; "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'httpx', 'starlette', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    from tspo_sampler.serving import _app, _media, _upstream

    for module in (_app, _media, _upstream):  # imported where an app is built or a URL fetched
        assert not {"fastapi", "uvicorn", "httpx", "starlette"} & set(vars(module)), module.__name__


def test_cli_constants_match_the_library():
    from tspo_sampler.cli import serve as cli_serve
    from tspo_sampler.serving._options import UPSTREAM_KEY_ENV as LIBRARY_KEY_ENV
    from tspo_sampler.serving._rewrite import UPSTREAM_FORMATS

    assert cli_serve.UPSTREAM_FORMATS == UPSTREAM_FORMATS
    assert cli_serve.UPSTREAM_KEY_ENV == LIBRARY_KEY_ENV == UPSTREAM_KEY_ENV


# ------------------------------------------------------------------------------------- a real upstream


@pytest.fixture(scope="module")
def real(real_upstream):
    why = real_upstream["upstream"].wait()
    if why is not None:
        pytest.skip(f"transformers serve cannot run here:\n{why}")
    openai = pytest.importorskip("openai")
    proxy = real_upstream["proxy"]
    for _ in range(600):
        assert proxy.poll() is None, real_upstream["log"].read_text()[-2000:]
        try:
            if httpx.get(real_upstream["url"] + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        threading.Event().wait(0.5)
    else:
        raise AssertionError(f"tspo serve did not answer:\n{real_upstream['log'].read_text()[-2000:]}")
    client = openai.OpenAI(base_url=real_upstream["url"] + "/v1", api_key="unused", max_retries=0, timeout=120)
    return client, str(real_upstream["upstream"].model_dir), real_upstream["tmp"]


def _video_message(url: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}},
                                         {"type": "text", "text": QUESTION}]}]


def test_real_upstream_non_streaming_data_url(real, sampler, media):
    client, model, tmp = real
    completion = client.chat.completions.create(
        model=model, messages=_video_message(data_url(media["clip"])), max_tokens=4, extra_body={"tspo": {"k": 2}})
    assert isinstance(completion.choices[0].message.content, str)
    [video] = completion.model_extra["tspo"]["videos"]
    expected = sampler.select_frames(media["clip"], QUESTION, k=2)
    assert video["indices"] == expected.indices and video["timestamps"] == pytest.approx(expected.timestamps)
    assert list(tmp.iterdir()) == []  # the upload's temporary copy is gone with the request


def test_real_upstream_streaming_local_file(real, sampler, media):
    client, model, tmp = real
    stream = client.chat.completions.create(
        model=model, messages=_video_message(str(media["clip"])), max_tokens=4, stream=True)
    chunks = list(stream)
    assert chunks and "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) is not None
    [video] = chunks[0].model_extra["tspo"]["videos"]
    expected = sampler.select_frames(media["clip"], QUESTION, k=3)  # the CLI's -k 3
    assert video["indices"] == expected.indices and video["timestamps"] == pytest.approx(expected.timestamps)
    assert list(tmp.iterdir()) == []
