"""The first run as a newcomer meets it: Hub failures that say which case they are, and a short Selection repr.

Hub cases run ``from_pretrained`` in a subprocess (huggingface_hub reads HF_HUB_OFFLINE and HF_ENDPOINT at
import) against huggingface_hub's real code: an empty cache with HF_HUB_OFFLINE=1, an endpoint on a closed
local port, and a local HTTP server that answers like the Hub does for a missing repo or revision.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from launchers import free_port
from tspo_sampler import Selection

SCRIPT = """
import sys
from tspo_sampler import CheckpointError, TemporalSampler
try:
    TemporalSampler.from_pretrained(
        "hzf666/TSPO-0.4B", revision=sys.argv[1] or None, local_files_only=sys.argv[2] == "1"
    )
except CheckpointError as exc:
    print("MESSAGE:", exc)
    sys.exit(3)
"""


def _load(tmp_path, *, revision: str = "", local_files_only: bool = False, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environ.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1", **env)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, revision, "1" if local_files_only else "0"],
        env=environ, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("MESSAGE:")]
    assert "--model DIR" in line and "from_pretrained(DIR)" in line
    return line


class _FakeHub(BaseHTTPRequestHandler):
    """Answers every API call the way the Hub answers for a missing repo, or a missing revision ``nope``."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        code = "RevisionNotFound" if "/revision/nope" in self.path else "RepoNotFound"
        self.send_response(404)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        body = b'{"error": "not found"}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_offline_mode_says_downloads_are_off(tmp_path):
    line = _load(tmp_path, HF_HUB_OFFLINE="1")
    assert "downloads are off (HF_HUB_OFFLINE is set)" in line


def test_local_files_only_says_so(tmp_path):
    line = _load(tmp_path, local_files_only=True, HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    assert "downloads are off (local_files_only=True" in line


def test_no_network_is_not_called_offline_mode(tmp_path):
    port = free_port()
    line = _load(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{port}")
    assert "cannot reach the Hugging Face Hub" in line and str(port) in line
    assert "downloads are off" not in line


def test_missing_repo_and_missing_revision(tmp_path, fake_hub):
    line = _load(tmp_path, HF_ENDPOINT=fake_hub)
    assert "there is no model repo hzf666/TSPO-0.4B" in line
    line = _load(tmp_path, revision="nope", HF_ENDPOINT=fake_hub)
    assert "has no revision 'nope'" in line


def test_selection_repr_is_one_short_line():
    k, n = 4, 2000
    sel = Selection(
        indices=[3, 50, 700, 1999],
        timestamps=[0.1, 1.7, 23.3, 66.6],
        frames=np.zeros((k, 360, 640, 3), np.uint8),
        scores=np.random.default_rng(0).random(n),
        candidate_indices=list(range(n)),
        candidate_timestamps=[i / 30 for i in range(n)],
        method="topk",
        duration=66.7,
        question="What does the speaker\nwrite on the board?",
        positions=[3, 50, 700, 1999],
        video="/home/someone/videos/lecture.mp4",
    )
    text = repr(sel)
    assert "\n" not in text and len(text) < 300, text
    assert text.startswith("Selection(k=4, method='topk', indices=[3, 50, 700, 1999]")
    assert "candidates=2000" in text and "frames=4x360x640x3" in text and "'lecture.mp4'" in text
    many = Selection(indices=list(range(100)), timestamps=[float(i) for i in range(100)], frames=None,
                     scores=np.zeros(100), candidate_indices=list(range(100)),
                     candidate_timestamps=[float(i) for i in range(100)], method="uniform")
    assert len(repr(many)) < 200 and "..." in repr(many)


def test_progress_shows_by_time_not_by_candidate_count(uncached_sampler, tmp_path, capsys, monkeypatch):
    """A few candidates used to mean no bar however long they took; now the bar waits PROGRESS_DELAY_S."""
    from media import make_video
    from tspo_sampler.features import _video_features

    video = make_video(tmp_path / "short.mp4", duration=4.0)
    monkeypatch.setattr(_video_features, "PROGRESS_DELAY_S", 0.0)  # as if encoding had run past the delay
    uncached_sampler.select_frames(video, "what colour?", k=2, return_frames=False)
    assert "encoding short.mp4" in capsys.readouterr().err
    uncached_sampler.select_frames(video, "what colour?", k=2, return_frames=False, progress=False)
    assert "encoding" not in capsys.readouterr().err


def test_in_memory_frames_show_progress_by_time_too(uncached_sampler, capsys, monkeypatch):
    from tspo_sampler.features import _video_features

    monkeypatch.setattr(_video_features, "PROGRESS_DELAY_S", 0.0)
    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    uncached_sampler.select_frames(frames, "what colour?", k=2, return_frames=False)
    assert "encoding frames" in capsys.readouterr().err
