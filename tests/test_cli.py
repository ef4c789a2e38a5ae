"""The ``tspo`` command line as a package: the command list, flags built from GRPOConfig's metadata, and the
rule that argparse and the cli package stay out of the library modules."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from tspo_sampler.cli import COMMANDS, build_parser
from tspo_sampler.cli.train_grpo import build_parser as train_parser
from tspo_sampler.cli.train_grpo import config_from_args
from tspo_sampler.training import GRPOConfig

SRC = Path(__file__).resolve().parents[1] / "src" / "tspo_sampler"


def test_every_command_registers_from_the_one_list():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == [c.NAME for c in COMMANDS]
    assert {"select", "index", "export", "train-grpo"} <= set(sub.choices)
    for c in COMMANDS:
        assert callable(c.register) and callable(c.run)


def test_library_modules_never_import_argparse_or_the_cli():
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "cli" or rel.name == "train_grpo.py" and len(rel.parts) == 1:
            continue  # the cli package, and the `python -m tspo_sampler.train_grpo` entry shim
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            for n in names:
                if n == "argparse" or n.split(".")[-1] == "cli" or ".cli." in n or n.startswith("tspo_sampler.cli"):
                    offenders.append(f"{rel}: {n}")
    assert not offenders


def test_grpo_flags_carry_the_fields_help_aliases_and_types():
    fields = dataclasses.fields(GRPOConfig)
    assert all(f.metadata.get("help") for f in fields), [f.name for f in fields if not f.metadata.get("help")]
    help_text = " ".join(train_parser().format_help().split())
    assert "G: rollouts per question." in help_text and "--videos VIDEO_ROOT" in help_text
    args = train_parser().parse_args([
        "--data", "x.jsonl", "-G", "4", "--max-steps", "none", "--resume", "--report-to", "jsonl",
        "--max-grad-norm", "0.5", "--no-compose-specific", "--fps", "2", "--videos", "/v",
    ])
    c = config_from_args(args)
    assert (c.data, c.num_generations, c.max_steps, c.resume, c.report_to) == ("x.jsonl", 4, None, True, ["jsonl"])
    assert (c.max_grad_norm, c.compose_specific, c.fps, c.video_root) == (0.5, False, 2.0, "/v")
    resumed = config_from_args(train_parser().parse_args(["--resume", "runs/x/checkpoint-3"]))
    assert resumed.resume == "runs/x/checkpoint-3"
    with pytest.raises(SystemExit):
        train_parser().parse_args(["--num-generations", "many"])


def test_train_grpo_flags_need_no_source_parsing():
    source = (SRC / "cli" / "train_grpo.py").read_text()
    assert "eval(" not in source and "import ast" not in source and "getsource" not in source


def test_module_entry_points_answer_help():
    for module in ("tspo_sampler.cli", "tspo_sampler.train_grpo"):
        res = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and "usage:" in res.stdout, res.stderr[-2000:]


def test_select_clip_prints_the_scores_it_ranked_by(checkpoint_dir, tmp_path, capsys):
    """Issue 14 item 5: `--method clip` printed the agent's scores, so the chosen frames did not match them."""
    import json

    import numpy as np
    import torch.nn.functional as F

    import media
    from tspo_sampler import TemporalSampler
    from tspo_sampler.cli import main

    video = media.make_video(tmp_path / "v.mp4", duration=10.0, fps=10.0)
    question = "when does the bar reach the right edge?"
    cache = tmp_path / "cache"
    argv = ["select", str(video), question, "-k", "3", "--method", "clip", "--model", str(checkpoint_dir),
            "--cache-dir", str(cache)]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    sampler = TemporalSampler.from_pretrained(checkpoint_dir, feature_cache_dir=cache)
    feats = sampler.encode_video(video)
    text = sampler.encode_text(question).float().reshape(1, -1)
    clip = F.cosine_similarity(text, feats.features.float(), dim=-1).numpy()
    assert sorted(out["positions"]) == sorted(np.argsort(-clip, kind="stable")[:3].tolist())
    assert out["scores"] == pytest.approx([float(clip[p]) for p in out["positions"]], abs=1e-5)
    assert main(argv) == 0
    table = capsys.readouterr().out.splitlines()[2:]
    assert [float(row.split()[-1]) for row in table] == pytest.approx(
        [round(float(clip[p]), 3) for p in out["positions"]], abs=1e-3)
