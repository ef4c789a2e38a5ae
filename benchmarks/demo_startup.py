"""Seconds from typing ``tspo demo --model DIR`` until the page answers, and until the first ``/select`` on the
bundled example is answered, with a local checkpoint shaped like the released agent.

The checkpoint is a randomly initialised CLIP ViT-L/14 (0.43 B parameters, bfloat16, like hzf666/TSPO-0.4B)
plus agent, written once to ``--workdir``; ``--shape tiny`` uses the test fixture instead. Each repeat is a
fresh process, so imports (torch, transformers, gradio) count as a user would see them.

    python benchmarks/demo_startup.py --repeats 3 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FIXTURE_CHECKPOINT, make_vit_b32_checkpoint, print_table  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_one(model: Path, timeout: float = 300.0) -> dict:
    from gradio_client import Client, handle_file

    from tspo_sampler import example_video

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "TSPO_SAMPLER_CACHE": tempfile.mkdtemp(prefix="tspo-demo-bench-")}
    load = os.getloadavg()[0]
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tspo_sampler.cli", "demo", "--model", str(model),
                             "--port", str(port), "--device", "cpu"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        ready = None
        while time.monotonic() - start < timeout and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        ready = time.monotonic() - start
                        break
            except OSError:
                time.sleep(0.1)
        if ready is None:
            raise SystemExit("tspo demo did not start")
        Client(url, verbose=False).predict(handle_file(str(example_video())), "Where is the stop sign?", 8, "topk",
                                           api_name="/select")
        first = time.monotonic() - start
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return {"page_s": round(ready, 1), "first_select_s": round(first, 1), "load_avg_before": round(load, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["vit-l14", "tiny"], default="vit-l14")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "tspo-bench"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table too")
    args = parser.parse_args()
    model = (FIXTURE_CHECKPOINT if args.shape == "tiny"
             else make_vit_b32_checkpoint(Path(args.workdir) / "vit-l14", shape="vit-l14"))
    rows = [{"run": i + 1, "shape": args.shape, "cores": os.cpu_count(), **time_one(model)}
            for i in range(args.repeats)]
    columns = ["run", "shape", "cores", "load_avg_before", "page_s", "first_select_s"]
    print_table(rows, columns)
    if args.markdown:
        print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
        for r in rows:
            print("| " + " | ".join(str(r[c]) for c in columns) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
