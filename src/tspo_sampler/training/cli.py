"""``tspo train-grpo`` / ``python -m tspo_sampler.train_grpo``: flags (or a YAML/JSON file) -> GRPOConfig."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from collections.abc import Sequence
from typing import Any

from ._config import GRPOConfig, load_config_file

_SHORT_HELP = "fine-tune the temporal agent with GRPO (CLIP and the MLLM stay frozen)"
# Friendlier spellings of a few options (the dataclass names work too).
_ALIASES = {"data": ["--data"], "video_root": ["--videos", "--video-root"], "output_dir": ["--output", "--output-dir"],
            "num_generations": ["--num-generations", "-G"]}


def _field_help(name: str) -> str:
    doc = _FIELD_DOCS.get(name, "")
    return " ".join(doc.split())


def _collect_field_docs() -> dict[str, str]:
    """Attribute docstrings of GRPOConfig (the string literal following each field)."""
    import ast
    import inspect

    try:
        tree = ast.parse(inspect.getsource(GRPOConfig))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant):
                docs[node.target.id] = str(nxt.value.value)
    return docs


_FIELD_DOCS = _collect_field_docs()


def _base_type(tp: Any) -> Any:
    if isinstance(tp, str):
        tp = eval(tp, vars(typing), {})  # annotations are strings under `from __future__ import annotations`
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return args if len(args) > 1 else args[0]
    return tp


def _parse_bool_or_path(text: str) -> bool | str:
    low = text.lower()
    if low in ("true", "yes", "1", "latest"):
        return True
    if low in ("false", "no", "0", "none"):
        return False
    return text


def _parse_optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "null", "") else int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML or JSON file of GRPOConfig options (flags given here win)")
    for f in dataclasses.fields(GRPOConfig):
        flags = _ALIASES.get(f.name, []) + [f"--{f.name.replace('_', '-')}"]
        flags = list(dict.fromkeys(flags))
        tp = _base_type(f.type)
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": _field_help(f.name)}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.name == "resume":
            kwargs.update(type=_parse_bool_or_path, nargs="?", const=True, metavar="CHECKPOINT")
        elif f.name == "report_to":
            kwargs.update(nargs="*", metavar="SINK")
        elif isinstance(tp, list):  # e.g. bool | str
            kwargs["type"] = str
        elif tp is int:
            kwargs["type"] = _parse_optional_int if "None" in str(f.type) else int
        elif tp is float:
            kwargs["type"] = float
        else:
            kwargs["type"] = str
        parser.add_argument(*flags, **kwargs)


def config_from_args(args: argparse.Namespace) -> GRPOConfig:
    names = {f.name for f in dataclasses.fields(GRPOConfig)}
    values: dict[str, Any] = load_config_file(args.config) if getattr(args, "config", None) else {}
    values.update({k: v for k, v in vars(args).items() if k in names})
    return GRPOConfig.from_dict(values)


def run_train_grpo(args: argparse.Namespace) -> int:
    from ._trainer import train_grpo

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"tspo train-grpo: error: {exc}", file=sys.stderr)
        return 2
    out = train_grpo(config)
    print(f"trained agent saved to {out} (load it with TemporalSampler.from_pretrained({str(out)!r}))")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train-grpo`` subcommand to the ``tspo`` command line."""
    p = subparsers.add_parser(
        "train-grpo", help=_SHORT_HELP, description=_SHORT_HELP.capitalize() + ". Every GRPOConfig field is a flag.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run_train_grpo)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tspo_sampler.train_grpo", description=_SHORT_HELP)
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_train_grpo(args)


if __name__ == "__main__":
    sys.exit(main())
