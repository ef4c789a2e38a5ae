"""``tspo train-grpo`` and ``python -m tspo_sampler.train_grpo``: flags (or a YAML/JSON file) -> GRPOConfig.

The flags are built from the dataclass: one per field, typed from its annotation
(:func:`typing.get_type_hints`), with the help text and extra spellings from the field's ``metadata``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import types
import typing
from collections.abc import Sequence
from typing import Any

from ..training._config import GRPOConfig, load_config_file
from ._common import add_debug_argument, run_command

NAME = "train-grpo"
_SHORT_HELP = "fine-tune the temporal agent with GRPO (CLIP and the MLLM stay frozen)"


def _parse_bool_or_path(text: str) -> bool | str:
    low = text.lower()
    if low in ("true", "yes", "1", "latest"):
        return True
    if low in ("false", "no", "0", "none"):
        return False
    return text


def _parse_optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "null", "") else int(text)


def _parse_optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "") else float(text)


def _split_optional(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``; ``(tp, False)`` otherwise. A union of several types stays a union."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), optional  # noqa: UP007
    return tp, False


def _argument(name: str, tp: Any) -> dict[str, Any]:
    """argparse keyword arguments for a field of type ``tp``."""
    base, optional = _split_optional(tp)
    if base is bool:
        return {"action": argparse.BooleanOptionalAction}
    if name == "resume":  # bool | str: a bare --resume means the newest checkpoint
        return {"type": _parse_bool_or_path, "nargs": "?", "const": True, "metavar": "CHECKPOINT"}
    if typing.get_origin(base) is list:
        return {"nargs": "*", "metavar": name.upper().rstrip("S")}
    if base is int:
        return {"type": _parse_optional_int if optional else int}
    if base is float:
        return {"type": _parse_optional_float if optional else float}
    return {"type": str}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`GRPOConfig` field (``--field-name`` plus its ``aliases``), and ``--config``."""
    parser.add_argument("--config", help="YAML or JSON file of GRPOConfig options (flags given here win)")
    hints = typing.get_type_hints(GRPOConfig)
    for f in dataclasses.fields(GRPOConfig):
        flags = list(dict.fromkeys([*f.metadata.get("aliases", []), f"--{f.name.replace('_', '-')}"]))
        parser.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, help=f.metadata.get("help", ""),
                            **_argument(f.name, hints[f.name]))


def config_from_args(args: argparse.Namespace) -> GRPOConfig:
    """The config of the flags (over ``--config``); a refused value is named by its flag (``--learning-rate``)."""
    names = {f.name for f in dataclasses.fields(GRPOConfig)}
    values: dict[str, Any] = load_config_file(args.config) if getattr(args, "config", None) else {}
    values.update({k: v for k, v in vars(args).items() if k in names})
    try:
        return GRPOConfig.from_dict(values)
    except ValueError as exc:
        message = str(exc)
        name = next((n for n in sorted(names, key=len, reverse=True)
                     if message.startswith(n) and message[len(n):len(n) + 1] in (" ", "=", ":", ")")), None)
        if name is None:
            raise
        raise type(exc)(f"--{name.replace('_', '-')}{message[len(name):]}") from None


def run(args: argparse.Namespace) -> int:
    from ..training import train_grpo

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    out = train_grpo(config)
    print(f"trained agent saved to {out} (load it with TemporalSampler.from_pretrained({str(out)!r}))")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help=_SHORT_HELP, description=_SHORT_HELP.capitalize() + ". Every GRPOConfig field is a flag.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(p)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tspo_sampler.train_grpo", description=_SHORT_HELP)
    add_arguments(parser)
    add_debug_argument(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tspo_sampler.train_grpo`` (also under ``accelerate launch -m``)."""
    return run_command(NAME, run, build_parser().parse_args(argv))
