"""The ``tspo`` command line: every argparse line of the package lives in this package.

Each command is a module with ``NAME``, ``register(subparsers)`` (adds its parser and returns it) and
``run(args)`` (returns the exit status). Adding a command is adding its module's name to :data:`COMMAND_MODULES`.

``tspo --help``, ``tspo --version`` and ``tspo COMMAND --help`` build every parser, so a command module imports
neither torch nor transformers at its top: heavy imports go inside ``run`` (tests/test_cli_fast.py checks it).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from ._common import add_debug_argument, run_command

__all__ = ["COMMANDS", "COMMAND_MODULES", "build_parser", "main"]

#: The commands, in the order ``tspo --help`` lists them: module names inside this package.
COMMAND_MODULES = ("select", "index", "export", "train_grpo", "demo", "serve")

COMMANDS = [importlib.import_module(f"{__name__}.{name}") for name in COMMAND_MODULES]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="tspo", description="Question-aware keyframe selection for video "
                                     "language models.")
    parser.add_argument("--version", action="version", version=f"tspo-sampler {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = command.register(subparsers)
        add_debug_argument(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tspo`` console script: expected failures are one line and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    return run_command(args.command, args.run, args)
