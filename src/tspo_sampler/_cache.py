"""On-disk cache of per-video image features.

Image features depend on the video, the encoder and the candidate settings, never on the question, so a
second question about the same video costs one text encoding. Entries are safetensors files written
atomically; an unreadable entry is dropped and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = "1"
_CHUNK = 1 << 20  # bytes read per sampled region of a file


def default_cache_dir() -> Path:
    """``$TSPO_SAMPLER_CACHE``, else ``$XDG_CACHE_HOME/tspo_sampler``, else ``~/.cache/tspo_sampler``."""
    env = os.environ.get("TSPO_SAMPLER_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "tspo_sampler"
    return Path.home() / ".cache" / "tspo_sampler"


def file_identity(path: str | os.PathLike[str]) -> str:
    """A content hash of a video file that reads at most ~5 MB: its size plus five evenly spread 1 MB regions.

    Renaming or copying a file keeps its identity; re-encoding or editing it changes it.
    """
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(f"size={size};".encode())
    with p.open("rb") as f:
        if size <= 5 * _CHUNK:
            h.update(f.read())
        else:
            for i in range(5):
                f.seek((size - _CHUNK) * i // 4)
                h.update(f.read(_CHUNK))
    return h.hexdigest()[:32]


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


class FeatureCache:
    """A directory of ``<key>.safetensors`` entries; ``get`` returns ``None`` on a miss or a bad entry."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    @staticmethod
    def make_key(video_identity: str, encoder_fingerprint: str, **settings: Any) -> str:
        payload = json.dumps(
            {"v": CACHE_FORMAT_VERSION, "video": video_identity, "encoder": encoder_fingerprint, **settings},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:40]

    def path_for(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> VideoFeatures | None:
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
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
            if not (len(feats.candidate_indices) == len(feats.candidate_timestamps) == feats.features.shape[0]):
                raise ValueError("inconsistent lengths")
            return feats
        except Exception as exc:  # corrupt or truncated entry: drop it, the caller recomputes
            logger.warning("ignoring corrupt feature cache entry %s (%s)", path, exc)
            try:
                path.unlink()
            except OSError:
                pass
            return None

    def put(self, key: str, feats: VideoFeatures) -> Path | None:
        """Store atomically (temporary file + rename); a failure to write only logs a warning."""
        path = self.path_for(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tensors = {
                "features": feats.features.detach().float().cpu().contiguous(),
                "candidate_indices": torch.from_numpy(np.ascontiguousarray(feats.candidate_indices, dtype=np.int64)),
                "candidate_timestamps": torch.from_numpy(
                    np.ascontiguousarray(feats.candidate_timestamps, dtype=np.float64)
                ),
            }
            info = {
                "duration": feats.duration,
                "fps": feats.fps,
                "source": feats.source,
                "metadata": feats.metadata,
            }
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
            os.close(fd)
            try:
                save_file(tensors, tmp, metadata={"info": json.dumps(info)})
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return path
        except OSError as exc:
            logger.warning("could not write feature cache entry %s (%s)", path, exc)
            return None

    def clear(self) -> int:
        """Delete every entry; returns how many were removed."""
        n = 0
        if self.directory.is_dir():
            for p in self.directory.glob("*/*.safetensors"):
                p.unlink(missing_ok=True)
                n += 1
        return n
