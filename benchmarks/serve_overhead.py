"""What ``tspo serve`` adds to a request: proxy overhead with a warm cache, and selection time cold and warm.

In one run, on one generated video:

1. an upstream that answers every chat request with a fixed completion after parsing it (so the numbers are
   the proxy's, not a model's) runs in its own process and keeps the last body it was sent;
2. ``tspo serve`` (the CLI, its own process) runs in front of it with a random ViT-B/32-shaped checkpoint;
3. the first request through the proxy selects cold (decode + encode every candidate); the next ones ask other
   questions about the same video (warm feature cache), by local path and as a ``data:`` URL upload;
4. the body the proxy forwarded (the same frames) is sent straight to the upstream as the baseline.

Overhead = median(through the proxy, warm) - median(straight to the upstream). ``select_s`` is the selection
time the proxy reports in its ``tspo`` field.

    python benchmarks/serve_overhead.py --minutes 2 --requests 15 --json bench_out/serve_overhead.json

No ``from __future__ import annotations``: FastAPI reads the upstream's route annotations at runtime.
"""

import argparse
import base64
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_name, make_vit_b32_checkpoint  # noqa: E402

COMPLETION = {"id": "fixed", "object": "chat.completion", "created": 0, "model": "fixed",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


def upstream_main(port: int) -> None:
    """The fixed-answer upstream (run in its own process)."""
    import uvicorn
    from fastapi import FastAPI, Request

    app = FastAPI()
    last: dict = {}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        last["body"] = json.loads(await request.body())
        return COMPLETION

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "fixed", "object": "model"}]}

    @app.get("/last")
    async def last_body():
        return last.get("body", {})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 600.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited with status {proc.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def chat(video_url: str, question: str, k: int) -> dict:
    return {"model": "fixed", "max_tokens": 8, "tspo": {"k": k},
            "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": video_url}},
                                                      {"type": "text", "text": question}]}]}


def timed_post(client, url: str, body: dict) -> tuple[float, dict]:
    t0 = time.perf_counter()
    reply = client.post(url, json=body)
    seconds = time.perf_counter() - t0
    if reply.status_code != 200:
        raise SystemExit(f"{url}: HTTP {reply.status_code}: {reply.text[:300]}")
    return seconds, reply.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.0, help="video length (default 2)")
    parser.add_argument("--size", default="1280x720", help="video size (default 1280x720)")
    parser.add_argument("--requests", type=int, default=15, help="warm requests per way (default 15)")
    parser.add_argument("-k", type=int, default=16)
    parser.add_argument("--workdir", default=None, help="where the video and checkpoint go (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    parser.add_argument("--upstream-only", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream_only is not None:
        upstream_main(args.upstream_only)
        return

    import httpx

    from media import make_long_video

    work = Path(args.workdir or tempfile.mkdtemp(prefix="serve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.split("x"))
    video = work / "videos" / f"long_{args.minutes:g}min_{args.size}.mp4"
    video.parent.mkdir(exist_ok=True)
    if not video.exists():
        make_long_video(video, args.minutes, size=(width, height))
    checkpoint = make_vit_b32_checkpoint(work / "vit-b32")
    cache = tempfile.mkdtemp(prefix="serve-bench-cache-")

    up_port, proxy_port = free_port(), free_port()
    upstream = subprocess.Popen([sys.executable, __file__, "--upstream-only", str(up_port)])
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tspo_sampler.cli", "serve", "--upstream", f"http://127.0.0.1:{up_port}/v1",
         "--model", str(checkpoint), "--device", "cpu", "--port", str(proxy_port), "--cache-dir", cache,
         "--allow-local", str(video.parent), "-k", str(args.k)],
        stdout=subprocess.DEVNULL,
    )
    try:
        up_url, proxy_url = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{proxy_port}"
        wait_until_up(up_url + "/v1/models", upstream)
        wait_until_up(proxy_url + "/health", proxy)
        with httpx.Client(timeout=600) as client:
            results = run(client, up_url, proxy_url, video, args)
    finally:
        for proc in (proxy, upstream):
            proc.terminate()
            proc.wait(timeout=30)
    results["machine"] = {"cpu": f"{cpu_name()}, {os.cpu_count()} logical CPUs", "python": platform.python_version(),
                          "platform": platform.platform(), "load_average": round(os.getloadavg()[0], 1)}
    results["video"] = {"minutes": args.minutes, "size": args.size, "mb": round(video.stat().st_size / 2**20, 1)}
    print(f"CPU: {results['machine']['cpu']}; load average {results['machine']['load_average']} at the end")
    print(f"video: {args.minutes:g} min {args.size} ({results['video']['mb']} MB), k={args.k}, "
          f"ViT-B/32-shaped random checkpoint, {args.requests} warm requests per way")
    for name, value in results["summary"].items():
        print(f"  {name:<50} {value}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))


def run(client, up_url: str, proxy_url: str, video: Path, args: argparse.Namespace) -> dict:
    chat_url = "/v1/chat/completions"
    first = chat(str(video), "question 0: what happens first?", args.k)
    cold_s, cold = timed_post(client, proxy_url + chat_url, first)
    forwarded = client.get(up_url + "/last").json()
    upload = "data:video/mp4;base64," + base64.b64encode(video.read_bytes()).decode()
    ways: dict[str, list[float]] = {"direct": [], "proxy_path": [], "proxy_data_url": []}
    selects: dict[str, list[float]] = {"proxy_path": [], "proxy_data_url": []}
    # the data URL's first request encodes too (bytes have their own cache identity): not counted as warm
    timed_post(client, proxy_url + chat_url, chat(upload, "question: warm-up", args.k))
    for i in range(1, args.requests + 1):
        ways["direct"].append(timed_post(client, up_url + chat_url, forwarded)[0])
        for way, url in (("proxy_path", str(video)), ("proxy_data_url", upload)):
            body = chat(url, f"question {i}: what is shown?", args.k)
            seconds, reply = timed_post(client, proxy_url + chat_url, body)
            ways[way].append(seconds)
            selects[way].append(reply["tspo"]["videos"][0]["seconds"])
    med = {way: statistics.median(v) for way, v in ways.items()}
    summary = {
        "cold request through the proxy (s)": f"{cold_s:.3f}",
        "cold selection, proxy's select_s (s)": f"{cold['tspo']['videos'][0]['seconds']:.3f}",
        "warm selection by path, median select_s (s)": f"{statistics.median(selects['proxy_path']):.3f}",
        "warm selection by data: URL, median select_s (s)": f"{statistics.median(selects['proxy_data_url']):.3f}",
        "straight to the upstream, median (s)": f"{med['direct']:.4f}",
        "through the proxy by path, median (s)": f"{med['proxy_path']:.3f}",
        "through the proxy by data: URL, median (s)": f"{med['proxy_data_url']:.3f}",
        "proxy overhead by path, warm (s)": f"{med['proxy_path'] - med['direct']:.3f}",
        "proxy overhead by data: URL, warm (s)": f"{med['proxy_data_url'] - med['direct']:.3f}",
        "forwarded body (MB)": f"{len(json.dumps(forwarded)) / 2**20:.2f}",
    }
    return {"summary": summary, "seconds": ways, "select_seconds": selects, "cold_seconds": cold_s}


if __name__ == "__main__":
    main()
