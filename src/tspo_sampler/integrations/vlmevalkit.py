"""VLMEvalKit with TSPO frames: a launcher that patches its video datasets, then runs its ``run.py``.

VLMEvalKit is not on PyPI and has no plugin mechanism. Its video datasets (``VideoBaseDataset`` subclasses:
Video-MME, LongVideoBench, MLVU...) build each prompt in ``build_prompt(line, video_llm)``, which calls
``save_video_frames(video, ...)`` to extract evenly spaced frames as JPEG files. :func:`install` wraps both
methods on every such class: ``build_prompt`` remembers the line (its question), and ``save_video_frames``
lets the upstream code run (its frames are the fallback), then writes the ``k`` TSPO frames for that
question (``k`` = the upstream frame count) next to them and returns those instead, with their source
indices (so subtitles follow the chosen frames). Nothing here imports VLMEvalKit until :func:`install`.

Run it from a VLMEvalKit checkout (``pip install -e .`` there), with the usual ``run.py`` arguments::

    TSPO_MODEL=hzf666/TSPO-0.4B python -m tspo_sampler.integrations.vlmevalkit \\
        --data Video-MME --model Qwen2.5-VL-7B-Instruct --nframe 64

Settings come from the environment: ``TSPO_MODEL``, ``TSPO_METHOD`` (``topk``), ``TSPO_FPS`` (candidates per
second, 1), ``TSPO_DEVICE``, ``TSPO_QUESTION_FIELD`` (``question``) and ``VLMEVALKIT_RUN`` (the ``run.py``
to run; default: the one beside the installed ``vlmeval`` package). It applies where VLMEvalKit feeds
frames (``video_llm=False``); wrappers that read the video file themselves are left as they are, with a
warning.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import runpy
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._errors import TSPOError

__all__ = ["TSPOFrames", "find_run_py", "install", "main", "patch_class", "resolve_video"]

_LINE: contextvars.ContextVar[Any] = contextvars.ContextVar("tspo_vlmevalkit_line", default=None)
_VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


def resolve_video(data_root: str | os.PathLike[str], line: Any, video: str) -> Path:
    """The video file of a dataset line: its ``video_path`` column, else ``video`` under the usual folders."""
    root = Path(data_root)
    rel = _get(line, "video_path")
    candidates = [root / str(rel)] if rel else []
    for folder in (root / "video", root / "videos", root):
        candidates += [folder / video] + [folder / f"{video}{s}" for s in _VIDEO_SUFFIXES]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"no video file for {video!r} under {root} (looked for {candidates[0].name} and others)")


def _get(line: Any, key: str) -> Any:
    try:
        value = line[key]
    except (KeyError, IndexError, TypeError):
        return None
    return None if value is None or (isinstance(value, float) and value != value) else value


class TSPOFrames:
    """Writes the TSPO frames of one (video, question) as JPEG files and counts the fallbacks."""

    def __init__(self, sampler: Any, *, method: str = "topk", fps: float = 1.0, question_field: str = "question"):
        self.sampler = sampler
        self.method = method
        self.fps = fps
        self.question_field = question_field
        self.fallbacks = 0
        self.selected = 0

    def paths(self, frame_root: str | os.PathLike[str], video: str, question: str, k: int) -> list[Path]:
        """Per-question file names (upstream names frames per video only, and would share them)."""
        tag = hashlib.sha1(question.encode("utf-8")).hexdigest()[:12]
        folder = Path(frame_root) / video
        return [folder / f"tspo-{tag}-{i}-of-{k}.jpg" for i in range(1, k + 1)]

    def replace(self, dataset: Any, line: Any, video: str, upstream: Any) -> Any:
        """``upstream`` (what ``save_video_frames`` returned) with TSPO's frames, or ``upstream`` on failure."""
        paths = upstream[0] if isinstance(upstream, tuple) else upstream
        question = _get(line, self.question_field)
        where = f"line {_get(line, 'index')} ({video})"
        if not isinstance(paths, Sequence) or not paths or not isinstance(question, str):
            return self._fallback(where, "no frame list or no question in the line", upstream)
        k = len(paths)
        try:
            path = resolve_video(dataset.data_root, line, video)
            sel = self.sampler.select_frames(str(path), question, k=k, method=self.method, fps=self.fps)
        except (TSPOError, OSError) as e:
            return self._fallback(where, f"{type(e).__name__}: {e}", upstream)
        from PIL import Image

        out = self.paths(dataset.frame_root, video, question, len(sel.indices))
        out[0].parent.mkdir(parents=True, exist_ok=True)
        for frame, p in zip(sel.frames, out, strict=True):
            if not p.exists():
                Image.fromarray(frame).save(p)
        self.selected += 1
        files = [str(p) for p in out]
        if isinstance(upstream, tuple):
            return (files, [int(i) for i in sel.indices], *upstream[2:])
        return files

    def _fallback(self, where: str, reason: str, upstream: Any) -> Any:
        self.fallbacks += 1
        warnings.warn(f"tspo: {where}: TSPO frames unavailable ({reason}); using VLMEvalKit's uniform frames "
                      f"[fallback {self.fallbacks}]", stacklevel=3)
        return upstream


