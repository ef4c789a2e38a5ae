"""Video decoding: frame timestamps, 1-fps-style candidates and batched, resized, upright frames.

One :class:`VideoDecoder` wraps two backends behind the same index space:

* **decord** (opened first where installed; with ``backend="auto"`` it serves only requests within
  one GOP, see below): random access with ``get_batch`` and resizing inside the decoder.  It is
  old, hangs on some files and misreads some containers, so every call runs in a worker thread
  joined with a timeout, and any failure falls back to PyAV (``backend="auto"``).
* **PyAV**: sequential decode with frame threading, converting (and resizing) only the requested
  frames, seeking to the keyframe before a requested frame when that skips decoding work.

**Index semantics.** Frame ``i`` is the ``i``-th frame of the video stream in presentation order:
the ``i``-th smallest packet timestamp of the stream (decord builds its index the same way).  The
table of timestamps is built once by demuxing the stream's packets with PyAV (no decoding), so
timestamps are the real ones for variable-frame-rate files, never ``i / fps``.  Timestamps are in
seconds relative to the stream's start time.

**Rotation.** :attr:`VideoMetadata.rotation` is the clockwise rotation (0/90/180/270) that turns the
stored pixels upright, i.e. the rotation a player applies (the legacy MP4 ``rotate`` tag; a phone
portrait clip reads 90).  Frames are always returned upright, and ``width``/``height`` are upright.

**Candidate rule.** Target instants ``k / fps`` (``k = 0, 1, ...``, ``< duration``) map to the frame
on screen at that instant: the latest frame whose timestamp is ``<=`` the target (frame 0 for
targets before the first frame).  Duplicates are dropped.  In ``mode="keyframes"`` (for very long
videos) each target maps instead to the nearest keyframe (the earlier one on a tie), so candidates
are the stream's keyframes, thinned to about ``fps`` per second where they are denser, and decoding
them decodes only those keyframes.

**Decode path per request.** With ``backend="auto"`` each request (one :meth:`get_frames` call, or
one whole :meth:`iter_frames` index list) is routed to the path measured fastest for its shape
(``benchmarks/decode_speed.py``): only keyframes -> PyAV seeking to each keyframe and decoding just
that frame, single-threaded (frame threads would decode frames past it); frames in more than one
GOP -> PyAV sequential with frame threads, seeking over the GOPs that hold no requested frame and
converting only the requested frames (decord converts every frame it decodes and decodes far more
after its seeks); frames within one GOP -> decord's batch.  A forced backend always uses its own.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import numpy as np

from ._errors import VideoReadError

__all__ = ["VideoMetadata", "FrameBatch", "VideoDecoder", "open_video"]

# Projects that use decord raise this to survive spurious EOF errors on long files; it must be set
# before decord is imported, and a caller's own setting wins.
os.environ.setdefault("DECORD_EOF_RETRY_MAX", "20480")

_BACKENDS = ("auto", "decord", "pyav")
_CANDIDATE_MODES = ("fps", "keyframes")
# decode paths (see the module docstring); the one last used is in VideoDecoder._last_path
_PATH_DECORD = "decord"
_PATH_SEQUENTIAL = "pyav-sequential"
_PATH_KEYFRAMES = "pyav-keyframes"
_T = TypeVar("_T")


@dataclass(frozen=True)
class VideoMetadata:
    """What the decoder knows about the video stream (sizes are upright, after rotation)."""

    source: str
    duration: float
    fps: float
    num_frames: int
    width: int
    height: int
    rotation: int
    codec: str
    backend: str


@dataclass
class FrameBatch:
    """Decoded frames: ``data`` is ``N x H x W x 3`` uint8 RGB, upright."""

    data: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.shape[0])


class _Timeout(Exception):
    pass


def _run_with_timeout(fn: Callable[[], _T], timeout: float | None) -> _T:
    """Run ``fn`` in a daemon thread and wait at most ``timeout`` seconds.

    A decoder stuck inside C code cannot be killed; the thread is abandoned (daemon, so it never
    blocks interpreter exit) and the caller must not touch the object it was using again.
    """
    if timeout is None or timeout <= 0:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="tspo-video-decode", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise _Timeout()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _import_decord() -> Any | None:
    """decord is optional (no ARM wheels): import it lazily and treat any import failure as absent.

    decord loads its bundled FFmpeg 4 / libvpx with ``RTLD_GLOBAL``; importing PyAV first keeps
    PyAV's own libraries bound to PyAV (otherwise e.g. its libvpx-vp9 encoder fails to open).
    """
    try:
        import av  # noqa: F401, PLC0415
    except Exception:
        pass
    try:
        import decord  # noqa: PLC0415
    except Exception:  # ImportError, or a broken shared library
        return None
    return decord


def _scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Upright output size for ``short_side``: aspect kept, never upscaled, at least 1 px."""
    if short_side is None:
        return width, height
    if short_side <= 0:
        raise ValueError("short_side must be positive")
    short = min(width, height)
    if short_side >= short:
        return width, height
    scale = short_side / short
    if width <= height:
        return short_side, max(1, int(round(height * scale)))
    return max(1, int(round(width * scale))), short_side


