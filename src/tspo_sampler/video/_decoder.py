"""`VideoDecoder`: one index space over the backends, candidates, and batched, resized, upright frames."""

from __future__ import annotations

import logging
import os
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, Protocol

import numpy as np

from .._errors import VideoDamageWarning, VideoReadError
from ._candidates import candidate_error, candidate_indices, check_finite, check_max_candidates
from ._decord import DecordReader
from ._probe import probe
from ._pyav import PyAVReader
from ._routing import BACKENDS, OPTIONAL_BACKENDS, PATH_BACKEND, PATH_KEYFRAMES, choose_path
from ._sources import remove_spool, spool
from ._torchcodec import TorchcodecReader
from ._types import Decoded, FrameBatch, StreamIndex, VideoMetadata, scaled_size
from ._watchdog import guarded

__all__ = ["MAX_LOST_FRACTION", "VideoDecoder", "open_video"]

log = logging.getLogger("tspo_sampler.video")

MAX_LOST_FRACTION = 0.5
"""``iter_frames`` raises ``VideoReadError`` when more than this share of the requested frames is lost to
damaged data; below it the lost frames are left out with one :class:`VideoDamageWarning`."""


class Reader(Protocol):
    """What a backend offers the decoder: frames at sorted unique indices, at an upright size."""

    def decode(self, indices: np.ndarray, size: tuple[int, int]) -> Decoded: ...

    def close(self) -> None: ...


# backends opened and validated with the decoder when asked for by name (see _routing.OPTIONAL_BACKENDS)
_OPENERS: dict[str, Callable[..., Reader]] = {"decord": DecordReader, "torchcodec": TorchcodecReader}


def _pyav_reader(path: str) -> Callable[[StreamIndex, int], Reader]:
    threaded = path != PATH_KEYFRAMES  # one frame per seek: frame threads would decode the frames after it

    def make(index: StreamIndex, num_threads: int) -> Reader:
        return PyAVReader(index, num_threads=num_threads, threaded=threaded)

    return make


