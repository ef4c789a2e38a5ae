"""A simulated environment for GRPO: CLIP-like features with known relevant spans, and an answerer.

Used by ``benchmarks/learnability.py`` and the fast trainer tests. The :class:`GRPOTrainer` runs on it
unchanged: :class:`SyntheticVideos` is a :class:`~tspo_sampler.SamplerLike` and has the other sampler methods
the trainer calls (``get_frames``, ``save_pretrained``, ``agent``) and :class:`SimulatedAnswerer` the
answerer protocol (``option_logprobs``, ``answer``).

Geometry (raw CLIP similarity is an imperfect guide). The feature space has an *event* subspace, a
*lure* subspace and a *scene* subspace. Question ``i`` asks about event ``u_i`` and also mentions a
context ``w_i``: its text feature is ``normalize(u_i + w_i)``. Video ``i`` is a drifting scene; inside
the relevant span the event appears (``+ a u_i``); elsewhere *lure* segments show the context
(``+ b w_i``) with ``b`` often larger than ``a``, so they resemble the query more than the answer does.
Features have CLIP-like norms (``feature_norm``, about that of projected ViT-L/14 embeddings).
The agent has to learn that the event subspace matters and the lure subspace does not.

The answerer sees only frames: :meth:`SyntheticVideos.get_frames` stamps each frame with its video and
frame number, and the answerer answers right with probability ``chance + (1 - chance) * share``, where
``share`` is the share of shown frames inside the question's span: its option log-probabilities are
``log pi + Gumbel noise`` (renormalised), so the argmax letter is right with exactly that probability
and the probabilities themselves are a noisy, continuous signal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._result import Selection
from ..features._cache import VideoFeatures
from ..scoring._agent import DEFAULT_WINDOW_SIZE, TemporalAgent
from ..scoring._selection import select_indices
from ..scoring._settings import SelectionSettings
from ._data import TrainExample
from ._rewards import LETTERS


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


class SyntheticVideos:
    """``num_videos`` synthetic videos (``video-<i>``), one multiple-choice question each."""

    def __init__(
        self,
        num_videos: int = 64,
        num_frames: int = 96,
        *,
        dim: int = 256,
        span_frac: float = 0.15,
        lure_frac: float = 0.15,
        event_strength: float = 1.0,
        lure_strength: tuple[float, float] = (0.5, 1.8),
        noise: float = 0.35,
        num_options: int = 4,
        specific_frac: float = 0.0,
        feature_norm: float = 10.0,
        agent: TemporalAgent | None = None,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.num_frames = num_frames
        sub = dim // 4
        ev, lu = slice(0, sub), slice(sub, 2 * sub)
        self.videos: list[str] = [f"video-{i}" for i in range(num_videos)]
        self._features: dict[str, np.ndarray] = {}
        self._spans: dict[str, tuple[int, int]] = {}
        self._text: dict[str, np.ndarray] = {}
        self._question_video: dict[str, int] = {}
        self.examples: list[TrainExample] = []
        for i, name in enumerate(self.videos):
            u = np.zeros(dim)
            u[ev] = _unit(rng.normal(size=sub))
            w = np.zeros(dim)
            w[lu] = _unit(rng.normal(size=sub))
            # slowly drifting scene in the scene subspace
            scene0 = np.zeros(dim)
            scene0[2 * sub :] = _unit(rng.normal(size=dim - 2 * sub))
            drift = np.cumsum(rng.normal(scale=0.08, size=(num_frames, dim)), axis=0)
            drift[:, : 2 * sub] = 0
            x = scene0 + drift + noise * rng.normal(size=(num_frames, dim)) / np.sqrt(dim / 64)
            L = max(2, int(round(span_frac * num_frames)))
            start = int(rng.integers(0, num_frames - L + 1))
            x[start : start + L] += event_strength * u
            # lure segments outside the span
            n_lure = max(2, int(round(lure_frac * num_frames)))
            free = np.setdiff1d(np.arange(num_frames), np.arange(start, start + L))
            seg = max(2, n_lure // 2)
            for _ in range(2):
                s0 = int(rng.choice(free[: max(1, len(free) - seg)]))
                idx = np.arange(s0, min(num_frames, s0 + seg))
                idx = idx[(idx < start) | (idx >= start + L)]
                x[idx] += rng.uniform(*lure_strength) * w
            self._features[name] = (feature_norm * _unit(x)).astype(np.float32)
            self._spans[name] = (start, start + L - 1)
            question = f"Question {i}: what does the person do with object {i}?"
            self._text[question] = (feature_norm * _unit(u + w)).astype(np.float32)
            self._question_video[question] = i
            options = [f"choice {j} of question {i}" for j in range(num_options)]
            qtype = "specific" if rng.random() < specific_frac else "general"
            self.examples.append(
                TrainExample(
                    video=name,
                    question=question,
                    options=options,
                    answer=LETTERS[int(rng.integers(num_options))],
                    type=qtype,
                    span=(float(start), float(start + L - 1)),
                    line=i + 1,
                )
            )
        self.agent = agent if agent is not None else TemporalAgent(dim=dim, num_heads=8)
        self.encoder = None
        self.encode_calls = 0

    # ---- sampler interface -------------------------------------------------------------------------
    def encode_video(
        self, video: str, *, fps: float = 1.0, max_candidates: int | None = None, candidate_mode: str = "fps",
        progress: bool | None = None, use_cache: bool = True, decoder: str = "auto",
    ) -> VideoFeatures:
        """Every frame of a synthetic video is a candidate (the candidate options do not apply)."""
        self.encode_calls += 1
        feats = self._features[video]
        T = feats.shape[0]
        return VideoFeatures(
            features=torch.from_numpy(feats.copy()),
            candidate_indices=np.arange(T, dtype=np.int64),
            candidate_timestamps=np.arange(T, dtype=np.float64),
            duration=float(T),
            fps=1.0,
            source=video,
            metadata={},
        )

    def encode_text(self, questions: str | Sequence[str]) -> torch.Tensor:
        items = [questions] if isinstance(questions, str) else list(questions)
        return torch.from_numpy(np.stack([self._text[q] for q in items]))

    def select_from_features(
        self, video_features: VideoFeatures, question: str | torch.Tensor, k: int = 16, *, method: str = "topk",
        window_size: int | None = None, search: str = "exhaustive",
    ) -> Selection:
        """The agent's choice (exhaustive: every synthetic video is short), as the sampler makes it."""
        settings = SelectionSettings(k=k, method=method, window_size=window_size, search=search)
        text = question if isinstance(question, torch.Tensor) else self.encode_text(question)
        feats, text = video_features.features.float(), text.float().reshape(1, -1)
        clip = torch.nn.functional.cosine_similarity(text, feats, dim=-1)
        with torch.inference_mode():
            scores = self.agent(feats, text, clip, window_size=settings.window_size or DEFAULT_WINDOW_SIZE)
        basis = clip if settings.method == "clip" else scores
        positions = select_indices(basis, settings.k, settings.method)
        idx, ts = video_features.candidate_indices, video_features.candidate_timestamps
        return Selection(
            indices=[int(idx[p]) for p in positions], timestamps=[float(ts[p]) for p in positions], frames=None,
            scores=basis.numpy(), candidate_indices=[int(i) for i in idx], candidate_timestamps=[float(t) for t in ts],
            method=settings.method, duration=video_features.duration, fps=video_features.fps,
            question=question if isinstance(question, str) else None, positions=list(positions),
            video=video_features.source, encoded_frames=len(idx),
        )

    def select_frames(
        self, video: str, question: str, k: int = 16, *, method: str = "topk", fps: float = 1.0,
        max_candidates: int | None = None, window_size: int | None = None, return_frames: bool = True,
        progress: bool | None = None, candidate_mode: str = "fps", search: str = "exhaustive", decoder: str = "auto",
        coarse_step: int | None = None, max_encoded: float | None = None,
    ) -> Selection:
        selection = self.select_from_features(self.encode_video(video), question, k, method=method,
                                              window_size=window_size)
        if return_frames:
            selection.frames = self.get_frames(video, selection.indices)
        return selection

    def get_frames(self, video: str, indices: Sequence[int]) -> np.ndarray:
        """Tiny frames stamped with (video number, frame index)."""
        v = self.videos.index(video)
        out = np.zeros((len(indices), 2, 2, 3), dtype=np.uint8)
        for j, idx in enumerate(indices):
            out[j, 0, 0] = (v // 256, v % 256, 0)
            out[j, 0, 1] = (int(idx) // 256, int(idx) % 256, 0)
        return out

    def save_pretrained(self, directory: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {f"selector.{k}": v.detach().cpu().contiguous() for k, v in self.agent.state_dict().items()}
        save_file(state, str(out / "model.safetensors"))
        (out / "config.json").write_text(json.dumps({"synthetic": True, "dim": self.dim}) + "\n")
        return out

    # ---- ground truth ------------------------------------------------------------------------------
    def relevant(self, question: str, video: int, index: int) -> bool:
        stem = question.splitlines()[0].strip()
        qv = self._question_video[stem]
        if video != qv:
            return False
        s, e = self._spans[self.videos[qv]]
        return s <= index <= e


class SimulatedAnswerer:
    """Answers right with probability ``chance + (1 - chance) * share**power`` (share of relevant frames)."""

    def __init__(self, env: SyntheticVideos, *, power: float = 1.0, seed: int = 0) -> None:
        self.env = env
        self.power = power
        self.rng = np.random.default_rng(seed)
        self.calls = 0
        self.rollouts = 0
        self._truth = {e.question: e.answer for e in env.examples}

    def _share(self, selection: Selection, question: str) -> float:
        frames = np.asarray(selection.frames)
        vids = frames[:, 0, 0, 0].astype(int) * 256 + frames[:, 0, 0, 1]
        idxs = frames[:, 0, 1, 0].astype(int) * 256 + frames[:, 0, 1, 1]
        return float(np.mean([self.env.relevant(question, int(v), int(i)) for v, i in zip(vids, idxs, strict=True)]))

    def _belief(self, selection: Selection, question: str, letters: Sequence[str]) -> torch.Tensor:
        """Log-probabilities over the options whose argmax is right with probability ``p`` (Gumbel-max)."""
        n = len(letters)
        stem = question.splitlines()[0].strip()
        truth = letters.index(self._truth[stem])
        chance = 1.0 / n
        p = chance + (1 - chance) * self._share(selection, question) ** self.power
        probs = np.full(n, (1 - p) / max(n - 1, 1))
        probs[truth] = p
        noisy = np.log(np.maximum(probs, 1e-12)) + self.rng.gumbel(size=n)
        return torch.log_softmax(torch.tensor(noisy, dtype=torch.float32), dim=-1)

    def option_logprobs(self, selections: Sequence[Selection], questions: Sequence[str],
                        options: Sequence[str] = ("A", "B", "C", "D")) -> torch.Tensor:
        self.calls += 1
        self.rollouts += len(selections)
        letters = list(options)
        return torch.stack([self._belief(sel, q, letters) for sel, q in zip(selections, questions, strict=True)])

    def answer(self, selections: Sequence[Selection], questions: Sequence[str], **_: Any) -> list[str]:
        self.calls += 1
        self.rollouts += len(selections)
        out = []
        for sel, q in zip(selections, questions, strict=True):
            n = sum(1 for line in q.splitlines() if len(line) > 2 and line[1] == "." and line[0] in LETTERS)
            letters = list(LETTERS[: max(n, 2)])
            out.append(f"The answer is {letters[int(self._belief(sel, q, letters).argmax())]}.")
        return out
