"""The lmms-eval plugin through lmms-eval's own CLI: a tiny random Qwen2.5-VL on a tiny local video MCQ task.

Needs lmms-eval (``pip install "tspo-sampler[lmms-eval]"``; CI runs these in a second venv, ``-m lmms_eval``).
lmms-eval exits 0 even when evaluation raised, so every test checks the files it wrote, not only the status.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lmms_eval", reason="lmms-eval is not installed (pip install 'tspo-sampler[lmms-eval]')")

from media import make_corrupt, make_video  # noqa: E402

pytestmark = pytest.mark.lmms_eval

TASKS = Path(__file__).parent / "lmms_tasks"
TASK = "tspo_tiny_mc"
K = 4
DOCS = [  # two questions about one video (one vision pass), one about another
    {"id": "v0-q0", "video": "v0.mp4", "question": "When does the white bar reach the right edge?",
     "options": ["A. at the start", "B. in the middle", "C. at the end", "D. never"], "answer": "B"},
    {"id": "v0-q1", "video": "v0.mp4", "question": "What colour is the band at the bottom?",
     "options": ["A. red", "B. green", "C. blue", "D. white"], "answer": "A"},
    {"id": "v1-q0", "video": "v1.mp4", "question": "How long is the video?",
     "options": ["A. 1 s", "B. 3 s", "C. 5 s", "D. 10 s"], "answer": "C"},
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, checkpoint_dir):
    """Videos, dataset, task YAML and a saved tiny Qwen2.5-VL in one directory."""
    from tiny_mllms import build_qwen2_5_vl

    root = tmp_path_factory.mktemp("lmms")
    make_video(root / "v0.mp4", duration=6.0, fps=10.0)
    make_video(root / "v1.mp4", duration=5.0, fps=10.0, vfr=True)
    docs = [{**d, "video": str(root / d["video"])} for d in DOCS]
    (root / "data.json").write_text(json.dumps(docs))
    task_dir = root / "tasks"
    task_dir.mkdir()
    shutil.copy(TASKS / "tspo_tiny_mc_utils.py", task_dir / "tspo_tiny_mc_utils.py")
    (task_dir / f"{TASK}.yaml").write_text(
        f"task: {TASK}\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        f"  data_files: {{test: {json.dumps(str(root / 'data.json'))}}}\n"
        f"  cache_dir: {json.dumps(str(root / 'hf-datasets'))}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        "doc_to_visual: !function tspo_tiny_mc_utils.doc_to_visual\n"
        "doc_to_text: !function tspo_tiny_mc_utils.doc_to_text\n"
        "doc_to_target: answer\n"
        "generation_kwargs:\n  max_new_tokens: 3\n  temperature: 0\n  do_sample: false\n"
        "process_results: !function tspo_tiny_mc_utils.process_results\n"
        "metric_list:\n  - metric: accuracy\n    aggregation: mean\n    higher_is_better: true\n"
    )
    model, processor = build_qwen2_5_vl()
    mllm = root / "tiny-qwen2_5_vl"
    model.save_pretrained(mllm)
    processor.save_pretrained(mllm)
    return {"root": root, "docs": docs, "tasks": task_dir, "mllm": mllm, "checkpoint": checkpoint_dir}


def run_lmms_eval(world, out: Path, model_args: dict, model: str = "qwen2_5_vl_tspo", limit: int = 2):
    args = {"pretrained": world["mllm"], "device": "cpu", "device_map": "cpu", "tspo_model": world["checkpoint"],
            "k": K, "feature_cache_dir": world["root"] / "features", "min_pixels": 784, "max_pixels": 12544,
            **model_args}
    args = {k: v for k, v in args.items() if v is not None}
    cmd = [sys.executable, "-m", "lmms_eval", "--model", model,
           "--model_args", ",".join(f"{k}={v}" for k, v in args.items()),
           "--tasks", TASK, "--include_path", str(world["tasks"]), "--limit", str(limit), "--batch_size", "1",
           "--log_samples", "--output_path", str(out)]
    env = {**os.environ, "HF_HOME": str(world["root"] / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=world["root"])


def outputs(out: Path) -> tuple[dict, list[dict]]:
    results = sorted(out.rglob("*_results.json"))
    samples = sorted(out.rglob(f"*_samples_{TASK}.jsonl"))
    assert results and samples, f"lmms-eval wrote no results/samples under {out}: {list(out.rglob('*'))}"
    rows = [json.loads(line) for line in samples[-1].read_text().splitlines() if line.strip()]
    return json.loads(results[-1].read_text()), rows


def check_run(proc, out: Path, limit: int = 2) -> list[dict]:
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "Error during evaluation" not in log, log[-4000:]
    results, rows = outputs(out)
    assert "accuracy,none" in results["results"][TASK], results["results"]
    assert len(rows) == limit
    return rows


def test_cli_records_match_select_frames(world, tmp_path):
    from tspo_sampler import TemporalSampler

    proc = run_lmms_eval(world, tmp_path / "out", {})
    rows = check_run(proc, tmp_path / "out")
    sampler = TemporalSampler.from_pretrained(world["checkpoint"], device="cpu", feature_cache=False)
    for row in rows:
        doc = world["docs"][row["doc_id"]]
        rec = row["tspo"]
        assert rec["question"] == doc["question"]  # the doc's question, options left out
        expected = sampler.select_frames(doc["video"], doc["question"], k=K, return_frames=False)
        assert rec["indices"] == expected.indices
        assert rec["timestamps"] == pytest.approx(expected.timestamps, abs=1e-6)
        assert (rec["method"], rec["k"], rec["source"], rec["fallback"]) == ("topk", K, "tspo", False)
        assert rec["video"] == doc["video"]
    assert "0 fallbacks" in proc.stdout + proc.stderr
    # both docs ask about v0.mp4: one vision pass, one feature-cache entry
    assert len(list((world["root"] / "features").rglob("*.safetensors"))) == 1


OTHER_MODELS = {  # model id -> (tiny builder, extra model args)
    "qwen3_vl_tspo": ("build_qwen3_vl", {"min_pixels": 1024, "max_pixels": 16384}),
    "llava_onevision_tspo": ("build_llava_onevision", {"dtype": "float32"}),
    "internvl_hf_tspo": ("build_internvl", {}),
}


@pytest.mark.parametrize("model", sorted(OTHER_MODELS))
def test_cli_other_models(world, tmp_path, model):
    import tiny_mllms
    from tspo_sampler import TemporalSampler

    builder, extra = OTHER_MODELS[model]
    mllm, processor = getattr(tiny_mllms, builder)()
    saved = tmp_path / "mllm"
    mllm.save_pretrained(saved)
    processor.save_pretrained(saved)
    args = {"pretrained": saved, **extra}
    if model != "qwen3_vl_tspo":
        args.update({"min_pixels": None, "max_pixels": None})
    proc = run_lmms_eval(world, tmp_path / "out", args, model=model, limit=1)
    (row,) = check_run(proc, tmp_path / "out", limit=1)
    doc = world["docs"][row["doc_id"]]
    expected = TemporalSampler.from_pretrained(world["checkpoint"], device="cpu", feature_cache=False).select_frames(
        doc["video"], doc["question"], k=K, return_frames=False)
    assert row["tspo"]["indices"] == expected.indices and row["tspo"]["fallback"] is False


def test_cli_reads_tspo_index(world, tmp_path):
    dataset = world["root"] / "data.json"
    index = tmp_path / "index.jsonl"
    made = subprocess.run(
        [sys.executable, "-m", "tspo_sampler.cli", "index", str(dataset), "--out", str(index), "-k", "3",
         "--method", "uniform", "--model", str(world["checkpoint"]), "--device", "cpu", "--no-cache", "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    by_id = {r["id"]: r for r in map(json.loads, index.read_text().splitlines())}
    proc = run_lmms_eval(world, tmp_path / "out", {"tspo_index": index, "tspo_index_field": "id"}, limit=3)
    rows = check_run(proc, tmp_path / "out", limit=3)
    for row in rows:
        doc = world["docs"][row["doc_id"]]
        rec, want = row["tspo"], by_id[doc["id"]]
        assert rec["source"] == "index" and rec["method"] == "uniform"
        assert rec["indices"] == want["indices"] and len(rec["indices"]) == 3
        assert rec["timestamps"] == pytest.approx(want["timestamps"])


def test_cli_bad_tspo_model_fails_at_construction(world, tmp_path):
    proc = run_lmms_eval(world, tmp_path / "out", {"tspo_model": tmp_path / "no-such-checkpoint"})
    assert proc.returncode == 2, (proc.stdout + proc.stderr)[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("tspo_sampler:")]
    assert len(lines) == 1 and "tspo_model=" in lines[0] and "no-such-checkpoint" in lines[0], proc.stderr[-3000:]
    assert not list((tmp_path / "out").rglob("*_results.json"))


def test_unreadable_video_falls_back_loudly(world, tmp_path):
    """A video TSPO cannot read: a warning naming doc and video, a fallback record, the count."""
    from tspo_sampler.integrations.lmms_eval._plugin import PendingDoc
    from tspo_sampler.integrations.lmms_eval._qwen import Qwen2_5_VL_TSPO

    model = Qwen2_5_VL_TSPO(pretrained=str(world["mllm"]), device="cpu", device_map="cpu", k=K,
                            tspo_model=str(world["checkpoint"]), feature_cache="false", tspo_log=tmp_path / "t.jsonl")
    bad = make_corrupt(tmp_path / "bad.mp4")
    pending = PendingDoc("tiny", "test", 7, {"question": "Q?"}, "Q?")
    with pytest.warns(UserWarning, match=r"doc tiny/7 .*bad\.mp4"):
        assert model.tspo_select(pending, str(bad)) is None
    assert model.tspo_fallbacks == 1
    rec = model.tspo_records[("tiny", 7)]
    assert rec["fallback"] is True and rec["video"] == str(bad) and "VideoReadError" in rec["reason"]
    row = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])
    assert (row["task"], row["doc_id"], row["tspo"]["fallback"]) == ("tiny", 7, True)

    # an index built for other data is a configuration error, not a fallback
    from tspo_sampler import TSPOError

    model.tspo_index = {"v0-q0": {"id": "v0-q0", "status": "ok", "video": "other.mp4", "indices": [0],
                                  "timestamps": [0.0]}}
    doc = world["docs"][0]
    with pytest.raises(TSPOError, match="index was built for other data"):
        model.tspo_select(PendingDoc("tiny", "test", 0, doc, doc["question"]), doc["video"])
    with pytest.raises(TSPOError, match="tspo_index_field='id'"):
        model.tspo_select(PendingDoc("tiny", "test", 1, {"question": "q"}, "q"), doc["video"])
    with pytest.warns(UserWarning, match="no record with id 'nope'"):
        assert model.tspo_select(PendingDoc("tiny", "test", 2, {"id": "nope"}, "q"), doc["video"]) is None
    assert model.tspo_fallbacks == 2

    # search= goes through to select_frames and into the record
    from tspo_sampler import TemporalSampler

    model.tspo_index, model.tspo_search = None, "coarse-to-fine"
    sel = model.tspo_select(PendingDoc("tiny", "test", 3, doc, doc["question"]), doc["video"])
    want = TemporalSampler.from_pretrained(world["checkpoint"], device="cpu", feature_cache=False).select_frames(
        doc["video"], doc["question"], k=K, search="coarse-to-fine", return_frames=False)
    assert sel.indices == want.indices and model.tspo_records[("tiny", 3)]["search"] == "coarse-to-fine"


@pytest.mark.parametrize(("bad", "match"), [
    ({"search": "nope"}, "search must be one of exhaustive, coarse-to-fine, got 'nope'"),
    ({"method": "best"}, "unknown method"),
    ({"k": 0}, "k must be a positive integer"),
    ({"fps": -1}, "fps must be a positive number"),
    ({"tspo_index": "/nonexistent/index.jsonl"}, "tspo_index='/nonexistent/index.jsonl': no such file"),
])
def test_bad_arguments_fail_at_construction(world, bad, match):
    from tspo_sampler.integrations.lmms_eval._plugin import PluginConfigError
    from tspo_sampler.integrations.lmms_eval._qwen import Qwen2_5_VL_TSPO

    with pytest.raises(PluginConfigError, match=match):  # before the MLLM is even looked for
        Qwen2_5_VL_TSPO(pretrained="/nonexistent/mllm", tspo_model=str(world["checkpoint"]), **bad)


@pytest.mark.parametrize("cls_name", ["Qwen2_5_VL_TSPO", "Qwen3_VL_TSPO"])
def test_qwen_vision_info_carries_real_times(world, tmp_path, cls_name):
    """The swapped process_vision_info returns TSPO's frames with the adapters' metadata (VFR file)."""
    import numpy as np
    import qwen_vl_utils

    import tiny_mllms
    from tspo_sampler import TemporalSampler
    from tspo_sampler.integrations.lmms_eval import _qwen
    from tspo_sampler.integrations.lmms_eval._plugin import PendingDoc

    qwen3 = cls_name == "Qwen3_VL_TSPO"
    mllm, processor = (tiny_mllms.build_qwen3_vl if qwen3 else tiny_mllms.build_qwen2_5_vl)()
    mllm.save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    model = getattr(_qwen, cls_name)(pretrained=str(tmp_path / "m"), device="cpu", device_map="cpu", k=K,
                                     tspo_model=str(world["checkpoint"]), feature_cache="false")
    doc = world["docs"][2]  # the variable-frame-rate video
    model.tspo_pending.append(PendingDoc(TASK, "test", 2, doc, doc["question"]))
    element = {"type": "video", "video": doc["video"], "min_pixels": 784, "max_pixels": 16384, "nframes": 32}
    messages = [[{"role": "user", "content": [element, {"type": "text", "text": "prompt"}]}]]
    vision_info = model._tspo_vision_info(qwen_vl_utils.process_vision_info)
    _, videos, _ = vision_info(messages, return_video_kwargs=True, return_video_metadata=True,
                               image_patch_size=16 if qwen3 else 14)
    ((frames, meta),) = videos
    sel = TemporalSampler.from_pretrained(world["checkpoint"], device="cpu", feature_cache=False).select_frames(
        doc["video"], doc["question"], k=K, return_frames=False)
    assert frames.shape[0] == K
    # the same resolution as upstream's own loading of that element
    upstream = qwen_vl_utils.fetch_video({**element, "nframes": K}, image_patch_size=16 if qwen3 else 14)
    assert tuple(frames.shape[1:]) == tuple(upstream.shape[1:])
    if qwen3:  # the processor's <t seconds> markers come from frames_indices / fps: the real times
        assert np.allclose(np.asarray(meta.frames_indices) / meta.fps, sel.timestamps, atol=1e-3)
    else:  # timestamps=metadata: the source fps and the chosen source indices
        assert list(meta.frames_indices) == sel.indices and meta.fps == pytest.approx(sel.fps)
    assert model.tspo_records[(TASK, 2)]["indices"] == sel.indices
