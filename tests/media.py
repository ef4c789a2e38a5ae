"""Synthetic test videos whose frames carry their own presentation time.

Every frame drawn by :func:`make_video` encodes its presentation timestamp (in centiseconds) as a
grid of large black/white cells, so a test can decode a frame with any backend, resize it, and ask
:func:`read_stamp` which instant of the video it is looking at.  The grid survives lossy codecs
(each bit is stored twice, once inverted, and read differentially from the centre of its cell) and
downscaling to about 64 px on the short side.

Layout of the upright frame: 6 equal rows x 8 equal columns.

* row 0: fiducial, white/black alternating starting with white (checks the frame is upright);
* rows 1-2: the 16 bits of ``round(t * 100)``, most significant first, white = 1;
* rows 3-4: the same 16 bits inverted;
* row 5: a band whose hue follows time with a bright bar moving across it, so that frames differ
  in colour and content (useful for feature-based tests).

Files are written in-process with PyAV (which gives exact control over pts for variable frame
rate and over the display matrix for rotation); :func:`make_long_video` uses the ffmpeg CLI's
``testsrc2`` source because it is much faster for long benchmark files.
"""

from __future__ import annotations

import colorsys
import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av  # imported before anything can load decord: see import_decord in tspo_sampler.video._decord
import numpy as np

__all__ = [
    "frame_times",
    "draw_frame",
    "read_stamp",
    "make_video",
    "make_audio_only",
    "make_truncated",
    "make_corrupt",
    "make_empty",
    "make_long_video",
    "make_mpegts",
    "make_joined_mpegts",
    "make_edit_list_mp4",
    "make_ptsless_mkv",
    "make_small_cluster_mkv",
    "make_hole",
    "probe_rotation",
]

ROWS = 6
COLS = 8
BITS = 16
MAX_SECONDS = (2**BITS - 1) / 100.0

