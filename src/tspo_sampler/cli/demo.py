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
    launch_demo(build_demo(sampler), host=args.host, port=args.port, share=args.share)
    return 0
