"""Servers for the ``tspo serve`` tests: any ASGI app on a free port in a thread, a recording upstream, and
``transformers serve`` with a tiny random Qwen2.5-VL in a subprocess."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from launchers import free_port

TESTS = Path(__file__).parent

COMPLETION = {
    "id": "chatcmpl-recorded",
    "object": "chat.completion",
    "created": 0,
    "model": "recorder",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "fixed answer"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
}
CHUNKS = [
    {"id": "chatcmpl-recorded", "object": "chat.completion.chunk", "created": 0, "model": "recorder",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece}, "finish_reason": None}]}
    for piece in ("fixed", " answer")
]
#: the upstream's own error, which the proxy must pass through unchanged
UPSTREAM_ERROR = {"error": {"message": "model 'fail' does not exist", "type": "invalid_request_error",
                            "param": "model", "code": "model_not_found"}}


class Served:
    """An ASGI app served by uvicorn on 127.0.0.1 in a daemon thread."""

    def __init__(self, app, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive(), "the server thread died while starting"
            assert time.monotonic() < deadline, "the server did not start within 60 s"
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def recording_upstream(video: Path, *, slow_seconds: float = 3.0) -> FastAPI:
    """An OpenAI-compatible upstream that stores every request body and answers with a fixed completion.

    Models with a meaning: ``fail`` answers 404 with :data:`UPSTREAM_ERROR`; ``slow`` waits ``slow_seconds``
    first; ``gated`` streams its first event, then waits until ``app.state.gate`` is set (for at most 30 s,
    recording in ``app.state.gate_opened`` whether the test opened it). It also serves ``video`` at
    ``/files/video.mp4``, a redirect to it at ``/files/redirect``, and twice its size in zeros at
    ``/files/big.mp4``.
    """
    app = FastAPI()
    app.state.bodies = []
    app.state.headers = []
    app.state.gate = threading.Event()
    app.state.gate_opened = None

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        app.state.bodies.append(body)
        app.state.headers.append(dict(request.headers))
        model = body.get("model")
        if model == "fail":
            return JSONResponse(UPSTREAM_ERROR, status_code=404)
        if model == "slow":
            await asyncio.sleep(slow_seconds)
        if not body.get("stream"):
            return COMPLETION

        async def events():
            for i, chunk in enumerate(CHUNKS):
                yield f"data: {json.dumps(chunk)}\n\n"
                if i == 0 and model == "gated":
                    app.state.gate_opened = await asyncio.to_thread(app.state.gate.wait, 30)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "recorder", "object": "model", "created": 0, "owned_by": "tests"}]}

    @app.get("/files/video.mp4")
    async def video_file():
        return FileResponse(video, media_type="video/mp4")

    @app.get("/files/big.mp4")
    async def big_file():
        return Response(bytes(2 * video.stat().st_size), media_type="video/mp4")

    @app.get("/files/redirect")
    async def redirect():
        return RedirectResponse("/files/video.mp4", status_code=302)

    return app


# ------------------------------------------------------------------------------------- transformers serve

_SERVE_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from tiny_mllms import build_qwen2_5_vl
model, processor = build_qwen2_5_vl()
model.save_pretrained({model_dir!r})
processor.save_pretrained({model_dir!r})
print("tiny model saved", flush=True)
from transformers.cli.transformers import main
sys.argv = ["transformers", "serve", {model_dir!r}, "--device", "cpu", "--host", "127.0.0.1", "--port", {port!r}]
sys.exit(main())
"""


class TransformersServe:
    """``transformers serve`` on a tiny random Qwen2.5-VL saved offline, started in the background."""

    def __init__(self, model_dir: Path, log: Path) -> None:
        self.model_dir = model_dir
        self.port = free_port()
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        script = _SERVE_SCRIPT.format(tests=str(TESTS), model_dir=str(model_dir), port=str(self.port))
        self.proc = subprocess.Popen([sys.executable, "-c", script], stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, timeout: float = 300.0) -> str | None:
        """``None`` once /health answers, else why it cannot run (the process ended)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.log_path.read_text()[-2000:]
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return None
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"transformers serve did not answer within {timeout} s:\n"
                             f"{self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
