"""On-disk cache of per-video image features.

Image features depend on the video, the encoder and the candidate settings, never on the question, so a
second question about the same video costs one text encoding. Entries are safetensors files written
atomically (temporary file + rename) that carry a SHA-256 of their tensor bytes and their info JSON: a
damaged entry (bit rot, a hand edit, a disk that lost writes) fails the check and is dropped with a
warning and recomputed, never served.

A file's identity is its size, modification time (``st_mtime_ns``) and inode plus a hash of five 1 MiB
regions, so an in-place rewrite is noticed even where the sampled regions did not change. For content
that may change without its modification time moving, ``hashing="full"`` hashes every byte instead.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as serialize

from .._errors import ArgumentTypeError, CacheEntryError, EntryMadeForAnother, InvalidArgumentError

CACHE_FORMAT_VERSION = "3"  # 2: entries carry a checksum, identities mtime and inode; 3: entries carry their key
_CHUNK = 1 << 20  # bytes read per sampled region of a file
HASHING_MODES = ("sampled", "full")
ORPHAN_AGE_S = 3600.0  # a temporary file this old belongs to a writer that was killed: remove it
_TMP_PREFIX = ".tmp-"


def _serialize_entry(key: str, feats: VideoFeatures) -> bytes:
    """The safetensors bytes of one entry: its tensors, and info JSON recording ``key`` and a checksum."""
    tensors = {
        "features": feats.features.detach().float().cpu().contiguous(),
        "candidate_indices": torch.from_numpy(np.ascontiguousarray(feats.candidate_indices, dtype=np.int64)),
        "candidate_timestamps": torch.from_numpy(np.ascontiguousarray(feats.candidate_timestamps, dtype=np.float64)),
    }
    info = json.dumps({
        "key": key, "duration": feats.duration, "fps": feats.fps, "source": feats.source, "metadata": feats.metadata,
    })
    return serialize(tensors, metadata={"info": info, "checksum": entry_checksum(tensors, info)})


def default_cache_dir() -> Path:
    """``$TSPO_SAMPLER_CACHE``, else ``$XDG_CACHE_HOME/tspo_sampler``, else ``~/.cache/tspo_sampler``."""
    env = os.environ.get("TSPO_SAMPLER_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "tspo_sampler"
    return Path.home() / ".cache" / "tspo_sampler"


def file_identity(path: str | os.PathLike[str], *, hashing: str = "sampled") -> str:
    """The cache identity of a video file.

    ``"sampled"`` (default): size, ``st_mtime_ns`` and ``st_ino`` plus a SHA-256 of five evenly spread
    1 MiB regions (the whole file when it is at most 5 MiB), so at most ~5 MB is read. Renaming a file
    keeps its identity; copying it, re-encoding it or rewriting it in place gives a new one.

    ``"full"``: a SHA-256 of every byte. Content alone decides, so a copy shares the entry and an edit
    that keeps the size and restores the modification time is still caught; the price is reading the
    whole file on every call, cache hits included (SHA-256 speed: a few seconds per GB on a small CPU).
    """
    if hashing not in HASHING_MODES:
        raise ValueError(f"hashing must be one of {', '.join(HASHING_MODES)}, got {hashing!r}")
    p = Path(path)
    st = p.stat()
    size = st.st_size
    if hashing == "full":
        h = hashlib.sha256(f"full;size={size};".encode())
        with p.open("rb") as f:
            while chunk := f.read(8 * _CHUNK):
                h.update(chunk)
        return "full:" + h.hexdigest()[:32]
    h = hashlib.sha256(f"size={size};mtime_ns={st.st_mtime_ns};ino={st.st_ino};".encode())
    with p.open("rb") as f:
        if size <= 5 * _CHUNK:
            h.update(f.read())
        else:
            for i in range(5):
                f.seek((size - _CHUNK) * i // 4)
                h.update(f.read(_CHUNK))
    return h.hexdigest()[:32]


CACHE_MODES = {"sampled": "sampled", "full-hash": "full"}  # feature_cache= mode -> FeatureCache hashing


def resolve_feature_cache(feature_cache: Any, feature_cache_dir: Any = None) -> FeatureCache | None:
    """The cache a sampler uses: ``feature_cache`` says whether and how, ``feature_cache_dir`` says where.

    ``feature_cache`` is ``True`` (``"sampled"`` identities), ``"sampled"``, ``"full-hash"`` (every byte
    hashed), ``False``/``None`` (no cache) or a :class:`FeatureCache`. Modes and directories never share
    one string: a mistyped mode such as ``"full_hash"`` is an error, not a directory of that name. A
    ``pathlib.Path`` in ``feature_cache`` still works, with a :class:`DeprecationWarning`.
    """
    if feature_cache_dir is not None:
        if not isinstance(feature_cache_dir, (str, os.PathLike)) or isinstance(feature_cache_dir, bytes):
            raise ArgumentTypeError(
                f"feature_cache_dir must be a path (str or os.PathLike), got {type(feature_cache_dir).__name__}"
            )
        if not os.fspath(feature_cache_dir):
            raise InvalidArgumentError("feature_cache_dir must not be empty (it would mean the working directory)")
    if isinstance(feature_cache, FeatureCache):
        if feature_cache_dir is not None:
            raise InvalidArgumentError("pass feature_cache_dir or a FeatureCache instance, not both")
        return feature_cache
    if feature_cache is None or feature_cache is False:
        if feature_cache_dir is not None:
            raise InvalidArgumentError(
                f"feature_cache={feature_cache!r} turns the cache off, yet feature_cache_dir="
                f"{os.fspath(feature_cache_dir)!r} was given; pass feature_cache=True to use that directory"
            )
        return None
    modes = ", ".join(repr(m) for m in CACHE_MODES)
    if feature_cache is True:
        return FeatureCache(feature_cache_dir)
    if isinstance(feature_cache, str):
        if feature_cache not in CACHE_MODES:
            raise InvalidArgumentError(
                f"feature_cache must be True, False, {modes} or a FeatureCache, got {feature_cache!r}; "
                "put a directory in feature_cache_dir="
            )
        return FeatureCache(feature_cache_dir, hashing=CACHE_MODES[feature_cache])
    if isinstance(feature_cache, os.PathLike):
        if feature_cache_dir is not None:
            raise InvalidArgumentError("a path in feature_cache and feature_cache_dir: pass the directory once")
        warnings.warn(
            "a path as feature_cache is deprecated: pass feature_cache_dir=... (and feature_cache=True or a mode)",
            DeprecationWarning,
            stacklevel=3,
        )
        return FeatureCache(feature_cache)
    raise ArgumentTypeError(
        f"feature_cache must be True, False, {modes} or a FeatureCache, got {type(feature_cache).__name__}"
    )


def bytes_identity(data: bytes) -> str:
    """Content hash of an in-memory video file."""
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass
class VideoFeatures:
    """Image features of every candidate frame of one video, with where each candidate lies.

    Attributes:
        features: ``T x D`` float32 projected image features (on CPU).
        candidate_indices: source frame index of each candidate.
        candidate_timestamps: presentation time of each candidate, in seconds.
        duration: video duration in seconds.
        fps: average source frame rate.
        source: the video it came from (a path, ``<bytes>``, ``<frames>``).
        metadata: extra decoder facts (codec, size, rotation, backend).
    """

    features: torch.Tensor
    candidate_indices: np.ndarray
    candidate_timestamps: np.ndarray
    duration: float | None
    fps: float | None
    source: str
    metadata: dict[str, Any]

    def __len__(self) -> int:
        return int(self.features.shape[0])


def entry_checksum(tensors: dict[str, torch.Tensor], info_json: str) -> str:
    """SHA-256 over each tensor's name, dtype, shape and bytes (sorted by name) and the info JSON."""
    h = hashlib.sha256(b"tspo-feature-cache-v2;")
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(info_json.encode())
    return h.hexdigest()


