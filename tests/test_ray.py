"""Ray Data: `tspo index --engine ray` and `TSPOSelector` give the single-process records row for row, survive a
lost node, and resume after `kill -9` without redoing finished rows.

One Ray cluster (`ray.cluster_utils.Cluster`, a 2-CPU head node) serves the whole module; the lost-node test adds
a second node and removes it mid-run. Real videos, the tiny reference checkpoint, no feature cache.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from media import make_video  # noqa: E402
from tspo_sampler.cli import main  # noqa: E402
from tspo_sampler.indexing._records import parts_dir_for  # noqa: E402

MB = 1024 * 1024
NODE = {"num_cpus": 2, "object_store_memory": 100 * MB}
COLUMNS = ("status", "indices", "timestamps", "num_candidates", "duration", "fps", "error", "reason")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # no token file for the subprocess to find
    c = Cluster(initialize_head=True, connect=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        if auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """5 videos x 3 questions (interleaved), a missing video and a blank question."""
    d = tmp_path_factory.mktemp("ray-data")
    for v in range(5):
        make_video(d / f"v{v}.mp4", duration=5.0 + v, fps=8.0, size=(96, 64))
    rows = [{"id": f"{v}-{q}", "video": f"v{v}.mp4", "question": f"what happens in part {q} of video {v}?"}
            for q in range(3) for v in range(5)]
    rows.insert(4, {"id": "missing", "video": "gone.mp4", "question": "is it there?"})
    rows.insert(9, {"id": "blank", "video": "v1.mp4", "question": "   "})
    (d / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "data.jsonl"


def index_args(dataset: Path, out: Path, checkpoint_dir: Path, *extra: str) -> list[str]:
    return ["index", str(dataset), "--out", str(out), "--model", str(checkpoint_dir), "--device", "cpu",
            "--no-cache", "-k", "3", "--no-progress", "--video-root", str(dataset.parent), *extra]


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def local(dataset, checkpoint_dir) -> list[dict]:
    """The single-process engine's output."""
    out = dataset.parent / "local.jsonl"
    assert main(index_args(dataset, out, checkpoint_dir)) == 0
    recs = records(out)
    assert [(r["id"], r["error"]) for r in recs if r["status"] == "error"] == [("missing", "VideoReadError"),
                                                                                ("blank", "InvalidRow")]
    return recs


def test_engine_arguments_checked_before_ray_starts(dataset, checkpoint_dir, tmp_path, capsys):
    out = tmp_path / "x.jsonl"
    assert main(index_args(dataset, out, checkpoint_dir, "--num-workers", "2")) == 2
    assert main(index_args(dataset, tmp_path / "x.parquet", checkpoint_dir)) == 2
    assert main(index_args(dataset, out, checkpoint_dir, "--engine", "ray", "--num-workers", "0")) == 2
    assert main(index_args(dataset, out, tmp_path / "no-such-checkpoint", "--engine", "ray")) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["tspo index: error: --num-workers only apply to --engine ray",
                   f"tspo index: error: --out {tmp_path / 'x.parquet'}: Parquet output is written by --engine ray; "
                   "use a .jsonl file or add --engine ray",
                   "tspo index: error: --num-workers must be >= 1, got 0",
                   f"tspo index: error: checkpoint directory {tmp_path / 'no-such-checkpoint'} does not exist"]
    assert not out.exists() and not ray.is_initialized()


def test_engine_ray_equals_single_process(cluster, dataset, checkpoint_dir, local, tmp_path):
    out = tmp_path / "ray.jsonl"
    assert main(index_args(dataset, out, checkpoint_dir, "--engine", "ray", "--num-workers", "1",
                           "--ray-batch-size", "4")) == 0
    assert records(out) == local  # ids, order, status, indices, timestamps, error records: everything
    assert not parts_dir_for(out).exists()
    # a rerun finds every row done and changes nothing; other settings are refused before Ray runs
    before = out.read_bytes()
    assert main(index_args(dataset, out, checkpoint_dir, "--engine", "ray")) == 0
    assert out.read_bytes() == before
    assert main(index_args(dataset, out, checkpoint_dir, "--engine", "ray", "--fps", "2")) == 2


def test_selector_through_map_batches(cluster, dataset, local):
    from tspo_sampler.integrations.ray import TSPOSelector

    items = [json.loads(x) for x in dataset.read_text().splitlines()]
    ds = ray.data.from_items(items).map_batches(
        TSPOSelector, fn_constructor_args=(str(Path(__file__).parent / "data/tspo_reference/checkpoint"),),
        fn_constructor_kwargs={"k": 3, "feature_cache": False, "device": "cpu", "video_roots": [str(dataset.parent)]},
        compute=ray.data.ActorPoolStrategy(size=1), batch_size=5, num_cpus=1)
    got = {r["id"]: r for r in ds.take_all()}
    assert len(got) == len(local)
    for want in local:
        row = got[want["id"]]
        assert row["question"] == want["question"]
        for c in COLUMNS:
            value = row[c]
            value = list(value) if hasattr(value, "tolist") else value
            value = [float(x) if c == "timestamps" else int(x) for x in value] if isinstance(value, list) else value
            assert value == want.get(c), (want["id"], c)