class VideoDecoder:
    """Decoder for one video: metadata, frame timestamps, candidates and batched frame decoding.

    ``source`` is a path, ``bytes`` or a binary file object; bytes and file objects are spooled
    to a temporary file (removed by :meth:`close`) so every backend can reopen and seek them.
    ``backend`` is ``"auto"`` (PyAV, each request on its fastest path, see :mod:`._routing`), ``"pyav"``,
    ``"decord"`` or ``"torchcodec"`` (the ``torchcodec`` extra).  Only PyAV reports damaged data inside the
    bitstream; a forced decord or torchcodec may conceal it.  ``timeout``
    bounds every single decoder call (open, one batch); ``num_threads`` is the decoder thread count (0: let
    FFmpeg choose).  ``device`` (torchcodec only): ``"cuda"`` decodes with NVDEC on the GPU; frames still come
    back as CPU ``uint8`` arrays.

    Frame ``i`` is the ``i``-th frame of the stream in presentation order; timestamps are the real
    presentation times (seconds from the stream start), never ``i / fps``.  Frames come out upright.
    The stream start is the first frame shown with a timestamp, whatever the container: an MPEG-TS PTS starting
    at 1.4 s, frames an MP4 edit list hides and Matroska frames without a PTS do not move it (the last two are
    not frames of the index; PTS-less ones are named in a warning).  Every backend decodes full-size frames and
    resizes them with one function (:func:`~._types.resize_frames`), so they hand out identical pixels.
    """

    metadata: VideoMetadata

    def __init__(
        self,
        source: str | os.PathLike | bytes | BinaryIO,
        *,
        backend: str = "auto",
        timeout: float = 60.0,
        num_threads: int = 0,
        device: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self._device = _check_device(device, backend)
        if timeout is not None:
            check_finite(timeout, "timeout")
        if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 0:
            raise ValueError(f"num_threads must be a non-negative integer, got {num_threads!r}")
        self._timeout = timeout
        self._num_threads = int(num_threads)
        self._requested_backend = backend
        self._readers: dict[str, Reader] = {}  # decode path -> reader
        self._last_path: str | None = None
        self._closed = False
        self.damage: list[str] = []  # what the warnings said: the file ends early, frames lost to damage
        spooled = spool(source)
        self._label, self._path = spooled.label, spooled.path
        self._finalizer = weakref.finalize(self, remove_spool, spooled.tmpdir)
        try:
            self._index = self._call(lambda: probe(self._path, self._label), "opening the file")
            chosen = self._open_optional(backend)
        except BaseException:
            self._finalizer()
            raise
        ix = self._index
        if ix.ends_early():
            message = (
                f"the file ends early: the container states {ix.declared_duration:.2f} s"
                f"{f' ({ix.declared_frames} frames)' if ix.declared_frames else ''}, only {ix.duration:.2f} s "
                f"({ix.num_frames} frames) can be read "
                "(truncated download?); using what is there"
            )
            self._warn_damage(message)
        if ix.missing_spans:
            where = ", ".join(f"{a:.2f}-{b:.2f} s{f' ({n} bytes)' if n else ''}" for a, b, n in ix.missing_spans[:5])
            self._warn_damage(f"unreadable data: no frames between {where}; those stretches have no candidates")
        self._suspect = ix.suspect
        if ix.untimed:
            self._warn_damage(
                f"{ix.untimed} frames have no presentation time (PTS) and are left out; times count from the "
                "first frame that has one"
            )
        if ix.resets:
            where = ", ".join(f"{t:.2f} s" for t in ix.resets[:5])
            log.info("%s: timestamps restart at %s (joined segments): later frames follow on", self._label, where)
        width, height = ix.upright_size
        self.metadata = VideoMetadata(
            source=self._label,
            duration=ix.duration,
            fps=ix.fps,
            num_frames=ix.num_frames,
            width=width,
            height=height,
            rotation=ix.rotation,
            codec=ix.codec,
            backend=chosen,
        )

    def _open_optional(self, backend: str) -> str:
        """Open the optional backend asked for by name (``auto`` uses PyAV alone); returns the backend's name."""
        if backend not in OPTIONAL_BACKENDS:
            return "pyav"
        extra = {"device": self._device} if backend == "torchcodec" and self._device else {}
        reader = _OPENERS[backend](self._index, num_threads=self._num_threads, timeout=self._timeout, **extra)
        for path, owner in PATH_BACKEND.items():
            if owner == backend:
                self._readers[path] = reader
        return backend

    # ------------------------------------------------------------------ helpers

    def _call(self, fn: Callable[[], Any], what: str, failure: str = "error") -> Any:
        return guarded(fn, label=self._label, timeout=self._timeout, what=what, failure=failure, hide=self._path)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the decoder is closed")

    @property
    def backend(self) -> str:
        """The backend that decodes: "pyav" (``auto`` too), "decord" or "torchcodec"."""
        return self.metadata.backend

    # ------------------------------------------------------------------ public API

    def frame_timestamps(self) -> np.ndarray:
        """Presentation time (s) of every frame, ascending; built from packets, without decoding."""
        return self._index.timestamps.copy()

    def keyframe_indices(self) -> np.ndarray:
        """Indices of the frames flagged as keyframes (ascending, starting with 0); decoding a frame costs the
        frames from the keyframe before it. From the packet table, without decoding."""
        return np.asarray(self._index.keyframes, dtype=np.int64).copy()

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
        many, spread evenly over the list.  Always at least frame 0.  The rules live in
        :mod:`tspo_sampler.video._candidates`.
        """
        ix = self._index
        idx = candidate_indices(
            ix.timestamps, ix.keyframes, ix.duration, fps, mode, check_max_candidates(max_candidates)
        )
        return idx, ix.timestamps[idx].copy()

    def candidate_error(self, fps: float = 1.0, mode: str = "keyframes") -> np.ndarray:
        """Per target instant ``k / fps``: seconds between it and the frame that stands for it.

        For ``mode="keyframes"`` the nearest keyframe; for ``"fps"`` the latest frame at or
        before the instant (at most one frame interval).  Before any ``max_candidates`` thinning.
        """
        ix = self._index
        return candidate_error(ix.timestamps, ix.keyframes, ix.duration, fps, mode)

    def iter_frames(
        self, indices: Iterable[int], *, short_side: int | None = None, batch_size: int = 32
    ) -> Iterator[FrameBatch]:
        """Decode ``indices`` (sorted, de-duplicated) in batches of at most ``batch_size`` frames.

        ``short_side`` downsizes while decoding (aspect kept, never upscaled) so batches stay
        small; memory is bounded by one batch.
        """
        self._check_open()
        idx = np.unique(self._as_indices(indices))
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        size = scaled_size(self.metadata.width, self.metadata.height, short_side)
        path = self._choose_path(idx)  # once for the whole list: every batch is decoded alike
        lost: list[np.ndarray] = []
        n_lost = 0
        seen: set[int] = set()
        ts = self._index.timestamps
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            out = self._decode(chunk, size, path)
            if not out.served.all():
                lost.append(chunk[~out.served])
                n_lost += int((~out.served).sum())
                if n_lost > MAX_LOST_FRACTION * len(idx):
                    raise VideoReadError(self._label, self._lost_message(np.concatenate(lost), len(idx), "over half"))
            # a neighbour standing in for a skipped frame is reported once, never as two candidates
            keep = out.served & np.array([int(u) not in seen for u in out.used], dtype=bool)
            seen.update(int(u) for u in out.used[keep])
            got = out.used[keep]
            yield FrameBatch(data=out.data[keep], indices=got, timestamps=ts[got].copy())
        if lost:
            message = self._lost_message(np.concatenate(lost), len(idx), "left out")
            self._warn_damage(message)

    def _warn_damage(self, message: str) -> None:
        """One warning per damaged read; kept in :attr:`damage` (the sampler stores it with cached features)."""
        self.damage.append(message)
        log.info("%s: %s", self._label, message)
        warnings.warn(f"video {self._label}: {message}", VideoDamageWarning, stacklevel=3)

    def _lost_message(self, lost: np.ndarray, total: int, outcome: str) -> str:
        """``lost`` requested frames (sorted) as time spans: one summary for a damaged stretch."""
        spans = _spans(self._index.timestamps, lost, self._index)
        where = ", ".join(f"{a:.2f}-{b:.2f} s" if b > a else f"{a:.2f} s" for a, b in spans[:5])
        more = f" and {len(spans) - 5} more" if len(spans) > 5 else ""
        return (
            f"{len(lost)} of {total} requested frames could not be decoded (damaged data at {where}{more}); "
            f"{outcome}"
        )

    def get_frames(self, indices: Iterable[int], *, short_side: int | None = None) -> FrameBatch:
        """Decode ``indices`` in the order given (duplicates allowed), full resolution by default."""
        self._check_open()
        req = self._as_indices(indices)
        uniq, inverse = np.unique(req, return_inverse=True)
        size = scaled_size(self.metadata.width, self.metadata.height, short_side)
        if len(uniq) == 0:
            empty = np.zeros((0, size[1], size[0], 3), dtype=np.uint8)
            return FrameBatch(empty, np.zeros(0, np.int64), np.zeros(0, np.float64))
        out = self._decode(uniq, size, self._choose_path(uniq))
        if not out.served.all():
            raise VideoReadError(self._label, self._lost_message(uniq[~out.served], len(uniq), "cannot return them"))
        got = out.used[inverse]
        return FrameBatch(data=out.data[inverse], indices=got, timestamps=self._index.timestamps[got].copy())

    def close(self) -> None:
        """Release decoders and remove the temporary copy of in-memory input."""
        if self._closed:
            return
        self._closed = True
        for reader in {id(r): r for r in self._readers.values()}.values():
            reader.close()
        self._readers.clear()
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

    def _as_indices(self, indices: Iterable[int]) -> np.ndarray:
        arr = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
        arr = arr.reshape(-1)
        n = self._index.num_frames
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise IndexError(f"frame index out of range [0, {n}) in {self._label}")
        return arr

    def _choose_path(self, idx: np.ndarray) -> str:
        return choose_path(idx, self._index.keyframes, requested=self._requested_backend)

    def _reader(self, path: str) -> Reader:
        reader = self._readers.get(path)
        if reader is None:  # PyAV paths open lazily; optional backends only at construction
            reader = _pyav_reader(path)(self._index, self._num_threads)
            self._readers[path] = reader
        return reader

    def _decode(self, idx: np.ndarray, size: tuple[int, int], path: str) -> Decoded:
        """Decode sorted unique ``idx`` at upright ``size`` on ``path``."""
        backend = PATH_BACKEND[path]
        self._last_path = path
        reader = self._reader(path)
        try:
            out = self._call(lambda: reader.decode(idx, size), "decoding frames", failure=f"{backend} failed")
        except VideoReadError:
            if backend == "pyav":
                self._readers.pop(path, None)  # abandoned (maybe still running in its worker thread)
            raise
        if len(self._suspect):  # frames next to a hole may be drawn from damaged data: never served
            out.served &= ~np.isin(idx, self._suspect) & ~np.isin(out.used, self._suspect)
        return out


def _check_device(device: str | None, backend: str) -> str | None:
    """Only torchcodec decodes on a GPU (NVDEC); a device this machine lacks is refused before the file opens."""
    if device is None:
        return None
    import torch  # noqa: PLC0415

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if kind == "cpu":
        return str(device)
    if kind != "cuda" or backend != "torchcodec":
        raise ValueError(f"device={device!r} decodes on the GPU only with backend='torchcodec' (NVDEC), "
                         f"got backend={backend!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: this machine has no CUDA device for NVDEC decoding; "
                         "use device=None (CPU decoding)")
    return str(device)


def _spans(timestamps: np.ndarray, lost: np.ndarray, index: StreamIndex) -> list[tuple[float, float]]:
    """Time spans of ``lost`` frames, one per run of consecutive GOPs."""
    gops = np.array([index.gop_of(int(i)) for i in lost])
    breaks = np.flatnonzero(np.diff(gops) > 1) + 1
    return [(float(timestamps[r[0]]), float(timestamps[r[-1]])) for r in np.split(lost, breaks)]


def open_video(source: str | os.PathLike | bytes | BinaryIO, **kwargs: Any) -> VideoDecoder:
    """Open a video for decoding; keyword arguments go to :class:`VideoDecoder`."""
    return VideoDecoder(source, **kwargs)