class FeatureCache:
    """A directory of ``<key>.safetensors`` entries; ``get`` returns ``None`` on a miss or a bad entry.

    Args:
        directory: where entries live (default: :func:`default_cache_dir`).
        hashing: how video files are identified, ``"sampled"`` (size, mtime, inode and five 1 MiB
            regions; cheap) or ``"full"`` (every byte; for content that can change without its mtime
            moving). See :func:`file_identity`.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, hashing: str = "sampled") -> None:
        if hashing not in HASHING_MODES:
            raise ValueError(f"hashing must be one of {', '.join(HASHING_MODES)}, got {hashing!r}")
        if directory is not None and not os.fspath(directory):
            raise InvalidArgumentError("FeatureCache directory must not be empty (it would mean the working dir)")
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.hashing = hashing

    def identify(self, path: str | os.PathLike[str]) -> str:
        """The identity of a video file under this cache's ``hashing`` mode."""
        return file_identity(path, hashing=self.hashing)

    @staticmethod
    def make_key(video_identity: str, encoder_fingerprint: str, **settings: Any) -> str:
        payload = json.dumps(
            {"v": CACHE_FORMAT_VERSION, "video": video_identity, "encoder": encoder_fingerprint, **settings},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:40]

    def path_for(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.safetensors"

    @staticmethod
    def _read(path: Path, key: str | None = None) -> VideoFeatures:
        """Read and verify one entry; raises :class:`CacheEntryError` for anything untrustworthy, and
        :class:`EntryMadeForAnother` for a sound entry written under another key (a copied file)."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types on a damaged header
            raise CacheEntryError(f"unreadable ({exc})") from exc
        if "checksum" not in meta or "info" not in meta:
            raise CacheEntryError("no checksum")
        if set(tensors) != {"features", "candidate_indices", "candidate_timestamps"}:
            raise CacheEntryError(f"unexpected tensors {sorted(tensors)}")
        if entry_checksum(tensors, meta["info"]) != meta["checksum"]:
            raise CacheEntryError("checksum mismatch: its bytes changed after it was written")
        try:
            info = json.loads(meta["info"])
            feats = VideoFeatures(
                features=tensors["features"].float(),
                candidate_indices=tensors["candidate_indices"].numpy().astype(np.int64),
                candidate_timestamps=tensors["candidate_timestamps"].numpy().astype(np.float64),
                duration=info["duration"],
                fps=info["fps"],
                source=info["source"],
                metadata=info.get("metadata", {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CacheEntryError(f"bad info ({exc})") from exc
        if not (len(feats.candidate_indices) == len(feats.candidate_timestamps) == feats.features.shape[0]):
            raise CacheEntryError("inconsistent lengths")
        if key is not None and info.get("key") != key:
            raise EntryMadeForAnother(
                f"it was made for {feats.source} under key {info.get('key')}, not for this video and settings"
            )
        return feats

    def get(self, key: str) -> VideoFeatures | None:
        """The entry under ``key``; ``None`` on a miss. A damaged entry, or one recorded for another key
        (a file copied or renamed into place), warns, is deleted, and is a miss."""
        path = self.path_for(key)
        try:
            if not path.is_file():
                return None
        except OSError:  # e.g. ENAMETOOLONG: a directory that cannot hold entries; put() says so
            return None
        try:
            return self._read(path, key)
        except CacheEntryError as exc:
            what = "misplaced" if isinstance(exc, EntryMadeForAnother) else "corrupt"
            warnings.warn(
                f"ignoring {what} feature cache entry {path}: {exc}; deleting it and recomputing",
                RuntimeWarning,
                stacklevel=2,
            )
            try:
                path.unlink()
            except OSError:
                pass
            return None

    def put(self, key: str, feats: VideoFeatures) -> Path | None:
        """Store atomically (temporary file + rename), recording ``key`` inside the entry; returns its path.

        A cache that cannot be written (a full disk, a file-size limit, a read-only or over-long directory)
        costs a :class:`RuntimeWarning` naming the directory and the errno, and ``None``: the caller keeps its
        result. Also removes temporary files older than :data:`ORPHAN_AGE_S` left by writers that were killed.
        """
        path = self.path_for(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.remove_orphans()
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX, suffix=".safetensors")
            try:
                with os.fdopen(fd, "wb") as f:  # our own write, so a failure is an OSError with its errno
                    f.write(_serialize_entry(key, feats))
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return path
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0, "no errno")
            warnings.warn(
                f"could not write to the feature cache {self.directory} ({code}: {exc.strerror or exc}); "
                "the result is returned but not cached",
                RuntimeWarning,
                stacklevel=2,
            )
            return None

    def _temporary_files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return list(self.directory.glob(f"*/{_TMP_PREFIX}*"))

    def remove_orphans(self, max_age_s: float = ORPHAN_AGE_S) -> int:
        """Delete temporary files older than ``max_age_s`` (writers killed mid-write); returns how many.

        Younger ones may belong to a writer still at work, in this or another process, and are kept.
        """
        cutoff = time.time() - max_age_s
        n = 0
        for p in self._temporary_files():
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    n += 1
            except OSError:  # gone already (its writer finished) or not ours to delete
                continue
        return n

    def clear(self) -> int:
        """Delete every entry (and any temporary file); returns how many entries were removed."""
        n = 0
        if self.directory.is_dir():
            for p in self.directory.glob("*/*.safetensors"):
                if not p.name.startswith(_TMP_PREFIX):
                    p.unlink(missing_ok=True)
                    n += 1
            for p in self._temporary_files():
                p.unlink(missing_ok=True)
        return n
