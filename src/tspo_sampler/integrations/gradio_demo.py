"""A Gradio 6 app that shows the frames TSPO picks for a question next to uniform frames (``tspo demo``).

Gradio is imported inside :func:`build_demo` only, so importing this module costs nothing without the
``demo`` extra. One sampler serves every request; the queue runs one request at a time and each request's
work is bounded (at most :data:`MAX_CANDIDATES` candidates, :data:`MAX_CANDIDATES_CPU` on a CPU where encoding
is slow, and videos up to :data:`MAX_MINUTES` minutes), so a queue never stalls behind an unbounded job.
Uploaded files are deleted once their request is answered, and no server path appears in a message or in
the JSON.
"""

from __future__ import annotations

import dataclasses
import filecmp
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .._errors import TSPOError, VideoDamageWarning
from .._example import EXAMPLE_QUESTIONS, example_video
from ..scoring._selection import SELECTION_METHODS, select_indices
from ..scoring._settings import SelectionSettings
from ..visualize import format_time, score_curve

__all__ = ["DemoApp", "build_demo", "comparison_plot", "launch_demo", "serve"]

MAX_K = 32
MAX_CANDIDATES = 240
MAX_CANDIDATES_CPU = 60
MAX_MINUTES = 60.0
KEYFRAMES_AFTER_MINUTES = 10.0  # longer videos take keyframe candidates: decoding stays fast
THUMB_WIDTH = 480
CURVE_WIDTH = 900

_ABS_PATH = re.compile(r"(?:[A-Za-z]:)?[\\/](?:[^\s'\"\\/:,;()]+[\\/])+([^\s'\"\\/:,;()]+)")


def upload_root() -> Path:
    """Where Gradio stores uploads (``GRADIO_TEMP_DIR`` or ``<tmp>/gradio``)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


def public_message(exc: BaseException) -> str:
    """The library's message with every absolute path cut to its file name."""
    return _ABS_PATH.sub(lambda m: m.group(1), str(exc)) or type(exc).__name__


def _is_example(path: Path) -> bool:
    example = example_video()
    try:
        return path.resolve() == example.resolve() or (
            path.stat().st_size == example.stat().st_size and filecmp.cmp(path, example, shallow=False)
        )
    except OSError:
        return False


def discard_upload(path: str | None) -> None:
    """Delete an uploaded file (and its now empty folder) once its request is answered.

    Only files under Gradio's upload folder are touched, and never a copy of the bundled example, which
    Gradio's example list may hand out again.
    """
    if not path:
        return
    file = Path(path)
    root = upload_root()
    try:
        resolved = file.resolve()
        if root not in resolved.parents or _is_example(resolved):
            return
        resolved.unlink(missing_ok=True)
        if resolved.parent != root and not any(resolved.parent.iterdir()):
            resolved.parent.rmdir()
    except OSError:
        pass


def _duration_seconds(path: str) -> float | None:
    """Container duration without decoding (``None`` when unknown; reading errors surface later, worded)."""
    try:
        import av

        with av.open(path) as container:
            if container.duration is not None:
                return container.duration / 1_000_000
            stream = container.streams.video[0] if container.streams.video else None
            if stream is not None and stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    except Exception:
        return None
    return None


def _thumb(frame: np.ndarray) -> Image.Image:
    img = Image.fromarray(frame)
    if img.width > THUMB_WIDTH:
        img = img.resize((THUMB_WIDTH, max(1, round(img.height * THUMB_WIDTH / img.width))), Image.BILINEAR)
    return img


def comparison_plot(selection: Any, uniform_times: list[float], width: int = CURVE_WIDTH) -> Image.Image:
    """:func:`~tspo_sampler.visualize.score_curve` above a timeline of TSPO's frames and the uniform frames."""
    curve = score_curve(selection, width)
    band = 70
    img = Image.new("RGB", (width, curve.height + band), "white")
    img.paste(curve, (0, 0))
    draw = ImageDraw.Draw(img)
    left, right = 60, width - 20  # the curve's plot margins
    times = np.asarray(selection.candidate_timestamps, dtype=np.float64)
    t0 = float(times.min()) if len(times) else 0.0
    t1 = float(max(times.max(), t0 + 1e-6)) if len(times) else 1.0

    def x(t: float) -> float:
        return left + (min(max(t, t0), t1) - t0) / (t1 - t0) * (right - left)

    for row, (label, stamps, colour) in enumerate(
        ((selection.method, selection.timestamps, (220, 30, 30)), ("uniform", uniform_times, (110, 110, 110)))
    ):
        y = curve.height + 8 + row * 30
        draw.text((4, y + 4), label[:8], fill="black")
        draw.line([left, y + 10, right, y + 10], fill=(200, 200, 200), width=1)
        for t in stamps:
            draw.rectangle([x(t) - 2, y, x(t) + 2, y + 20], fill=colour)
    return img


