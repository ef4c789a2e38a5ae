"""Episodes from cached CLIP features, and the real frames and :class:`Selection` of a rollout.

The trainer asks for features of the same videos again and again (own video, distractor clips), so
they stay in memory (``FEATURE_MEMORY`` videos, least recently used dropped); questions' text features
are kept for the whole run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._result import Selection
from ._config import GRPOConfig
from ._data import Episode, TrainExample, general_episode, specific_episode

logger = logging.getLogger(__name__)

FEATURE_MEMORY = 512  # videos whose features are kept in memory (LRU)


class EpisodeSource:
    """Builds a question's episode (its own video, or a composed long video for "specific" rows) and
    fetches the real frames a rollout chose.

    ``sampler`` is anything with ``encode_video``, ``encode_text`` and ``get_frames``; ``videos`` are the
    training videos distractor clips are drawn from.
    """

    def __init__(self, sampler: Any, config: GRPOConfig, videos: Sequence[str]) -> None:
        self.sampler = sampler
        self.config = config
        self.videos = sorted(set(videos))
        self._features: OrderedDict[str, Any] = OrderedDict()
        self._text: dict[str, torch.Tensor] = {}

    def video_features(self, video: str) -> Any:
        feats = self._features.get(video)
        if feats is None:
            with torch.no_grad():
                feats = self.sampler.encode_video(
                    video, fps=self.config.fps, max_candidates=self.config.max_candidates, progress=False
                )
            # a plain (not inference-mode) float32 copy: the agent's backward pass saves it
            feats = dataclasses.replace(feats, features=torch.as_tensor(feats.features).detach().float().clone())
            self._features[video] = feats
            if len(self._features) > FEATURE_MEMORY:
                self._features.popitem(last=False)
        else:
            self._features.move_to_end(video)
        return feats

    def text_features(self, question: str) -> torch.Tensor:
        t = self._text.get(question)
        if t is None:
            with torch.no_grad():
                t = self.sampler.encode_text([question]).detach().float().cpu().reshape(1, -1).clone()
            self._text[question] = t
        return t

    def build(self, example: TrainExample, rng: np.random.Generator) -> Episode:
        c = self.config
        own = self.video_features(example.video)
        if example.type == "specific" and c.compose_specific:
            pool = [v for v in self.videos if v != example.video]
            if not pool:
                logger.warning("line %d: no other video to compose a 'specific' episode; using it as is", example.line)
            else:
                n = c.num_distractor_clips
                chosen = rng.choice(len(pool), size=n, replace=n > len(pool)) if n else []
                distractors = [(pool[int(i)], self.video_features(pool[int(i)])) for i in chosen]
                n_true = int(rng.integers(c.min_true_clips, c.max_true_clips + 1))
                return specific_episode(
                    example, own, distractors, rng, k=c.k_specific, clip_length=c.clip_length,
                    num_true_clips=n_true, fps=c.fps,
                )
        k = c.k_specific if example.type == "specific" else c.k_general
        return general_episode(example, own, k)

    def frames(self, episode: Episode, positions: np.ndarray) -> dict[int, np.ndarray]:
        """Real frames of the given candidate positions, resized to the question video's frame size."""
        out: dict[int, np.ndarray] = {}
        positions = np.unique(positions)
        for v in np.unique(episode.source_video[positions]):
            pos = positions[episode.source_video[positions] == v]
            frames = np.asarray(self.sampler.get_frames(episode.videos[int(v)], episode.source_index[pos].tolist()))
            for p, f in zip(pos.tolist(), frames, strict=True):
                out[p] = f
        shapes = {f.shape for f in out.values()}
        if len(shapes) > 1:
            own = [f.shape for p, f in out.items() if episode.source_video[p] == 0]
            h, w = (own[0] if own else max(shapes))[:2]
            out = {p: _resize(f, h, w) for p, f in out.items()}
        return out


def make_selection(
    episode: Episode, positions: Sequence[int], scores: np.ndarray, frames: dict[int, np.ndarray] | None
) -> Selection:
    """The :class:`Selection` an answerer sees for one rollout (positions in the episode's candidates)."""
    pos = sorted(int(p) for p in positions)
    composed = episode.composed
    cand = list(range(episode.num_candidates)) if composed else episode.source_index.tolist()
    return Selection(
        indices=pos if composed else episode.source_index[pos].tolist(),
        timestamps=episode.timestamps[pos].tolist(),
        frames=None if frames is None else np.stack([frames[p] for p in pos]),
        scores=scores,
        candidate_indices=cand,
        candidate_timestamps=episode.timestamps.tolist(),
        method="gumbel-topk",
        question=episode.example.prompt(),
        positions=pos,
        video=episode.example.video,
    )


def _resize(frame: np.ndarray, h: int, w: int) -> np.ndarray:
    if frame.shape[:2] == (h, w):
        return frame
    t = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0).float()
    t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return t.squeeze(0).permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


__all__ = ["FEATURE_MEMORY", "EpisodeSource", "make_selection"]