@pytest.fixture(scope="module")
def long_rows(tmp_path_factory, checkpoint_dir) -> tuple[Path, list[dict]]:
    """4 videos of 60 to 90 s x 4 questions (and a missing video, a blank question), read at 8 fps, and the
    single-process records: rows that take long enough (~0.7 s each in a batch of one) for a node to be lost,
    or a run killed, while the run still has work left."""
    d = tmp_path_factory.mktemp("ray-long")
    for v in range(4):
        make_video(d / f"v{v}.mp4", duration=60.0 + 10 * v, fps=8.0, size=(96, 64))
    rows = [{"id": f"{v}-{q}", "video": f"v{v}.mp4", "question": f"what happens in part {q} of video {v}?"}
            for q in range(4) for v in range(4)]
    rows.insert(5, {"id": "missing", "video": "gone.mp4", "question": "is it there?"})
    rows.insert(9, {"id": "blank", "video": "v1.mp4", "question": "   "})
    (d / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = d / "local.jsonl"
    assert main(index_args(d / "data.jsonl", out, checkpoint_dir, "--fps", "8")) == 0
    return d / "data.jsonl", records(out)


def test_lost_node(cluster, long_rows, checkpoint_dir, tmp_path):
    """A second node (1 CPU) runs one of the two 1-CPU workers; it is removed mid-run, its worker restarts on
    the head node, and every row still comes out once.

    An actor holds one of the head's two CPUs until the node is removed, so the second worker can only start
    on the new node (Ray Data's spreading is a preference, not a rule)."""
    dataset, local = long_rows

    @ray.remote(num_cpus=1)
    class Hold:
        def ready(self) -> bool:
            return True

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    on_head = NodeAffinitySchedulingStrategy(cluster.head_node.node_id, soft=False)
    hold = Hold.options(scheduling_strategy=on_head).remote()
    ray.get(hold.ready.remote())
    node = cluster.add_node(num_cpus=1, object_store_memory=NODE["object_store_memory"])
    cluster.wait_for_nodes()
    out = tmp_path / "lost.jsonl"
    part = parts_dir_for(out) / "part-ray.jsonl"
    result: dict = {}
    job = threading.Thread(target=lambda: result.update(rc=main(index_args(
        dataset, out, checkpoint_dir, "--fps", "8", "--engine", "ray", "--num-workers", "2",
        "--ray-batch-size", "1"))))
    job.start()
    try:
        deadline = time.monotonic() + 240
        while not _workers_on(node.node_id) or _lines(part) < 3:  # the node holds a worker; the run has begun
            assert job.is_alive() and time.monotonic() < deadline, "the run ended before the node could be lost"
            time.sleep(0.1)
        ray.kill(hold)  # the head's second CPU is free for the lost worker's restart
        done_before = _lines(part)
        cluster.remove_node(node)
    finally:
        ray.kill(hold)
        job.join(timeout=300)
    assert result.get("rc") == 0
    assert done_before < len(local)
    assert records(out) == local  # every row exactly once, results as the single process gives them


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _workers_on(node_id: str) -> bool:
    """Whether a live Ray Data worker actor runs on the node."""
    from ray._private import state

    return any(a.get("Address", {}).get("NodeID") == node_id and a.get("State") == "ALIVE"
               and "MapWorker" in str(a.get("ActorClassName", "")) for a in state.actors().values())


def test_resume_after_kill(cluster, long_rows, checkpoint_dir, tmp_path, capsys):
    """`kill -9` of a run writing Parquet; the rerun does only the rows its journal lacks, and Ray writes the
    Parquet directory (dataset order, the single-process records) only when every row is done."""
    import pyarrow.parquet as pq

    dataset, local = long_rows
    out = tmp_path / "frames.parquet"
    journal = parts_dir_for(out) / "index.jsonl"
    part = parts_dir_for(journal) / "part-ray.jsonl"
    address = cluster.address
    args = index_args(dataset, out, checkpoint_dir, "--fps", "8", "--engine", "ray", "--num-workers", "1",
                      "--ray-batch-size", "1", "--ray-address", address)
    cmd = [sys.executable, "-m", "tspo_sampler.cli", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while _lines(part) < 3:  # the blank-question row (written first) and two rows from the worker
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert not out.exists()  # nothing half-written: OUT appears only when complete
    finished = {r["row"]: r for r in records(part)}
    assert 3 <= len(finished) < len(local)
    capsys.readouterr()
    assert main(index_args(dataset, out, checkpoint_dir, "--fps", "8", "--engine", "ray", "--num-workers", "1")) == 0
    err = capsys.readouterr().err
    assert f"{len(local) - len(finished)} rows written" in err and f"{len(finished)} already done" in err
    final = records(journal)
    assert final == local
    for i, rec in finished.items():  # the rows done before the kill are the ones written then, not redone
        assert final[i] == rec
    table = pq.read_table(out).to_pylist()
    assert [r["id"] for r in table] == [r["id"] for r in local]
    for got, want in zip(table, local, strict=True):
        assert json.loads(got["input"]) == want["input"]
        for c in COLUMNS:
            assert got[c] == want.get(c), (want["id"], c)
    assert not list(tmp_path.glob(".frames.parquet.*"))  # no temporary directory left



def test_parquet_has_typed_error_columns_when_every_row_is_ok(cluster, local, tmp_path):
    """One schema whatever the run met: ``error`` and ``reason`` are string columns, null on ok rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tspo_sampler.indexing._ray_engine import _write_parquet

    ok = [r for r in local if r["status"] == "ok"]
    out = tmp_path / "ok.parquet"
    _write_parquet(out, ok)
    table = pq.read_table(out)
    assert table.schema.field("error").type == pa.string() and table.schema.field("reason").type == pa.string()
    assert table.column("error").null_count == len(ok) == table.num_rows
    assert [r["id"] for r in table.to_pylist()] == [r["id"] for r in ok]