class DemoApp:
    """The request handler behind the app: one sampler, loaded once, used by every request in turn."""

    def __init__(self, sampler: Any, *, max_candidates: int | None = None, max_minutes: float = MAX_MINUTES):
        self.sampler = sampler
        if max_candidates is None:
            on_cpu = str(getattr(sampler, "device", "cpu")).startswith("cpu")
            max_candidates = MAX_CANDIDATES_CPU if on_cpu else MAX_CANDIDATES
        self.max_candidates = max_candidates
        self.max_minutes = max_minutes

    def select(self, video: str | None, question: str | None, k: float | int | None, method: str | None,
               progress: Any = None) -> tuple[list, list, Image.Image, dict[str, Any]]:
        """Run one selection; user mistakes raise ``gr.Error`` with the library's message."""
        import gradio as gr

        try:
            return self._select(video, question, k, method, progress)
        except gr.Error:
            raise
        except (TSPOError, ValueError, TypeError, FileNotFoundError, OSError) as exc:
            raise gr.Error(public_message(exc), print_exception=False) from None
        finally:
            discard_upload(video)

    def _select(self, video: str | None, question: str | None, k: Any, method: str | None,
                progress: Any) -> tuple[list, list, Image.Image, dict[str, Any]]:
        import gradio as gr

        if not video:
            raise gr.Error("no video: upload one, or pick the example below", print_exception=False)
        if not Path(video).is_file() and upload_root() in Path(video).resolve().parents:
            raise gr.Error("this upload is gone: uploads are deleted once their request is answered; upload the "
                           "video again", print_exception=False)
        if isinstance(k, float) and k.is_integer():
            k = int(k)  # the number box sends floats; a fraction is left for the settings check to refuse
        duration = _duration_seconds(video)
        long_video = duration is not None and duration > KEYFRAMES_AFTER_MINUTES * 60
        settings = SelectionSettings(k=k, method=method or "topk", fps=1.0, max_candidates=self.max_candidates,
                                     candidate_mode="keyframes" if long_video else "fps")
        if settings.k > MAX_K:
            raise ValueError(f"k is {settings.k}; this demo shows at most {MAX_K} frames")
        if duration is not None and duration > self.max_minutes * 60:
            raise ValueError(
                f"the video lasts {format_time(duration)}; this demo takes videos up to {self.max_minutes:g} minutes"
            )
        if progress is not None:
            progress(0, desc="reading the video")
        start = time.perf_counter()
        # A damaged or cut file is read in part: say so on the page and in the JSON, not only in the server log
        # (the queue runs one request at a time, so recording warnings here sees only this request's).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", VideoDamageWarning)
            selection = self.sampler.select_frames(video, question, progress=True, **dataclasses.asdict(settings))
            uniform = select_indices(np.zeros(len(selection.candidate_indices)), len(selection.indices), "uniform")
            uniform_indices = [int(selection.candidate_indices[p]) for p in uniform]
            uniform_times = [float(selection.candidate_timestamps[p]) for p in uniform]
            if progress is not None:
                progress(0.95, desc="drawing")
            uniform_frames = self.sampler.get_frames(video, uniform_indices)
        damage = list(dict.fromkeys(public_message(w.message) for w in caught
                                    if issubclass(w.category, VideoDamageWarning)))
        for message in damage:
            gr.Warning(message)
        for w in caught:  # anything else goes on to the usual handlers
            if not issubclass(w.category, VideoDamageWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        scores = np.asarray(selection.scores, dtype=np.float64)
        gallery = [
            (_thumb(f), f"{format_time(t)}  (frame {i}, score {scores[p]:.3g})")
            for f, t, i, p in zip(selection.frames, selection.timestamps, selection.indices, selection.positions,
                                  strict=True)
        ]
        uniform_gallery = [
            (_thumb(f), f"{format_time(t)}  (frame {i})")
            for f, t, i in zip(uniform_frames, uniform_times, uniform_indices, strict=True)
        ]
        result = selection.to_dict(include_scores=False)
        result.update(
            video=Path(video).name,
            k=len(selection.indices),
            scores=[round(float(scores[p]), 6) for p in selection.positions],
            uniform={"indices": uniform_indices, "timestamps": [round(t, 6) for t in uniform_times]},
            seconds=round(time.perf_counter() - start, 3),
            warnings=damage,
        )
        return gallery, uniform_gallery, comparison_plot(selection, uniform_times), result


def build_demo(sampler: Any, *, title: str = "TSPO frame selection",
               wrap: Callable[[Callable], Callable] | None = None, **limits: Any) -> Any:
    """The ``gr.Blocks`` app around ``sampler``, with the named API endpoint ``/select``.

    ``wrap`` decorates the request handler (a Hugging Face Space passes ``spaces.GPU`` so ZeroGPU lends a GPU
    per request). ``limits`` go to :class:`DemoApp` (``max_candidates``, ``max_minutes``).
    """
    import gradio as gr

    app = DemoApp(sampler, **limits)

    def select(video: str | None, question: str, k: float, method: str,
               progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:  # noqa: B008 - Gradio's idiom
        return app.select(video, question, k, method, progress)

    if wrap is not None:
        select = wrap(select)

    with gr.Blocks(title=title, delete_cache=(900, 1800), analytics_enabled=False) as demo:
        gr.Markdown(
            f"# {title}\nUpload a video (or pick the example), ask a question, and see the frames the TSPO "
            "temporal agent picks for it beside evenly spaced (uniform) frames."
        )
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="Video", sources=["upload"], format=None, include_audio=True)
                question = gr.Textbox(label="Question", placeholder="What should the frames show?", lines=2)
                k = gr.Number(value=6, precision=0, label=f"k (frames to pick, up to {MAX_K})")
                method = gr.Dropdown(list(SELECTION_METHODS), value="topk", label="Method")
                run = gr.Button("Select frames", variant="primary")
                gr.Examples(
                    [[str(example_video()), q, 6, "topk"] for q in EXAMPLE_QUESTIONS],
                    inputs=[video, question, k, method],
                    label="Example video (made by the project): scenes with large words, colours and objects",
                )
            with gr.Column(scale=2):
                gallery = gr.Gallery(label="Frames TSPO picked", columns=3, height="auto", format="jpeg")
                curve = gr.Image(label="Score over time: picked frames (red) and uniform frames (grey)",
                                 type="pil", format="png")
                uniform = gr.Gallery(label="Uniform frames, for comparison", columns=3, height="auto",
                                     format="jpeg")
                as_json = gr.JSON(label="Selection")
        run.click(select, inputs=[video, question, k, method], outputs=[gallery, uniform, curve, as_json],
                  api_name="select")
        question.submit(select, inputs=[video, question, k, method], outputs=[gallery, uniform, curve, as_json],
                        api_name=False)
    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo


def launch_demo(demo: Any, *, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
                block: bool = True, quiet: bool = False) -> Any:
    """Serve ``demo`` on ``host:port`` (loopback unless told otherwise); returns ``(app, local_url, share_url)``."""
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=not block,
        allowed_paths=[str(example_video().parent)],
        max_file_size="1gb",
        ssr_mode=False,
        quiet=quiet,
        footer_links=["api"],
    )


def _load_sampler(model: str, **kwargs: Any) -> Any:
    from .._sampler import TemporalSampler

    return TemporalSampler.from_pretrained(model, **kwargs)


def serve(model: str, *, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
          block: bool = True, **sampler_kwargs: Any) -> Any:
    """Load the sampler once and serve the app (what ``tspo demo`` runs)."""
    sampler = _load_sampler(model, **sampler_kwargs)
    return launch_demo(build_demo(sampler), host=host, port=port, share=share, block=block)
