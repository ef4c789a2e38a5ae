"""``tspo serve --upstream URL``: an OpenAI-compatible proxy that selects video frames with TSPO before the
request reaches a video-LLM server (vLLM, SGLang, ``transformers serve``)."""

from __future__ import annotations

import argparse
import os

from ._common import (
    add_model_arguments,
    add_selection_arguments,
    check_device,
    check_selection_arguments,
    load_sampler,
)

NAME = "serve"
UPSTREAM_FORMATS = ("images", "vllm")  # tspo_sampler.serving._rewrite.UPSTREAM_FORMATS
UPSTREAM_KEY_ENV = "TSPO_UPSTREAM_API_KEY"  # tspo_sampler.serving._options.UPSTREAM_KEY_ENV


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="an OpenAI-compatible proxy that picks video frames with TSPO for a video-LLM server",
        description=(
            "Serve /v1/chat/completions, /v1/models and /health in front of an OpenAI-compatible video-LLM "
            "server. Each video_url part of a request is replaced by the k frames TSPO picks for the question in "
            "the same message; everything else is forwarded unchanged. A request may override k, method, search "
            f"and the question in a \"tspo\" field. The upstream key comes from ${UPSTREAM_KEY_ENV}. Needs "
            "the serve extra: pip install 'tspo-sampler[serve]'. See docs/serving.md."
        ),
    )
    p.add_argument("--upstream", required=True, metavar="URL",
                   help="the video-LLM server's OpenAI base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--upstream-format", choices=UPSTREAM_FORMATS, default="images",
                   help="images: timed JPEG image parts, for any server (default); vllm: one video_url of frames "
                        "with media_io_kwargs (vLLM, real times for Qwen models)")
    add_selection_arguments(p, k_help="frames per video (default 16)", window_size_default=None,
                            window_size_help="agent attention window (default: the checkpoint's)")
    p.add_argument("--allow-local", action="extend", nargs="+", default=[], metavar="DIR",
                   help="allow requests to name video files under DIR by path or file:// URL (one or more; "
                        "symlinks and '..' out of DIR are refused); none by default")
    p.add_argument("--allow-private-urls", action="store_true",
                   help="also fetch http(s) videos from loopback, private and link-local addresses")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8100, help="port (default 8100)")
    p.add_argument("--max-concurrency", type=int, default=4, help="selections running at once (default 4)")
    p.add_argument("--max-queue", type=int, default=16,
                   help="selections waiting for a slot; beyond that requests get 429 (default 16)")
    p.add_argument("--max-video-mb", type=float, default=2048.0, help="largest video accepted, MiB (default 2048)")
    p.add_argument("--api-key-env", metavar="NAME", default=None,
                   help="require clients to send 'Authorization: Bearer <value of $NAME>'")
    p.add_argument("--upstream-timeout", type=float, default=600.0,
                   help="seconds the upstream may take to answer (default 600)")
    p.add_argument("--fetch-timeout", type=float, default=60.0,
                   help="seconds an http(s) video may take to download (default 60)")
    p.add_argument("--log-content", action="store_true", help="also log each request's questions")
    add_model_arguments(p)
    return p


def _positive(value: float, flag: str) -> None:
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{flag} must be a positive number, got {value}")


def check_arguments(args: argparse.Namespace) -> dict:
    """Everything that can be refused before the model loads; returns ``create_app``'s keyword arguments."""
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_concurrency < 1:
        raise ValueError(f"--max-concurrency must be >= 1, got {args.max_concurrency}")
    if args.max_queue < 0:
        raise ValueError(f"--max-queue must be >= 0, got {args.max_queue}")
    for flag in ("max_video_mb", "upstream_timeout", "fetch_timeout"):
        _positive(getattr(args, flag), "--" + flag.replace("_", "-"))
    for directory in args.allow_local:
        if not os.path.isdir(directory):
            raise ValueError(f"--allow-local {directory}: not a directory")
    api_key = None
    if args.api_key_env is not None:
        api_key = os.environ.get(args.api_key_env, "").strip()
        if not api_key:
            raise ValueError(f"--api-key-env {args.api_key_env}: the environment variable is not set or empty")
    from ..serving._options import upstream_base

    try:
        upstream_base(args.upstream)
    except ValueError as exc:
        raise ValueError(f"--upstream: {exc}") from None
    check_device(args.device)
    return {
        "upstream": args.upstream, "selection": check_selection_arguments(args),
        "upstream_format": args.upstream_format, "allow_local": args.allow_local,
        "allow_private_urls": args.allow_private_urls, "max_concurrency": args.max_concurrency,
        "max_queue": args.max_queue, "max_video_mb": args.max_video_mb, "api_key": api_key,
        "upstream_timeout": args.upstream_timeout, "fetch_timeout": args.fetch_timeout,
        "log_content": args.log_content,
    }


def run(args: argparse.Namespace) -> int:
    options = check_arguments(args)
    try:
        import fastapi  # noqa: F401 - checked before the model loads
        import httpx  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise ImportError(f"tspo serve needs {exc.name}: pip install 'tspo-sampler[serve]'") from None
    import logging

    from ..serving import create_app

    sampler = load_sampler(args)
    app = create_app(sampler, **options)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its line per upstream call repeats ours
    print(f"tspo serve: http://{args.host}:{args.port}/v1 -> {options['selection'].k} frames per video -> "
          f"{args.upstream}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
