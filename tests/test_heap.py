"""Trimming the C heap between encoder batches: it really returns fragmented free memory, and the sampler
does it between CPU batches (at most every TRIM_INTERVAL_S)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
import torch

import media
from tspo_sampler.features import _heap as heap

linux_glibc = pytest.mark.skipif(heap._malloc_trim() is None, reason="needs glibc's malloc_trim")

FRAGMENT_AND_TRIM = textwrap.dedent(
    """
    import ctypes, json
    from tspo_sampler.features._heap import trim_heap

    def anon_mb():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size = 64 * 1024  # below glibc's mmap threshold: these come from the heap
    blocks = [libc.malloc(size) for _ in range(4000)]  # 250 MB
    for b in blocks:
        ctypes.memset(b, 1, size)
    full = anon_mb()
    for i, b in enumerate(blocks):
        if i % 16:  # free 15 of 16: the survivors pin the heap, so nothing is trimmed from its top
            libc.free(b)
    freed = anon_mb()
    ok = trim_heap()
    print(json.dumps({"full": full, "freed": freed, "trimmed": anon_mb(), "ok": ok}))
    """
)


@linux_glibc
def test_trim_heap_returns_fragmented_free_memory():
    out = subprocess.run([sys.executable, "-c", FRAGMENT_AND_TRIM], capture_output=True, text=True, check=True)
    r = __import__("json").loads(out.stdout)
    assert r["ok"] is True
    assert r["freed"] > r["full"] - 50  # free() alone keeps the pages (survivors pin the heap)
    assert r["trimmed"] < r["freed"] - 150  # malloc_trim gives back the free pages between them


def test_sampler_trims_between_cpu_batches_at_most_every_interval(uncached_sampler, tmp_path, monkeypatch):
    """Every batch may trim; trims closer than TRIM_INTERVAL_S are skipped (a fast encoder would otherwise trim
    dozens of times a second and pay the page faults after each)."""
    video = media.make_video(tmp_path / "clip.mp4", duration=10.0, fps=10.0)
    calls = []
    monkeypatch.setattr(heap, "_malloc_trim", lambda: lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(heap, "_last_trim", -float("inf"))
    monkeypatch.setattr(uncached_sampler, "batch_size", 4)
    monkeypatch.setattr(heap, "TRIM_INTERVAL_S", 0.0)
    sel = uncached_sampler.select_frames(video, "what happens?", k=3, fps=1.0)
    assert len(sel.candidate_indices) == 10
    assert calls == [0, 0, 0]  # ceil(10 / 4) batches, each trimmed: malloc_trim(0)
    calls.clear()
    uncached_sampler.encode_frames(torch.zeros((9, 32, 32, 3), dtype=torch.uint8))
    assert len(calls) == 3
    calls.clear()
    monkeypatch.setattr(heap, "TRIM_INTERVAL_S", 3600.0)
    uncached_sampler.encode_frames(torch.zeros((9, 32, 32, 3), dtype=torch.uint8))
    assert calls == []  # the last trim was just now
    monkeypatch.setattr(heap, "_last_trim", time.monotonic() - 3601.0)
    uncached_sampler.encode_frames(torch.zeros((9, 32, 32, 3), dtype=torch.uint8))
    assert len(calls) == 1  # the first batch trims, the next two are too soon


def test_trim_heap_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    assert heap.trim_heap() is False