def _upright(img: np.ndarray, rotation: int) -> np.ndarray:
    """Turn stored pixels clockwise by ``rotation`` degrees (np.rot90 turns counter-clockwise)."""
    if rotation % 360 == 0:
        return img
    return np.rot90(img, k=-(rotation // 90), axes=(-3, -2))


class VideoDecoder:
    """Decoder for one video: metadata, frame timestamps, candidates and batched frame decoding.

    ``source`` is a path, ``bytes`` or a binary file object; bytes and file objects are spooled
    to a temporary file (removed by :meth:`close`) so both backends can reopen and seek them.
    ``timeout`` bounds every single decoder call (open, one batch); ``num_threads`` is the decoder
    thread count (0: let FFmpeg choose).
    """

    metadata: VideoMetadata

    def __init__(
        self,
        source: str | os.PathLike | bytes | BinaryIO,
        *,
        backend: str = "auto",
        timeout: float = 60.0,
        num_threads: int = 0,
    ) -> None:
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        self._timeout = timeout
        self._num_threads = int(num_threads)
        self._tmpdir: str | None = None
        self._decord_readers: dict[tuple[int, int], Any] = {}
        self._decord_fix = 0  # extra clockwise turn needed on decord's output
        self._pyav: _PyAVSequential | None = None
        self._pyav_keys: _PyAVSequential | None = None  # unthreaded, for keyframe-only requests
        self._last_path: str | None = None
        self._closed = False
        self._label, self._path = self._resolve_source(source)
        self._finalizer = weakref.finalize(self, _cleanup_tmp, self._tmpdir)

        probe = self._call(lambda: _probe_pyav(self._path, self._label), "opening the file")
        self._ts: np.ndarray = probe["timestamps"]
        self._keyframes: np.ndarray = probe["keyframes"]
        self._pts_to_index: dict[int, int] = probe["pts_to_index"]
        self._time_base: float = probe["time_base"]
        self._start: int = probe["start"]
        rotation = probe["rotation"]
        stored_w, stored_h = probe["stored_size"]
        width, height = (stored_h, stored_w) if rotation in (90, 270) else (stored_w, stored_h)
        self._first_frame: np.ndarray = probe["first_frame"]  # upright, full size

        chosen = "pyav"
        self._decord_error: str | None = None
        if backend in ("auto", "decord"):
            try:
                self._open_decord(rotation, (width, height))
                chosen = "decord"
            except VideoReadError as exc:
                if backend == "decord":
                    raise
                self._decord_error = exc.reason
        self.metadata = VideoMetadata(
            source=self._label,
            duration=probe["duration"],
            fps=probe["fps"],
            num_frames=int(self._ts.shape[0]),
            width=width,
            height=height,
            rotation=rotation,
            codec=probe["codec"],
            backend=chosen,
        )
        self._requested_backend = backend

    # ------------------------------------------------------------------ source handling

    def _resolve_source(self, source: Any) -> tuple[str, str]:
        if isinstance(source, (bytes, bytearray, memoryview)):
            label = "<bytes>"
            data = bytes(source)
            if not data:
                raise VideoReadError(label, "empty input (0 bytes)")
            path = self._spool(lambda f: f.write(data))
            return label, path
        if hasattr(source, "read"):
            label = "<file object>"
            name = getattr(source, "name", None)
            if isinstance(name, str) and name:
                label = f"<file object {name}>"

            def copy(f: BinaryIO) -> None:
                try:
                    shutil.copyfileobj(source, f, 1 << 20)
                except Exception as exc:
                    raise VideoReadError(label, f"cannot read the file object: {exc}") from exc

            path = self._spool(copy)
            if os.path.getsize(path) == 0:
                raise VideoReadError(label, "empty input (0 bytes)")
            return label, path
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            label = str(path)
            if not os.path.exists(path):
                raise VideoReadError(label, "file not found")
            if not os.path.isfile(path):
                raise VideoReadError(label, "not a regular file")
            if os.path.getsize(path) == 0:
                raise VideoReadError(label, "file is empty (0 bytes)")
            return label, path
        raise TypeError(f"unsupported video source type {type(source).__name__}")

    def _spool(self, write: Callable[[BinaryIO], Any]) -> str:
        """Copy in-memory / stream input to a private temporary file (seekable, reopenable)."""
        self._tmpdir = tempfile.mkdtemp(prefix="tspo-video-")
        path = os.path.join(self._tmpdir, "input")
        with open(path, "wb") as f:
            write(f)
        return path

    # ------------------------------------------------------------------ helpers

    def _call(self, fn: Callable[[], _T], what: str) -> _T:
        """Run a PyAV step under the timeout, translating failures into VideoReadError."""
        try:
            return _run_with_timeout(fn, self._timeout)
        except _Timeout:
            raise VideoReadError(self._label, f"decoder timed out after {self._timeout:g}s while {what}") from None
        except VideoReadError as exc:
            if self._label != self._path and self._path in exc.reason:  # hide our temp file name
                raise VideoReadError(self._label, exc.reason.replace(self._path, self._label)) from exc
            raise
        except Exception as exc:
            raise VideoReadError(self._label, f"error while {what}: {_describe(exc)}") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the decoder is closed")

    @property
    def backend(self) -> str:
        """Backend currently used for decoding ("decord" or "pyav")."""
        return self.metadata.backend

    def _switch_to_pyav(self, reason: str) -> None:
        self._decord_error = reason
        self._decord_readers.clear()
        self.metadata = dataclasses.replace(self.metadata, backend="pyav")

    # ------------------------------------------------------------------ decord

    def _open_decord(self, rotation: int, upright_size: tuple[int, int]) -> None:
        decord = _import_decord()
        if decord is None:
            raise VideoReadError(self._label, "decord is not installed")
        vr = self._decord_reader_raw(decord, -1, -1)
        n = self._decord_call(lambda: len(vr), "reading the frame count")
        if n != len(self._ts):
            raise VideoReadError(self._label, f"decord sees {n} frames, the container index {len(self._ts)}")
        # decord 0.6 applies the rotation only when its bundled FFmpeg exposes it (MP4 yes, MKV
        # no): find out what it did by matching its first frame against PyAV's upright one.
        if rotation:
            first = self._decord_call(lambda: vr.get_batch([0]).asnumpy()[0], "decoding frame 0")
            fix = _match_orientation(first, self._first_frame)
            if fix is None:
                raise VideoReadError(self._label, "cannot tell how decord oriented the rotated frames")
            self._decord_fix = fix
        self._decord_readers[upright_size] = vr

    def _decord_reader_raw(self, decord: Any, width: int, height: int) -> Any:
        def make() -> Any:
            return decord.VideoReader(
                self._path, ctx=decord.cpu(0), width=width, height=height, num_threads=self._num_threads
            )

        return self._decord_call(make, "opening with decord")

    def _decord_call(self, fn: Callable[[], _T], what: str) -> _T:
        try:
            return _run_with_timeout(fn, self._timeout)
        except _Timeout:
            raise VideoReadError(self._label, f"decoder timed out after {self._timeout:g}s while {what}") from None
        except Exception as exc:  # decord raises DECORDError / RuntimeError from C++
            raise VideoReadError(self._label, f"decord failed while {what}: {_describe(exc)}") from exc

    def _decord_reader(self, size: tuple[int, int]) -> Any:
        vr = self._decord_readers.get(size)
        if vr is None:
            decord = _import_decord()
            w, h = size
            if self._decord_fix in (90, 270):  # decord's output is sideways: ask for stored dims
                w, h = h, w
            vr = self._decord_reader_raw(decord, w, h)
            self._decord_readers[size] = vr
        return vr

    def _decode_decord(self, indices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        vr = self._decord_reader(size)
        data = self._decord_call(lambda: vr.get_batch(indices.tolist()).asnumpy(), "decoding frames")
        data = _upright(data, self._decord_fix)
        if data.shape[1:3] != (size[1], size[0]):
            raise VideoReadError(self._label, f"decord returned frames of shape {data.shape[1:3]}")
        return np.ascontiguousarray(data)

    # ------------------------------------------------------------------ PyAV

    def _decode_pyav(
        self, indices: np.ndarray, size: tuple[int, int], keyframes: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        attr = "_pyav_keys" if keyframes else "_pyav"
        reader = getattr(self, attr)
        if reader is None:
            reader = _PyAVSequential(self, threaded=not keyframes)
            setattr(self, attr, reader)
        try:
            return _run_with_timeout(lambda: reader.decode(indices, size), self._timeout)
        except _Timeout:
            setattr(self, attr, None)  # abandoned with its worker thread
            raise VideoReadError(
                self._label, f"decoder timed out after {self._timeout:g}s while decoding frames"
            ) from None
        except VideoReadError:
            setattr(self, attr, None)
            raise
        except Exception as exc:
            setattr(self, attr, None)
            raise VideoReadError(self._label, f"error while decoding frames: {_describe(exc)}") from exc

    # ------------------------------------------------------------------ public API

    def frame_timestamps(self) -> np.ndarray:
        """Presentation time (s) of every frame, ascending; built from packets, without decoding."""
        return self._ts.copy()

    def candidates(
        self, fps: float = 1.0, max_candidates: int | None = None, mode: str = "fps"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frames sampled at ``fps`` over the whole video: ``(indices, timestamps)``, ascending.

        Target instants ``0, 1/fps, ...`` below the duration map to a frame; duplicates are
        removed.  ``mode="fps"``: the frame on screen at that instant (latest timestamp ``<=``
        target).  ``mode="keyframes"``: the nearest keyframe (the earlier one on a tie), i.e. the
        stream's keyframes thinned to about ``fps`` per second where they are denser; decoding
        these decodes only the keyframes, and each stands for its targets with an error up to half
        the keyframe interval (:meth:`candidate_error` measures it).  A stream that flags no
        keyframe after its first frame falls back to ``"fps"``.  ``max_candidates`` keeps that
        many, spread evenly over the list.  Always at least frame 0.
        """
        if fps <= 0:
            raise ValueError("fps must be positive")
        if mode not in _CANDIDATE_MODES:
            raise ValueError(f"mode must be one of {_CANDIDATE_MODES}, got {mode!r}")
        ts = self._ts
        targets = self._targets(fps)
        if mode == "keyframes" and len(self._keyframes) > 1:
            idx = np.unique(self._nearest_keyframes(targets))
        else:
            idx = np.searchsorted(ts, targets + 1e-9, side="right") - 1
            idx = np.unique(np.clip(idx, 0, len(ts) - 1)).astype(np.int64)
        if max_candidates is not None:
            if max_candidates < 1:
                raise ValueError("max_candidates must be >= 1")
            if len(idx) > max_candidates:
                pick = np.unique(np.round(np.linspace(0, len(idx) - 1, max_candidates)).astype(np.int64))
                idx = idx[pick]
        return idx, ts[idx].copy()

    def candidate_error(self, fps: float = 1.0, mode: str = "keyframes") -> np.ndarray:
        """Per target instant ``k / fps``: seconds between it and the frame that stands for it.

        For ``mode="keyframes"`` the nearest keyframe; for ``"fps"`` the latest frame at or
        before the instant (at most one frame interval).  Before any ``max_candidates`` thinning.
        """
        if fps <= 0:
            raise ValueError("fps must be positive")
        if mode not in _CANDIDATE_MODES:
            raise ValueError(f"mode must be one of {_CANDIDATE_MODES}, got {mode!r}")
        targets = self._targets(fps)
        if mode == "keyframes" and len(self._keyframes) > 1:
            idx = self._nearest_keyframes(targets)
        else:
            idx = np.clip(np.searchsorted(self._ts, targets + 1e-9, side="right") - 1, 0, len(self._ts) - 1)
        return np.abs(self._ts[idx] - targets)

    def _targets(self, fps: float) -> np.ndarray:
        n_targets = max(1, int(np.ceil(self.metadata.duration * fps - 1e-9)))
        return np.arange(n_targets, dtype=np.float64) / fps

    def _nearest_keyframes(self, targets: np.ndarray) -> np.ndarray:
        """Index of the keyframe nearest each target (the earlier one on a tie)."""
        keys = self._keyframes
        kt = self._ts[keys]
        after = np.clip(np.searchsorted(kt, targets + 1e-9, side="right"), 1, len(keys) - 1)
        before = after - 1
        later = (kt[after] - targets) < (targets - kt[before]) - 1e-9
        return keys[np.where(later, after, before)].astype(np.int64)

    def iter_frames(
        self, indices: Iterable[int], *, short_side: int | None = None, batch_size: int = 32
    ) -> Iterator[FrameBatch]:
        """Decode ``indices`` (sorted, de-duplicated) in batches of at most ``batch_size`` frames.

        ``short_side`` downsizes while decoding (aspect kept, never upscaled) so batches stay
        small; memory is bounded by one batch.
        """
        self._check_open()
        idx = self._normalize(indices)
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        size = _scaled_size(self.metadata.width, self.metadata.height, short_side)
        path = self._choose_path(idx)  # once for the whole list: every batch is decoded alike
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            data, got = self._decode(chunk, size, path)
            yield FrameBatch(data=data, indices=got, timestamps=self._ts[got].copy())

    def get_frames(self, indices: Iterable[int], *, short_side: int | None = None) -> FrameBatch:
        """Decode ``indices`` in the order given (duplicates allowed), full resolution by default."""
        self._check_open()
        req = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
        req = req.reshape(-1)
        self._check_range(req)
        uniq, inverse = np.unique(req, return_inverse=True)
        size = _scaled_size(self.metadata.width, self.metadata.height, short_side)
        if len(uniq) == 0:
            empty = np.zeros((0, size[1], size[0], 3), dtype=np.uint8)
            return FrameBatch(empty, np.zeros(0, np.int64), np.zeros(0, np.float64))
        data, got = self._decode(uniq, size, self._choose_path(uniq))
        data = data[inverse]
        got = got[inverse]
        return FrameBatch(data=data, indices=got, timestamps=self._ts[got].copy())

    def close(self) -> None:
        """Release decoders and remove the temporary copy of in-memory input."""
        if self._closed:
            return
        self._closed = True
        self._decord_readers.clear()
        for attr in ("_pyav", "_pyav_keys"):
            reader = getattr(self, attr)
            if reader is not None:
                reader.close()
                setattr(self, attr, None)
        self._finalizer()

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.metadata.num_frames

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"VideoDecoder({m.source!r}, {m.width}x{m.height}, {m.num_frames} frames, "
            f"{m.duration:.2f}s, backend={m.backend!r})"
        )

    # ------------------------------------------------------------------ internals

    def _normalize(self, indices: Iterable[int]) -> np.ndarray:
        arr = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
        arr = np.unique(arr.reshape(-1))
        self._check_range(arr)
        return arr

    def _check_range(self, arr: np.ndarray) -> None:
        if arr.size and (arr.min() < 0 or arr.max() >= len(self._ts)):
            raise IndexError(f"frame index out of range [0, {len(self._ts)}) in {self._label}")

    def _choose_path(self, idx: np.ndarray) -> str:
        """Fastest correct decode path for sorted unique ``idx`` (module docstring, measured)."""
        if len(idx) and bool(np.isin(idx, self._keyframes, assume_unique=True).all()) and (
            len(idx) == 1 or int(np.diff(idx).min()) > 1
        ):
            path = _PATH_KEYFRAMES  # a run of adjacent keyframes (all-intra) is decoded in order
        else:
            gops = np.searchsorted(self._keyframes, idx, side="right") if len(idx) else idx
            path = _PATH_SEQUENTIAL if len(idx) and gops[0] != gops[-1] else _PATH_DECORD
        if self._requested_backend == "decord":
            return _PATH_DECORD
        if self._requested_backend == "pyav" or self.metadata.backend != "decord":
            return _PATH_SEQUENTIAL if path == _PATH_DECORD else path
        return path

    def _decode(self, idx: np.ndarray, size: tuple[int, int], path: str) -> tuple[np.ndarray, np.ndarray]:
        """Decode sorted unique ``idx`` at upright ``size``; returns (frames, indices actually used)."""
        if path == _PATH_DECORD and self.metadata.backend == "decord":
            self._last_path = _PATH_DECORD
            try:
                return self._decode_decord(idx, size), idx
            except VideoReadError as exc:
                if self._requested_backend == "decord":
                    raise
                self._switch_to_pyav(exc.reason)
        keyframes = path == _PATH_KEYFRAMES
        self._last_path = _PATH_KEYFRAMES if keyframes else _PATH_SEQUENTIAL
        return self._decode_pyav(idx, size, keyframes)


def _cleanup_tmp(tmpdir: str | None) -> None:
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # decord's C++ errors carry a long stack trace: keep the line that says what went wrong
    lines = [ln.strip() for ln in text if ln.strip() and not ln.strip().startswith(("Stack trace", "[bt]"))]
    msg = next((ln for ln in lines if "Check failed" in ln or "ERROR" in ln), lines[0] if lines else "")
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _match_orientation(candidate: np.ndarray, upright: np.ndarray) -> int | None:
    """Clockwise turn (0/90/180/270) that makes ``candidate`` match ``upright``; None if unclear.

    Symmetric content (a black first frame) cannot tell the turns apart: then decord is not used.
    """
    ref = upright.astype(np.float32)
    errs: list[tuple[float, int]] = []
    for turn in (0, 90, 180, 270):
        img = _upright(candidate, turn)
        if img.shape == upright.shape:
            errs.append((float(np.abs(img.astype(np.float32) - ref).mean()), turn))
    if not errs:
        return None
    errs.sort()
    if errs[0][0] > 8.0 or (len(errs) > 1 and errs[1][0] - errs[0][0] < 8.0):
        return None
    return errs[0][1]


# ---------------------------------------------------------------------- PyAV probing and decoding


def _open_container(path: str) -> Any:
    import av  # noqa: PLC0415

    return av.open(path, mode="r", metadata_errors="ignore")


def _video_stream(container: Any) -> Any | None:
    """First video stream that is a real video (not cover art / a thumbnail)."""
    import av  # noqa: PLC0415

    still = int(av.stream.Disposition.attached_pic) | int(av.stream.Disposition.timed_thumbnails)
    for stream in container.streams.video:
        if not int(stream.disposition) & still:
            return stream
    return None


def _probe_pyav(path: str, label: str) -> dict[str, Any]:
    """Demux the video stream once (no decoding) for the timestamp table, then decode frame 0."""
    import av  # noqa: PLC0415

    try:
        container = _open_container(path)
    except av.error.FFmpegError as exc:
        raise VideoReadError(label, f"not a readable media file ({_describe(exc)})") from exc
    try:
        stream = _video_stream(container)
        if stream is None:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            extra = " besides cover art" if container.streams.video else ""
            raise VideoReadError(label, f"no video stream{extra} (streams: {', '.join(kinds)})")
        tb = stream.time_base
        if tb is None or tb == 0:
            raise VideoReadError(label, "video stream has no time base")
        pts_list: list[int] = []
        durations: list[int] = []
        keys: list[bool] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    continue
                pts_list.append(int(ts))
                durations.append(int(packet.duration or 0))
                keys.append(bool(packet.is_keyframe))
        except av.error.FFmpegError:
            pass  # a damaged tail: keep the packets read so far
        if not pts_list:
            raise VideoReadError(label, "the video stream has no frames")
        pts = np.asarray(pts_list, dtype=np.int64)
        order = np.argsort(pts, kind="stable")
        pts = pts[order]
        # identical pts would make indices ambiguous; keep the first (decord does the same lookup)
        pts, first = np.unique(pts, return_index=True)
        durs = np.asarray(durations, dtype=np.int64)[order][first]
        keyflags = np.asarray(keys, dtype=bool)[order][first]
        start = stream.start_time if stream.start_time is not None else int(pts[0])
        time_base = float(tb)
        timestamps = (pts - start).astype(np.float64) * time_base

        n = len(timestamps)
        rate = stream.average_rate
        avg = float(rate) if rate else 0.0
        gaps = np.diff(timestamps)
        if durs[-1] > 0:
            last = durs[-1] * time_base
        elif len(gaps):
            last = float(np.median(gaps))
        else:
            last = 1.0 / avg if avg > 0 else 0.0
        duration = float(timestamps[-1] + last)
        if duration <= 0:
            duration = float(stream.duration * time_base) if stream.duration else 0.0
        fps = n / duration if duration > 0 else avg
        if avg > 0 and duration > 0 and abs(avg - fps) <= 0.01 * fps:
            fps = avg  # the container's exact rational rate (e.g. 30000/1001)

        # rotation and a first upright frame (also proves the stream decodes): demuxing consumed
        # the file, so reopen rather than trust a seek back to the start
        container.close()
        container = _open_container(path)
        stream = _video_stream(container)
        first_frame = None
        rotation = 0
        try:
            for frame in container.decode(stream):
                # PyAV reports the display matrix's counter-clockwise angle
                rotation = (-int(round(frame.rotation or 0))) % 360
                first_frame = frame
                break
        except av.error.FFmpegError as exc:
            raise VideoReadError(label, f"cannot decode the video stream ({_describe(exc)})") from exc
        if first_frame is None:
            raise VideoReadError(label, "zero decodable frames")
        if rotation not in (0, 90, 180, 270):
            rotation = int(round(rotation / 90.0)) * 90 % 360
        stored = (first_frame.width, first_frame.height)
        image = _upright(first_frame.to_ndarray(format="rgb24"), rotation)
        codec = stream.codec_context.name or "unknown"
    finally:
        container.close()

    key_idx = np.flatnonzero(keyflags).astype(np.int64)
    if len(key_idx) == 0 or key_idx[0] != 0:
        key_idx = np.concatenate([[0], key_idx]).astype(np.int64)
    return {
        "timestamps": timestamps,
        "keyframes": key_idx,
        "pts_to_index": {int(p): i for i, p in enumerate(pts)},
        "time_base": time_base,
        "start": int(start),
        "rotation": rotation,
        "stored_size": stored,
        "first_frame": np.ascontiguousarray(image),
        "duration": duration,
        "fps": float(fps),
        "codec": codec,
    }


class _PyAVSequential:
    """Forward-only PyAV decoder over the stream, reopened or seeked when a request goes backwards.

    Decoded frames are matched to indices through their pts, so the index space is the same as
    the packet table even when the decoder drops or merges frames; a requested frame that never
    comes out of the decoder is replaced by the nearest decodable one (reported in ``indices``).
    """

    def __init__(self, owner: VideoDecoder, *, threaded: bool = True) -> None:
        self._owner = owner
        self._threaded = threaded
        self._container: Any = None
        self._stream: Any = None
        self._frames: Iterator[Any] | None = None
        self._pos = -1  # index of the last frame pulled from the decoder
        self._seek_ok = True

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
        self._container = self._stream = self._frames = None
        self._pos = -1

    def _open(self) -> None:
        self.close()
        self._container = _open_container(self._owner._path)
        self._stream = _video_stream(self._container)
        if self._threaded:
            self._stream.thread_type = "AUTO"
            self._stream.codec_context.thread_count = self._owner._num_threads
        else:  # one frame per seek: frame threads would decode the frames after it too
            self._stream.thread_type = "SLICE"
        self._frames = self._container.decode(self._stream)
        self._pos = -1

    def _seek_to(self, key: int) -> None:
        """Seek to keyframe ``key``; the demuxer may land on an earlier keyframe (checked later)."""
        owner = self._owner
        pts = int(round(owner._ts[key] / owner._time_base)) + owner._start
        self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._stream)
        self._pos = key - 1

    def _index_of(self, frame: Any) -> int:
        owner = self._owner
        pts = frame.pts
        if pts is not None:
            i = owner._pts_to_index.get(int(pts))
            if i is not None:
                return i
            if frame.time_base is not None:
                t = (int(pts) - owner._start) * float(frame.time_base)
                return max(int(np.searchsorted(owner._ts, t + 1e-6, side="right") - 1), 0)
        return self._pos + 1

    def _next(self) -> tuple[int, Any] | None:
        import av  # noqa: PLC0415

        assert self._frames is not None
        errors = 0
        while True:
            try:
                frame = next(self._frames)
            except StopIteration:
                return None
            except av.error.EOFError:
                return None
            except av.error.FFmpegError:
                # a damaged packet: skip it, the decoder resynchronises on the next keyframe
                errors += 1
                if errors > 1000:
                    return None
                continue
            i = self._index_of(frame)
            if i <= self._pos:
                continue  # already passed (e.g. a seek landed early)
            self._pos = i
            return i, frame

    def decode(self, indices: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        owner = self._owner
        rotation = owner.metadata.rotation
        out_w, out_h = size
        stored_w, stored_h = (out_h, out_w) if rotation in (90, 270) else (out_w, out_h)
        full = (out_w, out_h) == (owner.metadata.width, owner.metadata.height)
        n = len(indices)
        data = np.empty((n, out_h, out_w, 3), dtype=np.uint8)
        used = np.asarray(indices, dtype=np.int64).copy()
        filled = np.zeros(n, dtype=bool)
        converted: dict[int, np.ndarray] = {}

        def convert(item: tuple[int, Any]) -> np.ndarray:
            i, frame = item
            img = converted.get(i)
            if img is None:
                if full:
                    img = frame.to_ndarray(format="rgb24")
                else:
                    img = frame.reformat(
                        width=stored_w, height=stored_h, format="rgb24", interpolation="AREA"
                    ).to_ndarray()
                img = _upright(img, rotation)
                converted.clear()
                converted[i] = img
            return img

        if self._container is None or int(indices[0]) <= self._pos:
            self._open()
        keys = owner._keyframes
        prev: tuple[int, Any] | None = None  # last decoded frame, stands in for undecodable ones
        seek_target: int | None = None
        k = 0
        while k < n:
            target = int(indices[k])
            if self._seek_ok:
                key = int(keys[np.searchsorted(keys, target, side="right") - 1])
                if key > self._pos + 1:
                    self._seek_to(key)
                    prev, seek_target = None, target
            item = self._next()
            if item is None:
                break
            i, frame = item
            if seek_target is not None:
                if i > seek_target:  # the seek overshot: this file's index is unreliable
                    self._seek_ok = False
                    self._open()
                    prev, seek_target = None, None
                    continue
                seek_target = None
            if i < target:
                prev = item
                continue
            # frame i >= target serves every request <= i (the previous frame if it is nearer)
            while k < n and int(indices[k]) <= i:
                t = int(indices[k])
                src = item
                if t != i and prev is not None and (t - prev[0]) <= (i - t):
                    src = prev
                data[k], used[k], filled[k] = convert(src), src[0], True
                k += 1
            prev = item
        if not filled.all():
            if prev is None and not filled.any():
                raise VideoReadError(owner._label, f"frames {indices[~filled][:5].tolist()} could not be decoded")
            if prev is not None:
                data[~filled], used[~filled] = convert(prev), prev[0]
            else:
                j = int(np.flatnonzero(filled)[-1])
                data[~filled], used[~filled] = data[j], used[j]
        return data, used


def open_video(source: str | os.PathLike | bytes | BinaryIO, **kwargs: Any) -> VideoDecoder:
    """Open a video for decoding; keyword arguments go to :class:`VideoDecoder`."""
    return VideoDecoder(source, **kwargs)