def patch_class(cls: type, frames: TSPOFrames) -> None:
    """Wrap ``cls.build_prompt`` and ``cls.save_video_frames`` (where ``cls`` defines them); idempotent."""
    build = cls.__dict__.get("build_prompt")
    if build is not None and not getattr(build, "__tspo__", False):
        def build_prompt(self: Any, line: Any, *args: Any, **kwargs: Any) -> Any:
            row = self.data.iloc[line] if isinstance(line, int) and hasattr(self, "data") else line
            video_llm = kwargs.get("video_llm", args[0] if args else False)
            if video_llm:
                warnings.warn(f"tspo: {cls.__name__} is asked for the video file (video_llm=True): TSPO frames apply "
                              "only where VLMEvalKit extracts frames", stacklevel=2)
            token = _LINE.set(row)
            try:
                return build(self, line, *args, **kwargs)
            finally:
                _LINE.reset(token)

        build_prompt.__tspo__ = True  # type: ignore[attr-defined]
        build_prompt.__wrapped__ = build  # type: ignore[attr-defined]
        cls.build_prompt = build_prompt  # type: ignore[attr-defined]
    save = cls.__dict__.get("save_video_frames")
    if save is not None and not getattr(save, "__tspo__", False):
        def save_video_frames(self: Any, video: Any, *args: Any, **kwargs: Any) -> Any:
            upstream = save(self, video, *args, **kwargs)
            line = _LINE.get()
            return upstream if line is None else frames.replace(self, line, str(video), upstream)

        save_video_frames.__tspo__ = True  # type: ignore[attr-defined]
        save_video_frames.__wrapped__ = save  # type: ignore[attr-defined]
        cls.save_video_frames = save_video_frames  # type: ignore[attr-defined]


def _subclasses(cls: type) -> list[type]:
    out, todo = [], [cls]
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(c.__subclasses__())
    return out


def install(sampler: Any = None, **options: Any) -> TSPOFrames:
    """Patch every VLMEvalKit video dataset class (imports ``vlmeval.dataset``)."""
    import vlmeval.dataset  # noqa: F401 - defines every dataset class
    from vlmeval.dataset.video_base import VideoBaseDataset

    if sampler is None:
        from .._sampler import TemporalSampler

        sampler = TemporalSampler.from_pretrained(os.environ.get("TSPO_MODEL", "hzf666/TSPO-0.4B"),
                                                  device=os.environ.get("TSPO_DEVICE") or None)
    frames = TSPOFrames(sampler, **options)
    for cls in _subclasses(VideoBaseDataset):
        patch_class(cls, frames)
    return frames


def find_run_py() -> Path:
    """VLMEvalKit's ``run.py``: ``$VLMEVALKIT_RUN``, else beside the installed ``vlmeval`` package."""
    env = os.environ.get("VLMEVALKIT_RUN")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"VLMEVALKIT_RUN={env!r}: no such file")
        return Path(env)
    import importlib.util

    spec = importlib.util.find_spec("vlmeval")
    if spec is None or not spec.origin:
        raise FileNotFoundError("VLMEvalKit is not installed: clone it and `pip install -e .` there, "
                                "or set VLMEVALKIT_RUN")
    run = Path(spec.origin).resolve().parent.parent / "run.py"
    if not run.is_file():
        raise FileNotFoundError(f"no run.py beside {Path(spec.origin).parent}; "
                                "set VLMEVALKIT_RUN to VLMEvalKit's run.py")
    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Patch the datasets, then run VLMEvalKit's ``run.py`` with ``argv`` (default: this process's arguments)."""
    try:
        run = find_run_py()
        fps = float(os.environ.get("TSPO_FPS", "1"))
        frames = install(method=os.environ.get("TSPO_METHOD", "topk"), fps=fps,
                         question_field=os.environ.get("TSPO_QUESTION_FIELD", "question"))
    except (FileNotFoundError, ValueError, TSPOError, ImportError) as e:
        print(f"tspo vlmevalkit: {e}", file=sys.stderr)
        return 2
    sys.argv = [str(run), *(sys.argv[1:] if argv is None else list(argv))]
    try:
        runpy.run_path(str(run), run_name="__main__")
    finally:
        print(f"tspo vlmevalkit: {frames.selected} prompts with TSPO frames, {frames.fallbacks} fallbacks to "
              "uniform frames", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
