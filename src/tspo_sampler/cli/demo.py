"""``tspo demo``: the Gradio app that shows the frames TSPO picks for a question beside uniform frames."""

from __future__ import annotations

import argparse
import sys

from ._common import add_model_arguments, load_sampler

NAME = "demo"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="serve a web demo (Gradio) of frame selection",
        description=(
            "Serve a Gradio app: upload a video or take the bundled example, ask a question, and compare the "
            "frames TSPO picks with uniform frames. Also serves the API endpoint /select. Needs the demo "
            "extra: pip install 'tspo-sampler[demo]'."
        ),
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    add_model_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
    try:
        import gradio  # noqa: F401 - checked before the model loads
    except ImportError:
        print("tspo demo: error: the demo needs gradio: pip install 'tspo-sampler[demo]'", file=sys.stderr)
        return 2
    from ..integrations.gradio_demo import build_demo, launch_demo

    sampler = load_sampler(args)
    app = build_demo(sampler)
    # quiet: Gradio's own banner tells a Python user to "set share=True in launch()"; a CLI user needs --share
    _, local_url, share_url = launch_demo(app, host=args.host, port=args.port, share=args.share, block=False,
                                          quiet=True)
    print(f"tspo demo: running on {local_url} (Ctrl+C to stop)", flush=True)
    if share_url:
        print(f"tspo demo: public link {share_url} (temporary; anyone with it can use the demo)", flush=True)
    elif args.share:
        print("tspo demo: --share could not open a public link (see above); serving locally only", flush=True)
    else:
        print("tspo demo: add --share for a temporary public gradio.live link", flush=True)
    app.block_thread()
    return 0
