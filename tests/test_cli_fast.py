"""Issue 21: ``tspo --help``, ``tspo --version`` and ``tspo COMMAND --help`` import neither torch nor transformers.

Checked in a fresh interpreter through ``sys.modules`` (never the clock): the parsers of every command are built
from modules that keep their heavy imports inside ``run``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tspo_sampler.cli import COMMAND_MODULES, COMMANDS

HEAVY = ("torch", "transformers", "open_clip", "gradio", "ray", "fastapi")

_PROBE = """
import contextlib, io, json, sys
names = sys.argv.pop(1)
from tspo_sampler.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        status = main(sys.argv[1:])
    except SystemExit as exc:
        status = exc.code
heavy = [m for m in names.split(",") if m in sys.modules]
print(json.dumps({"status": status, "out": out.getvalue(), "heavy": heavy}))
"""


def _probe(*argv: str) -> dict:
    cmd = [sys.executable, "-c", _PROBE, ",".join(HEAVY), *argv]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_help_and_version_import_no_torch():
    for argv in (["--help"], ["--version"], []):
        got = _probe(*argv)
        assert got["heavy"] == [], (argv, got["heavy"])
        assert got["status"] in (0, 2)
    assert "tspo-sampler " in _probe("--version")["out"]
    assert all(c.NAME in _probe("--help")["out"] for c in COMMANDS)


def test_every_command_help_imports_no_torch():
    for command in COMMANDS:
        got = _probe(command.NAME, "--help")
        assert got["status"] == 0 and "usage:" in got["out"], command.NAME
        assert got["heavy"] == [], (command.NAME, got["heavy"])


def test_package_import_is_lazy_and_keeps_its_names():
    code = ("import sys, tspo_sampler; light = 'torch' not in sys.modules; "
            "from tspo_sampler import TemporalSampler, SELECTION_METHODS, example_video; "
            "import tspo_sampler as t; print(light, all(hasattr(t, n) for n in t.__all__))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.split() == ["True", "True"], res.stderr[-2000:]


def test_every_command_module_is_listed_and_the_constants_agree():
    from tspo_sampler import SELECTION_METHODS, export, indexing
    from tspo_sampler.cli import _common

    cli_dir = Path(COMMANDS[0].__file__).parent
    modules = {p.stem for p in cli_dir.glob("*.py") if not p.stem.startswith("_")}
    assert modules == set(COMMAND_MODULES)
    assert tuple(SELECTION_METHODS) == _common.SELECTION_METHOD_NAMES
    assert _common.DATASET_FORMATS == indexing.DATASET_FORMATS
    assert _common.DEFAULT_TEXT_BATCH_SIZE == indexing.DEFAULT_TEXT_BATCH_SIZE
    assert _common.EXPORT_FORMATS == export.EXPORT_FORMATS
