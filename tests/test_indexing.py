"""`tspo index` / `tspo export`: dataset reading, sharding, crash-safe resume, merge order, error records,
the export formats, and real multi-process runs under `accelerate launch` including a kill and a resume."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from launchers import LAUNCHERS, accelerate_launch
from tspo_sampler._errors import VideoReadError
from tspo_sampler._result import Selection
from tspo_sampler.export import ExportError, export_index, load_index, to_frame_index_json, to_id_map
from tspo_sampler.indexing import IndexRow, index_dataset, read_dataset
from tspo_sampler.indexing._records import collect_records, parts_dir_for, settings_path
from tspo_sampler.indexing._run import shard_rows
from tspo_sampler.io import JsonlAppender, iter_jsonl_records, repair_jsonl
from tspo_sampler.scoring._selection import select_indices
from tspo_sampler.video._sources import resolve_video

# ------------------------------------------------------------------------------------------ helpers


class FakeSampler:
    """Deterministic stand-in for TemporalSampler that counts what it is asked to do."""

    def __init__(self, fail: tuple[str, ...] = ("bad",), dim: int = 8) -> None:
        self.fail = fail
        self.dim = dim
        self.videos: list[str] = []
        self.text_batches: list[list[str]] = []
        self.lock = threading.Lock()

    @staticmethod
    def _vec(text: str, n: int, dim: int) -> torch.Tensor:
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
        return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32))

    def encode_video(self, video, *, fps=1.0, max_candidates=None, candidate_mode="fps", progress=None,
                     use_cache=True, decoder="auto"):
        with self.lock:
            self.videos.append(str(video))
        if any(f in Path(video).name for f in self.fail):
            raise VideoReadError(Path(video).name, "not a readable media file")
        t = 20
        return SimpleNamespace(
            features=self._vec(Path(video).name, t, self.dim),
            candidate_indices=np.arange(t, dtype=np.int64) * 25,
            candidate_timestamps=np.arange(t, dtype=np.float64),
            duration=float(t),
            fps=25.0,
            source=str(video),
        )

    def encode_text(self, questions):
        with self.lock:
            self.text_batches.append(list(questions))
        return torch.cat([self._vec(q, 1, self.dim) for q in questions])

    def select_frames(self, video, question, k=16, *, method="topk", fps=1.0, max_candidates=None, window_size=None,
                      return_frames=True, progress=None, candidate_mode="fps", search="exhaustive", decoder="auto",
                      coarse_step=None, max_encoded=None):
        feats = self.encode_video(video, fps=fps, max_candidates=max_candidates, candidate_mode=candidate_mode)
        return self.select_from_features(feats, question, k, method=method)

    def select_from_features(self, video_features, question, k=16, *, method="topk", window_size=None,
                             search="exhaustive"):
        feats = video_features
        text = self.encode_text([question])[0] if isinstance(question, str) else question
        scores = (feats.features @ text.reshape(-1)).numpy()
        pos = select_indices(scores, k, method)
        return Selection(
            indices=[int(feats.candidate_indices[p]) for p in pos],
            timestamps=[float(feats.candidate_timestamps[p]) for p in pos],
            frames=None,
            scores=scores,
            candidate_indices=list(feats.candidate_indices),
            candidate_timestamps=list(feats.candidate_timestamps),
            method=method,
            duration=feats.duration,
            fps=feats.fps,
            positions=pos,
        )


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sample_rows(n_videos: int = 5, per_video: int = 3, bad: tuple[int, ...] = (2,)) -> list[dict]:
    rows = []
    for q in range(per_video):  # interleaved: rows about one video are not adjacent
        for v in range(n_videos):
            name = f"bad{v}.mp4" if v in bad else f"v{v}.mp4"
            rows.append({"id": f"{v}-{q}", "video": name, "question": f"question {q} about video {v}?",
                         "extra": v * 10 + q})
    return rows


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------------ datasets


def test_read_dataset_formats(tmp_path):
    rows = [{"id": "a", "video": "x.mp4", "question": "what?", "n": 1},
            {"id": "b", "video": "y.mp4", "question": "who?", "n": 2}]
    write_jsonl(tmp_path / "d.jsonl", rows)
    (tmp_path / "d.json").write_text(json.dumps(rows))
    (tmp_path / "o.json").write_text(json.dumps({r["id"]: {k: v for k, v in r.items() if k != "id"} for r in rows}))
    (tmp_path / "d.csv").write_text("id,video,question,n\na,x.mp4,what?,1\nb,y.mp4,who?,2\n")
    (tmp_path / "d.tsv").write_text("id\tvideo\tquestion\tn\na\tx.mp4\twhat?\t1\nb\ty.mp4\twho?\t2\n")
    for name in ("d.jsonl", "d.json", "o.json", "d.csv", "d.tsv"):
        got = read_dataset(tmp_path / name)
        want = [(0, "a", "x.mp4", "what?"), (1, "b", "y.mp4", "who?")]
        assert [(r.row, r.id, r.video, r.question) for r in got] == want, name
        assert all(r.problem is None for r in got)
        assert str(got[1].input["n"]) == "2"


def test_read_dataset_fields_template_and_bad_rows(tmp_path):
    rows = [
        {"question_id": "001-1", "videoID": "abc", "question": "what colour?"},
        {"question_id": "001-2", "videoID": "abc", "question": "  "},
        {"question_id": "001-3", "question": "where?"},
    ]
    path = write_jsonl(tmp_path / "anno.jsonl", rows)
    got = read_dataset(path, id_field="question_id", video_template="videos/{videoID}.mp4")
    assert [r.id for r in got] == ["001-1", "001-2", "001-3"]
    assert got[0].video == "videos/abc.mp4" and got[0].problem is None
    assert "no question" in got[1].problem
    assert "--video-template" in got[2].problem
    with pytest.raises(ValueError, match="no row has a 'video' column"):
        read_dataset(path)
    (tmp_path / "broken.jsonl").write_text('{"video": "a", "question": "b"}\n{oops\n')
    with pytest.raises(ValueError, match="broken.jsonl:2"):
        read_dataset(tmp_path / "broken.jsonl")
    with pytest.raises(ValueError, match="suffix"):
        read_dataset(write_jsonl(tmp_path / "d.txt", rows))
    with pytest.raises(FileNotFoundError):
        read_dataset(tmp_path / "missing.jsonl")


def test_resolve_video(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "v.mp4").write_bytes(b"x")
    assert resolve_video("v.mp4", [tmp_path / "a", tmp_path / "b"]) == str(tmp_path / "b" / "v.mp4")
    assert resolve_video("w.mp4", [tmp_path / "a", tmp_path / "b"]) == str(tmp_path / "a" / "w.mp4")
    assert resolve_video(str(tmp_path / "z.mp4"), [tmp_path / "a"]) == str(tmp_path / "z.mp4")


@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shard_rows_partitions_whole_videos(world):
    rows = [IndexRow(i, str(i), f"v{(i * 7) % 11}.mp4", f"q{i}") for i in range(60)]
    shards = [shard_rows(rows, r, world) for r in range(world)]
    seen = sorted(r.row for s in shards for r in s)
    assert seen == list(range(60))  # every row exactly once
    for s in shards:
        assert [r.row for r in s] == sorted(r.row for r in s)
    owners = {}
    for rank, s in enumerate(shards):
        for r in s:
            assert owners.setdefault(r.video, rank) == rank  # a video never spans two processes
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 6  # balanced to within one video's rows (at most 6 here)
    assert shards == [shard_rows(rows, r, world) for r in range(world)]  # deterministic
    with pytest.raises(ValueError):
        shard_rows(rows, world, world)


# ------------------------------------------------------------------------------------------ crash-safe files


def test_repair_and_read_half_written_line(tmp_path):
    p = tmp_path / "part.jsonl"
    with JsonlAppender(p) as sink:
        sink.write({"row": 0, "a": 1})
        sink.write({"row": 1, "a": 2})
    good = p.read_bytes()
    with p.open("ab") as f:
        f.write(b'{"row": 2, "a": ')  # what a kill in the middle of a write leaves
    assert [r["row"] for r in iter_jsonl_records(p)] == [0, 1]
    assert repair_jsonl(p) == len(b'{"row": 2, "a": ')
    assert p.read_bytes() == good
    assert repair_jsonl(p) == 0
    with JsonlAppender(p) as sink:  # opening repairs too
        sink.write({"row": 2, "a": 3})
    assert [r["row"] for r in iter_jsonl_records(p)] == [0, 1, 2]
    q = tmp_path / "only-partial.jsonl"
    q.write_bytes(b'{"row": 0')
    assert repair_jsonl(q) == 9 and q.read_bytes() == b""


# ---------------------------------------------------------------------------------------- index_dataset (fake sampler)


def test_index_writes_every_row_in_order_with_errors(tmp_path):
    raw = sample_rows() + [{"id": "blank", "video": "v0.mp4", "question": ""}]
    rows = read_dataset(write_jsonl(tmp_path / "d.jsonl", raw))
    fake = FakeSampler()
    out = tmp_path / "out.jsonl"
    stats = index_dataset(fake, rows, out, k=4, text_batch_size=4, progress=False)
    recs = lines(out)
    assert [r["row"] for r in recs] == list(range(len(raw)))
    assert [r["id"] for r in recs] == [r["id"] for r in raw]
    assert not parts_dir_for(out).exists()
    ok = [r for r in recs if r["status"] == "ok"]
    bad = [r for r in recs if r["status"] != "ok"]
    assert len(ok) == 12 and len(bad) == 4 and stats.errors == 4 and stats.written == 16
    assert {r["error"] for r in bad} == {"VideoReadError", "InvalidRow"}
    assert all(r["reason"] for r in bad)
    for r in ok:
        assert len(r["indices"]) == 4 and r["indices"] == sorted(r["indices"])
        assert r["timestamps"] == [i / 25 for i in r["indices"]]
        assert r["method"] == "topk" and r["k"] == 4 and r["num_candidates"] == 20
        assert r["input"]["extra"] == raw[r["row"]]["extra"]
    # one decode per video, whatever the number of questions about it
    assert sorted(Path(v).name for v in fake.videos) == sorted({r["video"] for r in raw})
    # questions are encoded in batches of at most text_batch_size, each question once
    assert max(len(b) for b in fake.text_batches) == 4
    assert sorted(q for b in fake.text_batches for q in b) == sorted(r["question"] for r in raw if r["question"])


def test_resume_skips_done_rows_and_retries_errors_on_request(tmp_path):
    rows = read_dataset(write_jsonl(tmp_path / "d.jsonl", sample_rows()))
    out = tmp_path / "out.jsonl"
    index_dataset(FakeSampler(), rows, out, k=3, progress=False)
    first = out.read_bytes()
    again = FakeSampler()
    stats = index_dataset(again, rows, out, k=3, progress=False)
    assert stats.skipped == len(rows) and stats.written == 0 and again.videos == []
    assert out.read_bytes() == first
    # the broken video is fixed: --retry-errors redoes exactly its rows
    fixed = FakeSampler(fail=())
    stats = index_dataset(fixed, rows, out, k=3, retry_errors=True, progress=False)
    assert stats.written == 3 and [Path(v).name for v in fixed.videos] == ["bad2.mp4"]
    assert all(r["status"] == "ok" for r in lines(out))
    # overwrite starts over
    stats = index_dataset(FakeSampler(), rows, out, k=3, overwrite=True, progress=False)
    assert stats.written == len(rows) and out.read_bytes() == first


def test_resume_refuses_an_output_of_another_dataset(tmp_path):
    out = tmp_path / "out.jsonl"
    index_dataset(FakeSampler(), read_dataset(write_jsonl(tmp_path / "a.jsonl", sample_rows())), out, progress=False)
    other = sample_rows()
    other[0]["question"] = "a different question?"
    with pytest.raises(ValueError, match="does not match the dataset"):
        index_dataset(FakeSampler(), read_dataset(write_jsonl(tmp_path / "b.jsonl", other)), out, progress=False)


def _run_ranks(world, rows, out, **kw):
    """index_dataset in `world` threads with a real barrier, like processes under accelerate."""
    barrier = threading.Barrier(world)
    results, errors = [None] * world, []

    def work(rank):
        try:
            results[rank] = index_dataset(FakeSampler(), rows, out, rank=rank, world_size=world,
                                          barrier=barrier.wait, progress=False, **kw)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_data_parallel_parts_merge_in_input_order(tmp_path):
    rows = read_dataset(write_jsonl(tmp_path / "d.jsonl", sample_rows(n_videos=7)))
    single = tmp_path / "single.jsonl"
    index_dataset(FakeSampler(), rows, single, k=5, progress=False)
    out = tmp_path / "out.jsonl"
    stats = _run_ranks(3, rows, out, k=5)
    assert sum(s.written for s in stats) == len(rows)
    assert all(s.written > 0 for s in stats)
    assert [s.merged for s in stats] == [True, False, False]
    assert out.read_bytes() == single.read_bytes()
    assert not parts_dir_for(out).exists()


def test_interrupted_parts_resume_with_another_world_size(tmp_path):
    """A run killed mid-way (parts with a torn last line, no OUT) resumes with a different number of
    processes and still produces the uninterrupted file."""
    rows = read_dataset(write_jsonl(tmp_path / "d.jsonl", sample_rows(n_videos=6)))
    reference = tmp_path / "reference.jsonl"
    index_dataset(FakeSampler(), rows, reference, k=4, progress=False)
    full = lines(reference)
    out = tmp_path / "out.jsonl"
    parts = parts_dir_for(out)
    parts.mkdir()
    # what 2 killed processes left: a few complete lines each, one torn line
    with (JsonlAppender(parts / "part-00000-of-00002.jsonl") as a,
          JsonlAppender(parts / "part-00001-of-00002.jsonl") as b):
        for rec in full[:3]:
            a.write(rec)
        for rec in full[5:7]:
            b.write(rec)
    with (parts / "part-00001-of-00002.jsonl").open("ab") as f:
        f.write(json.dumps(full[8]).encode()[:30])
    assert sorted(collect_records(out, rows)) == [0, 1, 2, 5, 6]
    stats = _run_ranks(3, rows, out, k=4)
    assert sum(s.skipped for s in stats) == 3 * 5
    assert sum(s.written for s in stats) == len(rows) - 5
    assert out.read_bytes() == reference.read_bytes()
    assert not parts.exists()


# ------------------------------------------------------------------------------------------ export


def test_export_formats(tmp_path):
    raw = [{"question_id": f"00{i}-1", "video": f"v{i}.mp4", "question": f"q{i}?", "options": ["A", "B"]}
           for i in range(3)]
    rows = read_dataset(write_jsonl(tmp_path / "d.jsonl", raw), id_field="question_id")
    out = tmp_path / "idx.jsonl"
    index_dataset(FakeSampler(), rows, out, k=4, progress=False)
    recs = load_index(out)
    # the reference's frame-index JSON: the rows' own fields plus ascending float frame_idx
    fi = tmp_path / "fi.json"
    assert export_index(out, fi) == 3
    data = json.loads(fi.read_text())
    assert [{k: v for k, v in e.items() if k != "frame_idx"} for e in data] == raw
    assert data[0]["frame_idx"] == [float(i) for i in recs[0]["indices"]]
    assert all(isinstance(x, float) for x in data[0]["frame_idx"])
    assert data[0]["frame_idx"] == sorted(data[0]["frame_idx"])
    # annotations of the benchmark (other order, more fields), matched on a key field
    anno = [{"question_id": "002-1", "video_id": "002", "answer": "B"}, {"question_id": "000-1", "answer": "A"},
            {"question_id": "001-1", "answer": "C"}]
    (tmp_path / "anno.json").write_text(json.dumps(anno))
    export_index(out, fi, annotations=tmp_path / "anno.json", key_field="question_id")
    data = json.loads(fi.read_text())
    assert [e["question_id"] for e in data] == ["002-1", "000-1", "001-1"] and data[0]["video_id"] == "002"
    assert data[1]["frame_idx"] == [float(i) for i in recs[0]["indices"]]
    with pytest.raises(ExportError, match="no index record"):
        to_frame_index_json(recs, annotations=anno + [{"question_id": "999"}], key_field="question_id")
    kept = to_frame_index_json(recs, annotations=anno + [{"question_id": "999"}], key_field="question_id",
                               allow_unmatched=True)
    assert "frame_idx" not in kept[-1]
    # id-map
    idmap = tmp_path / "m.json"
    export_index(out, idmap, format="id-map")
    assert json.loads(idmap.read_text()) == {r["id"]: r["indices"] for r in recs}


def test_export_refuses_errors_gaps_and_duplicates(tmp_path):
    rows = read_dataset(write_jsonl(tmp_path / "d.jsonl", sample_rows(n_videos=3)))
    out = tmp_path / "idx.jsonl"
    index_dataset(FakeSampler(), rows, out, k=4, progress=False)
    with pytest.raises(ExportError, match="error records"):
        export_index(out, tmp_path / "x.json")
    n = export_index(out, tmp_path / "x.json", allow_errors=True)
    data = json.loads((tmp_path / "x.json").read_text())
    assert n == len(rows) and sum(e["frame_idx"] == [] for e in data) == 3
    assert len(to_id_map(load_index(out))) == len(rows) - 3
    gappy = tmp_path / "gappy.jsonl"
    gappy.write_text("".join(line + "\n" for i, line in enumerate(out.read_text().splitlines()) if i != 1))
    with pytest.raises(ExportError, match="incomplete"):
        export_index(gappy, tmp_path / "y.json", allow_errors=True)
    recs = load_index(out)
    with pytest.raises(ExportError, match="more than once"):
        to_id_map([recs[0], {**recs[0], "row": 99}])


# ---------------------------------------------------------------------------------------- real videos, real processes

N_VIDEOS = 8
QUESTIONS = ("where is the bright bar?", "what colour is the band?", "when does the scene change?")
INDEX_ARGS = ["-k", "6", "--fps", "4", "--no-cache", "--no-progress", "--text-batch-size", "2"]


@pytest.fixture(scope="module")
def video_dataset(tmp_path_factory):
    from media import make_corrupt, make_video

    root = tmp_path_factory.mktemp("index-videos")
    for v in range(N_VIDEOS):
        make_video(root / f"clip{v}.mp4", duration=24 + 2 * v, fps=4, size=(96, 64))
    make_corrupt(root / "broken.mp4")
    rows = []
    for q in QUESTIONS:
        for v in range(N_VIDEOS):
            rows.append({"id": f"c{v}-{QUESTIONS.index(q)}", "video": f"clip{v}.mp4", "question": q})
    rows.insert(5, {"id": "broken-0", "video": "broken.mp4", "question": QUESTIONS[0]})
    rows.insert(11, {"id": "missing-0", "video": "missing.mp4", "question": QUESTIONS[1]})
    return write_jsonl(root / "dataset.jsonl", rows)


def _launch(dataset: Path, out: Path, checkpoint_dir: Path, home: Path, launcher: str) -> subprocess.Popen:
    """`accelerate launch ... -m tspo_sampler.cli index` with 2 CPU processes (see :mod:`launchers`)."""
    launch, launch_env = accelerate_launch(launcher, home)
    cmd = [
        *launch, "-m", "tspo_sampler.cli", "index", str(dataset), "--out", str(out), "--model", str(checkpoint_dir),
        "--device", "cpu", *INDEX_ARGS,
    ]  # fmt: skip
    env = {**os.environ, **launch_env, "HF_HOME": str(home), "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, cwd=dataset.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process under it (torchrun starts its workers in new sessions)."""
    import psutil

    try:
        family = [psutil.Process(proc.pid)]
        family += family[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for p in reversed(family):
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def _finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        out, _ = proc.communicate()
        pytest.fail(f"accelerate launch timed out:\n{out.decode(errors='replace')[-3000:]}")
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    return text


def _complete_lines(parts: Path) -> int:
    if not parts.is_dir():
        return 0
    n = 0
    for p in parts.glob("part-*.jsonl"):
        try:
            n += p.read_bytes().count(b"\n")
        except FileNotFoundError:
            pass
    return n


@pytest.fixture(scope="module", params=LAUNCHERS)
def launcher(request):
    if request.param == "mpirun" and shutil.which("mpirun") is None:  # skip before the module's fixtures run
        pytest.skip("needs an MPI launcher (apt-get install mpich); .ci/run installs one")
    return request.param


@pytest.fixture(scope="module")
def uninterrupted(video_dataset, checkpoint_dir, tmp_path_factory, launcher):
    out = tmp_path_factory.mktemp("uninterrupted") / "frames.jsonl"
    log = _finish(_launch(video_dataset, out, checkpoint_dir, out.parent, launcher))
    assert "[0/2]" in log and "[1/2]" in log, log[-2000:]  # two processes really took part
    return out


def test_accelerate_two_processes_equal_one_process(uninterrupted, video_dataset, uncached_sampler, tmp_path):
    recs = lines(uninterrupted)
    n_rows = N_VIDEOS * len(QUESTIONS) + 2
    assert [r["row"] for r in recs] == list(range(n_rows))
    errors = {r["id"]: r for r in recs if r["status"] != "ok"}
    assert set(errors) == {"broken-0", "missing-0"}
    assert errors["missing-0"]["error"] == "VideoReadError" and "does not exist" in errors["missing-0"]["reason"]
    for r in recs:
        if r["status"] == "ok":
            assert len(r["indices"]) == 6 and r["num_candidates"] >= 24 * 4
            assert r["timestamps"] == sorted(r["timestamps"])
    # the same dataset in one in-process run gives the same file, byte for byte
    single = tmp_path / "single.jsonl"
    rows = read_dataset(video_dataset)
    index_dataset(uncached_sampler, rows, single, k=6, fps=4.0, video_roots=[video_dataset.parent],
                  text_batch_size=2, progress=False)
    assert single.read_bytes() == uninterrupted.read_bytes()
    # and it exports
    fi = tmp_path / "TSPO_Test_frameIdx.json"
    assert export_index(uninterrupted, fi, allow_errors=True) == n_rows


def test_kill_then_resume_gives_the_uninterrupted_file(uninterrupted, video_dataset, checkpoint_dir, tmp_path,
                                                        launcher):
    out = tmp_path / "frames.jsonl"
    parts = parts_dir_for(out)
    total = N_VIDEOS * len(QUESTIONS) + 2
    proc = _launch(video_dataset, out, checkpoint_dir, tmp_path, launcher)
    deadline = time.monotonic() + 120
    while _complete_lines(parts) < 4:
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill_tree(proc)
            log = proc.communicate()[0].decode(errors="replace")[-3000:]
            pytest.fail(f"run ended before it could be killed:\n{log}")
        time.sleep(0.02)
    _kill_tree(proc)  # every process of the launch, mid-run
    proc.communicate()
    done = _complete_lines(parts)
    assert 4 <= done < total and not out.exists()
    # a kill can also land in the middle of a write: leave a torn line at the end of one part
    part = sorted(parts.glob("part-*.jsonl"))[0]
    with part.open("ab") as f:
        f.write(b'{"row": 3, "id": "c3-0", "video": "clip3.mp4", "quest')
    log = _finish(_launch(video_dataset, out, checkpoint_dir, tmp_path, launcher))
    assert "already done" in log
    # both processes print a summary to one pipe, and print() writes the line and its newline apart, so two
    # summaries can share a line: count every "N already done", not one per line
    skipped = [int(n) for n in re.findall(r"(\d+) already done", log)]
    assert skipped == [done, done], log[-3000:]  # both processes saw the same finished rows
    assert out.read_bytes() == uninterrupted.read_bytes()
    assert not parts.exists()


def test_cli_index_and_export_single_process(video_dataset, checkpoint_dir, tmp_path, capsys, monkeypatch):
    from tspo_sampler.cli import main

    monkeypatch.chdir(video_dataset.parent)
    small = write_jsonl(tmp_path / "small.jsonl", [json.loads(x) for x in video_dataset.read_text().splitlines()[:6]])
    out = tmp_path / "small.frames.jsonl"
    args = ["index", str(small), "--out", str(out), "--model", str(checkpoint_dir), "--device", "cpu",
            "--video-root", str(video_dataset.parent), "--cache-dir", str(tmp_path / "cache"), "-k", "3",
            "--method", "bin-max", "--no-progress", "--scores"]
    assert main(args) == 0
    recs = lines(out)
    assert len(recs) == 6 and {r["method"] for r in recs if r["status"] == "ok"} == {"bin-max"}
    ok = [r for r in recs if r["status"] == "ok"][0]
    assert len(ok["scores"]) == len(ok["candidate_indices"]) == ok["num_candidates"]
    assert main(args) == 0  # resume: nothing left to do
    assert "6 already done" in capsys.readouterr().err
    assert main(["export", str(out), "--out", str(tmp_path / "fi.json")]) == 2  # has an error record
    assert "error records" in capsys.readouterr().err
    assert main(["export", str(out), "--out", str(tmp_path / "fi.json"), "--allow-errors"]) == 0
    assert len(json.loads((tmp_path / "fi.json").read_text())) == 6


# ---------------------------------------------------------------------------------------- settings of a resumed run


def test_resume_with_other_settings_refuses_unless_asked(tmp_path):
    """Issue 11 item 8: a rerun with -k 4 --method uniform after -k 8 --method bin-max used to print "already
    done" and keep every k=8 record; now it names the differing settings, or mixes on purpose, or starts again."""
    rows = read_dataset(write_jsonl(tmp_path / "d.jsonl", sample_rows(n_videos=3, per_video=2, bad=())))
    out = tmp_path / "out.jsonl"
    first = {"k": 8, "method": "bin-max", "model": "ckpt-a", "progress": False}
    index_dataset(FakeSampler(), rows[:4], out, **first)
    runs = json.loads(settings_path(out).read_text())["runs"]
    assert runs[0]["settings"] == {"k": 8, "method": "bin-max", "fps": 1.0, "max_candidates": None,
                                   "window_size": None, "candidates": "fps", "model": "ckpt-a",
                                   "search": "exhaustive"}
    index_dataset(FakeSampler(), rows, out, **first)  # same settings: resumes quietly
    assert len(lines(out)) == len(rows)

    sampler = FakeSampler()
    with pytest.raises(ValueError, match=r"other settings \(k 8 -> 4; method 'bin-max' -> 'uniform'\).*--overwrite"):
        index_dataset(sampler, rows, out, k=4, method="uniform", model="ckpt-a", progress=False)
    assert sampler.videos == [] and all(r["k"] == 8 and "settings" not in r for r in lines(out))
    with pytest.raises(ValueError, match="model 'ckpt-a' -> 'ckpt-b'"):
        index_dataset(FakeSampler(), rows, out, **{**first, "model": "ckpt-b"})

    # a deliberate mix: the rows this run writes say how they were made
    rows2 = read_dataset(write_jsonl(tmp_path / "d2.jsonl", sample_rows(n_videos=4, per_video=2, bad=())))
    out2 = tmp_path / "out2.jsonl"
    index_dataset(FakeSampler(), rows2[:4], out2, **first)
    index_dataset(FakeSampler(), rows2, out2, k=4, method="uniform", model="ckpt-a", progress=False,
                  resume_anyway=True)
    recs = lines(out2)
    assert [("settings" in r) for r in recs] == [False] * 4 + [True] * 4
    assert all(r["settings"]["k"] == 4 and r["settings"]["method"] == "uniform" and len(r["indices"]) == 4
               for r in recs[4:])
    runs = json.loads(settings_path(out2).read_text())["runs"]
    assert [(r["settings"]["k"], r["mixed"]) for r in runs] == [(8, False), (4, True)]

    # --overwrite starts again: one run, no mix
    index_dataset(FakeSampler(), rows2, out2, k=4, method="uniform", model="ckpt-a", progress=False, overwrite=True)
    assert all(r["k"] == 4 and "settings" not in r for r in lines(out2))
    assert len(json.loads(settings_path(out2).read_text())["runs"]) == 1


def test_resume_of_an_output_without_settings_compares_its_records(tmp_path):
    rows = read_dataset(write_jsonl(tmp_path / "d.jsonl", sample_rows(n_videos=2, per_video=2, bad=())))
    out = tmp_path / "out.jsonl"
    index_dataset(FakeSampler(), rows[:2], out, k=8, method="bin-max", progress=False)
    settings_path(out).unlink()  # as written before settings were recorded
    with pytest.raises(ValueError, match="k 8 -> 3"):
        index_dataset(FakeSampler(), rows, out, k=3, method="bin-max", progress=False)


@pytest.mark.parametrize("suffix", ["jsonl", "json", "csv"])
def test_non_utf8_dataset_names_the_file_and_line(tmp_path, suffix):
    """Issue 11 item 9: a byte that is not UTF-8 used to raise a bare UnicodeDecodeError."""
    body = {
        "jsonl": b'{"video": "a.mp4", "question": "ok"}\n{"video": "b.mp4", "question": "caf\xe9?"}\n',
        "json": b'[{"video": "a.mp4", "question": "ok"},\n {"video": "b.mp4", "question": "caf\xe9?"}]\n',
        "csv": b"video,question\na.mp4,ok\nb.mp4,caf\xe9?\n",
    }[suffix]
    path = tmp_path / f"d.{suffix}"
    path.write_bytes(body)
    line = 3 if suffix == "csv" else 2
    with pytest.raises(ValueError, match=rf"d\.{suffix}:{line}: not UTF-8 text \(byte 0xe9 at column \d+\)"):
        read_dataset(path)


def test_index_dataset_refuses_an_unwritable_output_before_any_work(tmp_path):
    rows = read_dataset(write_jsonl(tmp_path / "d.jsonl", sample_rows(n_videos=1, per_video=1, bad=())))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    sampler = FakeSampler()
    with pytest.raises(OSError, match=f"cannot write {blocker}/out.jsonl: {blocker} is not a directory"):
        index_dataset(sampler, rows, blocker / "out.jsonl", progress=False)
    assert sampler.videos == []
