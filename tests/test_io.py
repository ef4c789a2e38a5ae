"""The shared JSONL module: one line format for index outputs, training metrics and the lmms-eval sidecar."""

from __future__ import annotations

import json
import subprocess
import sys

from tspo_sampler.io import JsonlAppender, append_jsonl, iter_jsonl_records, jsonl_line
from tspo_sampler.training._metrics import METRICS_FILE, MetricSinks


def test_append_jsonl_creates_folders_and_writes_one_line_per_record(tmp_path):
    path = tmp_path / "a" / "b" / "log.jsonl"
    append_jsonl(path, {"task": "t", "doc_id": 1, "tspo": {"indices": [3, 7]}})
    append_jsonl(path, {"task": "t", "doc_id": 2, "text": "café"})
    assert path.read_bytes() == jsonl_line({"task": "t", "doc_id": 1, "tspo": {"indices": [3, 7]}}) + jsonl_line(
        {"task": "t", "doc_id": 2, "text": "café"}
    )
    assert "café" in path.read_text(encoding="utf-8")  # UTF-8, not \\u escapes
    assert [r["doc_id"] for r in iter_jsonl_records(path)] == [1, 2]


def test_metrics_use_the_shared_line_format_and_repair_a_torn_line(tmp_path):
    path = tmp_path / METRICS_FILE
    path.write_bytes(jsonl_line({"step": 1, "loss": 0.5}) + b'{"step": 2, "lo')  # a run killed mid-line
    sinks = MetricSinks(tmp_path, ["jsonl"])
    sinks.open()
    sinks.write({"step": 2, "loss": 0.25}, 2)
    sinks.close()
    sinks.close()  # closing twice is allowed
    assert path.read_bytes() == jsonl_line({"step": 1, "loss": 0.5}) + jsonl_line({"step": 2, "loss": 0.25})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]


def test_appender_lines_match_the_writer(tmp_path):
    path = tmp_path / "x.jsonl"
    with JsonlAppender(path, fsync=False) as out:
        out.write({"row": 0, "indices": [1, 2]})
    assert path.read_bytes() == jsonl_line({"row": 0, "indices": [1, 2]})


def test_training_metrics_and_the_lmms_eval_plugin_do_not_import_indexing():
    code = (
        "import sys, tspo_sampler.training._metrics, tspo_sampler.integrations.lmms_eval._plugin\n"
        "print(sorted(m for m in sys.modules if m.startswith('tspo_sampler.indexing')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
