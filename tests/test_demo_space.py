"""examples/space/app.py: the Space builds the same app from TSPO_MODEL, wraps the handler when asked
(what ``spaces.GPU`` does on ZeroGPU), and answers the /select endpoint."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from launchers import free_port  # noqa: E402
from tspo_sampler import example_video  # noqa: E402
from tspo_sampler.integrations.gradio_demo import build_demo, launch_demo  # noqa: E402

APP = Path(__file__).resolve().parents[1] / "examples" / "space" / "app.py"


def test_space_app_serves_the_demo(checkpoint_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("TSPO_MODEL", str(checkpoint_dir))
    monkeypatch.setenv("TSPO_SAMPLER_CACHE", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("space_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module.spaces is None:
        assert module.gpu_wrapper() is None
    _, url, _ = launch_demo(module.demo, host="127.0.0.1", port=free_port(), block=False, quiet=True)
    try:
        result = Client(url, verbose=False).predict(handle_file(str(example_video())), "Where is the stop sign?", 3,
                                                    "bin-max", api_name="/select")[-1]
    finally:
        module.demo.close()
    assert len(result["indices"]) == len(result["timestamps"]) == 3 and result["method"] == "bin-max"


def test_wrap_decorates_the_request_handler(uncached_sampler):
    calls = []

    def gpu(fn):  # what spaces.GPU(duration=...) returns: a decorator that keeps the signature
        @functools.wraps(fn)
        def run(*args, **kwargs):
            calls.append(args[1])
            return fn(*args, **kwargs)

        return run

    demo = build_demo(uncached_sampler, wrap=gpu)
    _, url, _ = launch_demo(demo, host="127.0.0.1", port=free_port(), block=False, quiet=True)
    try:
        Client(url, verbose=False).predict(handle_file(str(example_video())), "a clock", 2, "topk",
                                           api_name="/select")
    finally:
        demo.close()
    assert calls == ["a clock"]
