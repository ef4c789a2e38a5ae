"""``tspo demo`` as a user starts it: a subprocess on 127.0.0.1 that serves /select, and one-line refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from launchers import free_port  # noqa: E402
from tspo_sampler import example_video  # noqa: E402


def _wait_until_served(url: str, proc: subprocess.Popen, timeout: float = 240.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"tspo demo did not answer within {timeout} s")


def test_tspo_demo_serves_select_on_loopback(checkpoint_dir, tmp_path):
    port = free_port()
    env = {**os.environ, "TSPO_SAMPLER_CACHE": str(tmp_path / "cache"), "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tspo_sampler.cli", "demo", "--model", str(checkpoint_dir), "--port", str(port),
         "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        seconds = _wait_until_served(f"http://127.0.0.1:{port}/", proc)
        print(f"tspo demo answered after {seconds:.1f} s")
        result = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            handle_file(str(example_video())), "Where is the stop sign?", 5, "aks", api_name="/select")[-1]
        assert len(result["indices"]) == len(result["timestamps"]) == 5
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert f"tspo demo: running on http://127.0.0.1:{port}" in out  # bound to the loopback interface by default
    assert "add --share for a temporary public gradio.live link" in out  # the CLI's hint, not Gradio's
    assert "share=True" not in out


def test_tspo_demo_refuses_a_bad_port(capsys):
    from tspo_sampler.cli import main

    assert main(["demo", "--port", "70000", "--model", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--port must be between 1 and 65535" in err and "\n" not in err


def test_select_example_takes_the_place_of_video(checkpoint_dir, capsys, tmp_path):
    import json

    from tspo_sampler.cli import main

    assert main(["select", "--example", "When are there fireworks?", "-k", "3", "--json", "--no-cache",
                 "--model", str(checkpoint_dir), "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["video"].endswith("example.mp4") and out["question"] == "When are there fireworks?"
    assert len(out["indices"]) == 3 and out["num_candidates"] == 45


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["select", "--example", "a question", "extra"], "--example takes the place of VIDEO"),
        (["select", "only-one-argument"], "missing QUESTION after VIDEO 'only-one-argument': give VIDEO QUESTION"),
        (["select", "--example"], "missing QUESTION: --example needs the question"),
        (["select"], "missing VIDEO and QUESTION"),
    ],
)
def test_select_example_mistakes_are_one_line(argv, message, capsys):
    from tspo_sampler.cli import main

    assert main([*argv, "--model", "not-loaded"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
