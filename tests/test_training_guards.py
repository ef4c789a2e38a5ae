"""`tspo train-grpo` never saves a broken model with exit 0 (issue 20, "Training"): every number is checked
before anything loads, a step gone NaN stops the run with the last good checkpoint kept, save options and
sinks are checked, resumes and reruns are refused when they would mix runs, and messages name the file.

Runs use the simulated environment (tiny, seconds); the command line is the real `tspo` main()."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tspo_sampler._errors import CheckpointError, RunExistsError, TrainingDivergedError, TSPOError
from tspo_sampler.cli import main
from tspo_sampler.training import GRPOConfig, GRPOTrainer, latest_checkpoint
from tspo_sampler.training._checkpoint import OPTIMIZER_STATE, load_state
from tspo_sampler.training._simulation import SimulatedAnswerer, SyntheticVideos

NO_MODEL = "/nonexistent/tspo-model"  # loading it would fail differently: every refusal below comes first


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tspo train-grpo: error: "), err
    return err[0]


def train_cli(capsys, *flags: str) -> str:
    assert main(["train-grpo", "--init", NO_MODEL, "--data", "/nonexistent/rows.jsonl", "--no-progress",
                 *flags]) == 2
    return one_error_line(capsys)


def simulated(out: Path, **kw) -> GRPOTrainer:
    env = SyntheticVideos(num_videos=6, num_frames=20, dim=16, seed=0)
    base = dict(output_dir=str(out), max_steps=3, save_steps=1, num_generations=3, k_general=3, progress=False,
                report_to=["jsonl"], accuracy="soft", seed=1)
    base.update(kw)
    return GRPOTrainer(GRPOConfig(**base), sampler=env, answerer=SimulatedAnswerer(env), train_examples=env.examples)


# ------------------------------------------------------------------ every number, before anything loads
@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--learning-rate", "inf", "learning_rate must be finite, got inf"),
        ("--max-grad-norm", "nan", "max_grad_norm must be finite, got nan"),
        ("--temporal-weight", "nan", "temporal_weight must be finite, got nan"),
        ("--clip-range", "nan", "clip_range must be finite, got nan"),
        ("--accuracy-weight", "-inf", "accuracy_weight must be finite, got -inf"),
        ("--kl-beta", "-0.1", "kl_beta must be >= 0, got -0.1"),
        ("--adam-beta2", "1", "adam_beta2 must be < 1, got 1"),
        ("--tau-end", "0", "tau_end must be > 0, got 0"),
        ("--fps", "nan", "fps must be finite, got nan"),
        ("--num-epochs", "inf", "num_epochs must be finite, got inf"),
        ("--warmup-steps", "-1", "warmup_steps must be >= 0, got -1"),
        ("--seed", "-5", "seed must be >= 0, got -5"),
        ("--save-dtype", "int8", "save_dtype='int8' is not a compute dtype; use float32, bfloat16, float16"),
        ("--save-dtype", "bool", "save_dtype='bool' is not a compute dtype"),
        ("--save-total-limit", "-1", "save_total_limit must be >= 0, got -1"),
        ("--report-to", "nonsense", "report_to: unknown sink 'nonsense'; valid: jsonl, tensorboard, none"),
        ("--mllm-dtype", "float8", "mllm_dtype='float8' is not a compute dtype; use float32, bfloat16, float16"),
        ("--device", "foo", "device='foo' is not a torch device"),
        pytest.param("--device", "cuda", "device='cuda', but this machine has no usable cuda device",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
    ],
)
def test_cli_refuses_bad_numbers_and_names_before_loading(capsys, flag, value, message) -> None:
    line = train_cli(capsys, f"{flag}={value}")  # "=" so that -inf is a value, not an option
    field = flag[2:].replace("-", "_")
    assert message.startswith(field)
    assert f"error: {flag}{message[len(field):]}" in line, line  # named by the flag the user typed


def test_every_numeric_field_is_range_checked() -> None:
    """A new numeric field without a range in NUMERIC_RANGES would escape the checks: none may."""
    import dataclasses
    import typing

    from tspo_sampler.training._config import NUMERIC_RANGES

    hints = typing.get_type_hints(GRPOConfig)
    numeric = {f.name for f in dataclasses.fields(GRPOConfig)
               if any(t in (int, float) for t in (hints[f.name], *typing.get_args(hints[f.name])))}
    assert numeric == set(NUMERIC_RANGES)
    for name in sorted(numeric):
        with pytest.raises(ValueError, match=rf"^{name} must be"):
            GRPOConfig(**{name: math.nan})


def test_a_yaml_string_number_is_named_not_compared() -> None:
    with pytest.raises(ValueError, match=r"learning_rate must be a number, got '5e-4' \(a string: in YAML"):
        GRPOConfig(learning_rate="5e-4")


def test_save_total_limit_zero_and_none_keep_all(tmp_path) -> None:
    assert GRPOConfig(save_total_limit=0).save_total_limit == 0
    trainer = simulated(tmp_path / "run", save_total_limit=0)
    trainer.train()
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == [
        "checkpoint-1", "checkpoint-2", "checkpoint-3"]


@pytest.mark.parametrize("suffix, text, message", [
    (".yaml", "learning_rate: [1, 2\nseed: 3\n", r"not valid YAML at line \d+, column \d+"),
    (".json", '{"learning_rate": 1e-3,}', r"not valid JSON at line 1, column \d+"),
])
def test_config_file_syntax_error_is_one_line_naming_the_file(tmp_path, capsys, suffix, text, message) -> None:
    config = tmp_path / f"bad{suffix}"
    config.write_text(text)
    line = train_cli(capsys, "--config", str(config))
    assert f"error: {config}: " in line
    import re

    assert re.search(message, line), line


# ------------------------------------------------------------------ a step that goes NaN
def test_a_diverging_step_stops_naming_it_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    """A finite but absurd learning rate blows the agent's weights up after step 1: step 2's loss is NaN."""
    out = tmp_path / "run"
    trainer = simulated(out, learning_rate=1e30)
    with pytest.raises(TrainingDivergedError, match=r"^step 2: the loss \(nan\) is not finite; .*"
                                                    r"the last good checkpoint is .*checkpoint-1\b") as info:
        trainer.train()
    assert isinstance(info.value, TSPOError)
    assert latest_checkpoint(out) == out / "checkpoint-1"
    assert not (out / "model.safetensors").exists() and not (out / "checkpoint-2").exists()
    good = load_state(out / "checkpoint-1" / OPTIMIZER_STATE)["agent"]
    assert all(torch.isfinite(v).all() for v in good.values())


# ------------------------------------------------------------------ resume and rerun
@pytest.fixture
def finished(tmp_path) -> Path:
    out = tmp_path / "run"
    simulated(out, max_steps=2, k_general=3).train()
    return out


def test_resume_with_changed_settings_is_refused_naming_them(finished, capsys) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint-2 was trained with other settings: k_general 3 -> 2; "
                                              r"learning_rate 0.0005 -> 0.001\. .*--resume-anyway"):
        simulated(finished, resume=True, k_general=2, learning_rate=1e-3)
    line = train_cli(capsys, "--output-dir", str(finished), "--resume", "--k-general", "2")  # names the field
    assert "k_general 3 -> 2" in line and "--resume-anyway" in line
    resumed = simulated(finished, resume=True, k_general=2, max_steps=3, resume_anyway=True)
    resumed.train()
    assert resumed.global_step == 3


def test_resume_with_only_bookkeeping_changed_is_fine(finished) -> None:
    resumed = simulated(finished, resume=True, max_steps=3, save_total_limit=5, report_to=[], logging_steps=2)
    resumed.train()
    assert resumed.global_step == 3


def test_rerun_into_a_finished_directory_needs_resume_or_overwrite(finished, capsys) -> None:
    before = (finished / "model.safetensors").read_bytes()
    with pytest.raises(RunExistsError, match=r"holds an earlier run \(checkpoint-1, checkpoint-2, trainer_state"):
        simulated(finished)
    line = train_cli(capsys, "--output-dir", str(finished))
    assert "holds an earlier run" in line and "--overwrite" in line
    assert (finished / "model.safetensors").read_bytes() == before
    again = simulated(finished, max_steps=1, overwrite=True, seed=2)
    again.train()
    assert sorted(p.name for p in finished.glob("checkpoint-*")) == ["checkpoint-1"]
    metrics = [json.loads(s) for s in (finished / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1]  # the earlier run's lines were deleted, not appended to


def test_resume_of_a_missing_directory_says_it_does_not_exist(tmp_path, capsys) -> None:
    missing = tmp_path / "nope" / "checkpoint-9"
    line = train_cli(capsys, "--output-dir", str(tmp_path / "out"), "--resume", str(missing))
    assert line.endswith(f"resume: checkpoint directory {missing} does not exist")


def test_damaged_trainer_state_names_the_file(finished) -> None:
    state = finished / "checkpoint-2" / "trainer_state.json"
    state.write_text('{"global_step": 2 "max_steps": 2}')
    with pytest.raises(CheckpointError, match=rf"{state}: damaged or unreadable \(Expecting ',' delimiter"):
        simulated(finished, resume=True).train()
    state.write_text('{"max_steps": 2}')
    with pytest.raises(CheckpointError, match=rf"{state}: damaged \(no integer global_step\)"):
        simulated(finished, resume=True).train()