_FIDUCIAL = np.array([1, 0] * (COLS // 2), dtype=bool)
_VFR_GAPS = (1.0, 1.0, 3.0, 1.0, 2.0, 0.5, 0.5, 4.0)  # in units of 1/fps; mean 1.625 frame intervals
_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


# --------------------------------------------------------------------------------------------
# stamp drawing / reading


def frame_times(duration: float = 4.0, fps: float = 10.0, vfr: bool = False) -> np.ndarray:
    """Presentation times (seconds) of the frames :func:`make_video` writes for these arguments.

    Constant rate: ``i / fps`` for every ``i / fps < duration``.  Variable rate: gaps cycle through
    ``_VFR_GAPS / fps`` (1, 1, 3, 1, 2, 0.5, 0.5, 4 frame intervals), starting at 0.
    """
    if duration <= 0 or fps <= 0:
        raise ValueError("duration and fps must be positive")
    if not vfr:
        n = max(1, int(np.ceil(duration * fps - 1e-9)))
        return np.arange(n, dtype=np.float64) / fps
    times = [0.0]
    k = 0
    while True:
        t = times[-1] + _VFR_GAPS[k % len(_VFR_GAPS)] / fps
        k += 1
        if t >= duration - 1e-9:
            break
        times.append(t)
    # round to milliseconds: that is the time base the VFR files use, so the pts are exact
    return np.round(np.asarray(times, dtype=np.float64), 3)


def _bits(t: float) -> np.ndarray:
    cs = int(round(t * 100))
    if not 0 <= cs < 2**BITS:
        raise ValueError(f"time {t} outside the stamp range [0, {MAX_SECONDS}] s")
    return np.array([(cs >> (BITS - 1 - b)) & 1 for b in range(BITS)], dtype=bool)


def draw_frame(t: float, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """Upright RGB frame (H x W x 3 uint8) stamped with time ``t`` seconds."""
    width, height = size
    img = np.zeros((height, width, 3), dtype=np.uint8)
    ys = np.linspace(0, height, ROWS + 1).round().astype(int)
    xs = np.linspace(0, width, COLS + 1).round().astype(int)
    bits = _bits(t)
    cells = np.zeros((ROWS - 1, COLS), dtype=bool)
    cells[0] = _FIDUCIAL
    cells[1:3] = bits.reshape(2, COLS)
    cells[3:5] = ~bits.reshape(2, COLS)
    for r in range(ROWS - 1):
        for c in range(COLS):
            if cells[r, c]:
                img[ys[r] : ys[r + 1], xs[c] : xs[c + 1]] = 255
    # time-varying band: hue cycles every 10 s, a bar sweeps across every 2 s
    rgb = colorsys.hsv_to_rgb((t / 10.0) % 1.0, 0.9, 0.8)
    band = img[ys[ROWS - 1] :]
    band[:] = np.array(rgb) * 255
    bar_w = max(2, width // 10)
    x0 = int(((t / 2.0) % 1.0) * (width - bar_w))
    band[:, x0 : x0 + bar_w] = 255
    return img


def read_stamp(frame: np.ndarray) -> float:
    """Decode the time (seconds) stamped in an upright RGB uint8 frame of any size >= ~48 px.

    Raises ``ValueError`` when the fiducial does not match (frame not upright, or not a stamped
    frame) or when a bit is ambiguous.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 frame, got shape {frame.shape}")
    gray = frame.astype(np.float32).mean(axis=2)
    height, width = gray.shape
    ys = np.linspace(0, height, ROWS + 1)
    xs = np.linspace(0, width, COLS + 1)
    means = np.empty((ROWS - 1, COLS), dtype=np.float32)
    for r in range(ROWS - 1):
        y0, y1 = ys[r], ys[r + 1]
        ya, yb = int(round(y0 + (y1 - y0) * 0.25)), int(round(y1 - (y1 - y0) * 0.25))
        for c in range(COLS):
            x0, x1 = xs[c], xs[c + 1]
            xa, xb = int(round(x0 + (x1 - x0) * 0.25)), int(round(x1 - (x1 - x0) * 0.25))
            means[r, c] = gray[ya : max(yb, ya + 1), xa : max(xb, xa + 1)].mean()
    fid = means[0]
    white, black = fid[_FIDUCIAL], fid[~_FIDUCIAL]
    if not white.min() > black.max() + 60:
        raise ValueError("no stamp fiducial found (frame rotated, mirrored or not stamped)")
    data = means[1:3].reshape(-1)
    comp = means[3:5].reshape(-1)
    diff = data - comp
    if np.abs(diff).min() < 40:
        raise ValueError(f"ambiguous stamp bit (contrast {np.abs(diff).min():.0f})")
    cs = 0
    for bit in diff > 0:
        cs = (cs << 1) | int(bit)
    return cs / 100.0


# --------------------------------------------------------------------------------------------
# writers


def _container_format(path: Path) -> str:
    fmt = _CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"unsupported container suffix {path.suffix!r} (use one of {sorted(_CONTAINERS)})")
    return fmt


def make_video(
    path: str | os.PathLike,
    *,
    duration: float = 4.0,
    fps: float = 10.0,
    size: tuple[int, int] = (160, 120),
    codec: str = "libx264",
    rotate: int | None = None,
    vfr: bool = False,
    pix_fmt: str = "yuv420p",
    audio: bool = False,
    gop: int | None = None,
    bframes: bool = True,
    start: float = 0.0,
) -> Path:
    """Write a small stamped test video and return its path.

    ``size`` is the *display* (upright) size ``(width, height)``.  ``rotate`` (0/90/180/270) is
    the clockwise rotation a player must apply to the stored pixels to show them upright (the
    convention of the legacy MP4 ``rotate`` tag that phones write): the pixels are stored turned
    counter-clockwise by ``rotate`` and a display matrix saying so is written, so a correct
    reader returns upright frames of ``size``.  ``vfr`` writes irregular pts (see
    :func:`frame_times`) with a 1 ms time base; the stamp in each frame equals its pts.
    ``gop`` is the keyframe interval in frames (default: 2 s worth); ``bframes`` lets H.264
    reorder frames, so decode order differs from presentation order.  ``start`` is added to every stamp
    (not to the pts): the file shows a later part of a longer video.
    """
    path = Path(path)
    fmt = _container_format(path)
    width, height = size
    if width % 2 or height % 2:
        raise ValueError("width and height must be even (4:2:0 chroma)")
    rot = int(rotate or 0) % 360
    if rot not in (0, 90, 180, 270):
        raise ValueError("rotate must be a multiple of 90")
    if vfr and fmt == "avi":
        raise ValueError("AVI cannot carry variable frame rate timestamps")
    times = frame_times(duration, fps, vfr)
    stored_w, stored_h = (height, width) if rot in (90, 270) else (width, height)

    rate = Fraction(fps).limit_denominator(1001)
    # PyAV 12 cannot write a display matrix: there the ffmpeg program adds it to MP4/MOV afterwards
    remux = bool(rot) and not hasattr(av.video.stream.VideoStream, "set_display_rotation")
    if remux and fmt not in ("mp4", "mov"):
        raise RuntimeError(f"rotated {path.suffix} file needs PyAV >= 13 (set_display_rotation), got {av.__version__}")
    target = path.with_name(path.stem + ".unrotated" + path.suffix) if remux else path
    with av.open(str(target), mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = stored_w, stored_h
        stream.pix_fmt = pix_fmt
        opts: dict[str, str] = {}
        g = gop if gop is not None else max(1, int(round(2 * fps)))
        stream.codec_context.gop_size = g
        if codec == "libx264":
            opts.update({"preset": "veryfast", "crf": "20", "bf": "3" if bframes else "0"})
        elif codec == "libvpx-vp9":
            opts.update({"deadline": "realtime", "cpu-used": "8", "crf": "30", "b": "0"})
        elif codec in ("mpeg4", "mjpeg"):
            opts.update({"qscale": "3"})
            stream.codec_context.qmin = 2
            stream.codec_context.qmax = 6
            if codec == "mpeg4" and bframes and fmt != "avi":
                # AVI has no pts of its own: with B-frames the demuxed timestamps are shifted
                stream.codec_context.max_b_frames = 2
        stream.options = opts
        if vfr:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        if rot and not remux:
            # PyAV takes a counter-clockwise angle; a clockwise display rotation is its negative
            stream.set_display_rotation(-rot)
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=16000)
            astream.layout = "mono"

        for i, t in enumerate(times):
            img = draw_frame(float(t) + start, size)
            if rot:
                img = np.ascontiguousarray(np.rot90(img, k=rot // 90))  # counter-clockwise turns
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if vfr:
                frame.pts = int(round(t * 1000))
                frame.time_base = Fraction(1, 1000)
            else:
                frame.pts = i
                frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)

        if astream is not None:
            _write_tone(astream, out, duration)
    if remux:  # the legacy rotate tag is counter-clockwise: ffmpeg writes it as the display matrix
        _ffmpeg("-i", str(target), "-c", "copy", "-metadata:s:v:0", f"rotate={(360 - rot) % 360}", str(path))
        target.unlink()
    return path


def _write_tone(astream, out, duration: float) -> None:
    sr = 16000
    n = int(duration * sr)
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / sr)).astype(np.float32)
    chunk = 1024
    for start in range(0, n, chunk):
        piece = tone[start : start + chunk]
        if len(piece) < chunk:
            piece = np.pad(piece, (0, chunk - len(piece)))
        frame = av.AudioFrame.from_ndarray(piece[None, :], format="fltp", layout="mono")
        frame.sample_rate = sr
        frame.pts = start
        frame.time_base = Fraction(1, sr)
        for packet in astream.encode(frame):
            out.mux(packet)
    for packet in astream.encode():
        out.mux(packet)


def make_audio_only(path: str | os.PathLike, duration: float = 2.0) -> Path:
    """A file with one AAC audio stream and no video stream (``.mp4``/``.m4a``/``.mkv``)."""
    path = Path(path)
    fmt = "mp4" if path.suffix.lower() in (".mp4", ".m4a") else _container_format(path)
    with av.open(str(path), mode="w", format=fmt) as out:
        astream = out.add_stream("aac", rate=16000)
        astream.layout = "mono"
        _write_tone(astream, out, duration)
    return path


def make_truncated(src: str | os.PathLike, dst: str | os.PathLike, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` fraction of ``src`` into ``dst`` (a download cut short)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def make_corrupt(path: str | os.PathLike, nbytes: int = 64 * 1024, seed: int = 0) -> Path:
    """Random bytes under a video file name."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8).tobytes())
    return path


def make_empty(path: str | os.PathLike) -> Path:
    """A zero-byte file under a video file name."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def _ffmpeg(*args: str) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is not on PATH")
    subprocess.run([ffmpeg, "-hide_banner", "-v", "error", "-y", *args], check=True, stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=120)


def make_mpegts(path: str | os.PathLike, *, duration: float = 3.0, fps: float = 10.0, gop: int = 10,
                size: tuple[int, int] = (160, 120), start: float = 0.0) -> Path:
    """Stamped H.264 with B-frames in MPEG-TS (``.ts``; ``.m2ts`` gets 192-byte Blu-ray packets), as broadcast
    recordings and HLS segments are: ffmpeg starts it at a non-zero PTS (about 1.4 s), and it has no index.
    Frame ``t`` s after the stream start shows stamp ``t``."""
    path = Path(path)
    src = make_video(path.with_suffix(".src.mp4"), duration=duration, fps=fps, size=size, gop=gop, start=start)
    extra = ["-mpegts_m2ts_mode", "1"] if path.suffix.lower() == ".m2ts" else []
    _ffmpeg("-i", str(src), "-c", "copy", "-f", "mpegts", *extra, str(path))
    src.unlink()
    return path


def make_joined_mpegts(path: str | os.PathLike, *, segment: float = 2.0, fps: float = 10.0) -> Path:
    """Two MPEG-TS segments joined with ``cat`` (HLS segments saved one after the other): the second restarts
    its PTS.  The segments are consecutive parts of one stamped video, so frame ``t`` s after the start of the
    joined stream shows stamp ``t``."""
    path = Path(path)
    parts = [make_mpegts(path.with_suffix(f".part{k}.ts"), duration=segment, fps=fps, start=k * segment)
             for k in range(2)]
    path.write_bytes(b"".join(p.read_bytes() for p in parts))
    for p in parts:
        p.unlink()
    return path


def make_edit_list_mp4(path: str | os.PathLike, *, duration: float = 3.0, fps: float = 10.0, cut: float = 0.5,
                       gop: int = 10) -> Path:
    """An MP4 whose edit list hides the first frames of its first GOP (a stream copy that starts at ``cut`` s,
    between two keyframes): frame ``t`` s after the start shows stamp ``t + cut`` (to a frame)."""
    path = Path(path)
    src = make_video(path.with_suffix(".src.mp4"), duration=duration, fps=fps, gop=gop)
    _ffmpeg("-ss", f"{cut:g}", "-i", str(src), "-c", "copy", str(path))
    src.unlink()
    return path


def make_ptsless_mkv(path: str | os.PathLike, *, duration: float = 3.0, fps: float = 10.0,
                     untimed: float = 1.0) -> Path:
    """Matroska whose first ``untimed`` seconds of frames carry no PTS (timestamps shifted below zero, which
    Matroska cannot store): frame ``t`` s after the first timed frame shows stamp ``t + untimed``."""
    path = Path(path)
    src = make_video(path.with_suffix(".src.mp4"), duration=duration, fps=fps, gop=max(1, int(round(fps))))
    _ffmpeg("-i", str(src), "-c", "copy", "-output_ts_offset", f"-{untimed:g}", "-avoid_negative_ts", "disabled",
            str(path))
    src.unlink()
    return path


def make_small_cluster_mkv(path: str | os.PathLike, *, duration: float = 4.0, fps: float = 10.0,
                           gop: int = 10) -> Path:
    """Stamped Matroska with a cluster every 0.5 s, so a hole of zeroed bytes leaves readable clusters after it."""
    path = Path(path)
    src = make_video(path.with_suffix(".src.mp4"), duration=duration, fps=fps, gop=gop)
    _ffmpeg("-i", str(src), "-c", "copy", "-cluster_time_limit", "500", str(path))
    src.unlink()
    return path


def make_hole(src: str | os.PathLike, dst: str | os.PathLike, start: float, length: float) -> Path:
    """Copy ``src`` with a stretch of zeroed bytes from ``start`` (a fraction of the file) of ``length``."""
    data = bytearray(Path(src).read_bytes())
    a, n = int(len(data) * start), int(len(data) * length)
    data[a : a + n] = bytes(n)
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


def make_long_video(
    path: str | os.PathLike,
    minutes: float,
    size: tuple[int, int] = (1280, 720),
    fps: float = 2.0,
    threads: int = 1,
    gop: int | None = None,
    hue_offset: float = 0.0,
) -> Path:
    """A long H.264 benchmark video from ffmpeg's ``testsrc2`` with a hue that drifts over time.

    ``hue_offset`` (degrees) makes otherwise identical videos differ in content (and so in cache identity).

    ``ultrafast`` at a low frame rate keeps generation to seconds and the file to a few MB per
    hour. Frames are not stamped (``testsrc2`` draws its own clock); use for throughput only.
    ``gop`` is the keyframe interval in frames (default: 10 s worth, at least 1); x264's scene-cut
    detection may add keyframes in between.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is not on PATH")
    path = Path(path)
    width, height = size
    seconds = float(minutes) * 60.0
    src = f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"
    args = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", src,
        "-vf", f"hue=h=t*6+{float(hue_offset):g}",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "36",
        "-g", str(max(1, int(gop if gop is not None else fps * 10))),
        "-pix_fmt", "yuv420p", "-threads", str(threads),
        str(path),
    ]  # fmt: skip
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=600)
    return path


def probe_rotation(path: str | os.PathLike) -> int | None:
    """Clockwise display rotation ffprobe reports for the first video stream (None: no ffprobe)."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    args = [
        ffprobe, "-v", "error", "-select_streams", "v:0",
        "-show_entries", "stream_side_data=rotation", "-of", "default=nw=1:nk=1", str(path),
    ]  # fmt: skip
    res = subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)
    vals = [v for v in res.stdout.split() if v.strip()]
    if not vals:
        return 0
    # ffprobe reports the counter-clockwise angle of the display matrix
    return int(round(-float(vals[0]))) % 360
