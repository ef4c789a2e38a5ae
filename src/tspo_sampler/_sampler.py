"""`TemporalSampler`: load a TSPO agent, score every candidate frame of a video against a question, pick k."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ._device import accelerator_device, check_device, resolve_dtype
from ._errors import TSPOError
from ._result import Selection
from .features._cache import FeatureCache, VideoFeatures, resolve_feature_cache
from .features._encoders import HFCLIPEncoder, ImageTextEncoder, OpenCLIPEncoder
from .features._heap import trim_heap_now_and_then
from .features._source import FileFeatureSource, FileVideo, FramesVideo, as_video
from .features._video_features import frames_features, progress_bar
from .scoring._agent import DEFAULT_SCORE_TAU, DEFAULT_WINDOW_SIZE, TemporalAgent
from .scoring._search_video import search_features, select_coarse_to_fine
from .scoring._selection import check_k, select_indices
from .scoring._settings import SelectionSettings, check_indices, check_positive_int
from .video._candidates import check_finite
from .video._inputs import check_question, decode_device

VideoInput = str | os.PathLike[str] | bytes | BinaryIO | np.ndarray | torch.Tensor | Sequence[Any]


def default_device() -> torch.device:
    """The usable accelerator (CUDA, XPU, MPS ...: the one rule in :mod:`tspo_sampler._device`), else the CPU."""
    return accelerator_device() or torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """float32 on the CPU (the Hub weights are bfloat16, which is slow and lossy there), float16 on accelerators."""
    return torch.float32 if device.type == "cpu" else torch.float16


class SamplerLike(Protocol):
    """What :func:`~tspo_sampler.indexing.index_dataset` asks of a sampler, with every argument it passes:
    :class:`TemporalSampler` has it, and so do the test doubles and the training simulation."""

    def encode_video(self, video: Any, *, fps: float = ..., max_candidates: int | None = ...,
                     candidate_mode: str = ..., progress: bool | None = ..., use_cache: bool = ...,
                     decoder: str = ...) -> Any: ...

    def encode_text(self, questions: str | Sequence[str]) -> torch.Tensor: ...

    def select_from_features(self, video_features: Any, question: str | torch.Tensor, k: int = ..., *,
                             method: str = ..., window_size: int | None = ..., search: str = ...) -> Selection: ...

    def select_frames(self, video: Any, question: str, k: int = ..., *, method: str = ..., fps: float = ...,
                      max_candidates: int | None = ..., window_size: int | None = ..., return_frames: bool = ...,
                      progress: bool | None = ..., candidate_mode: str = ..., search: str = ..., decoder: str = ...,
                      coarse_step: int | None = ..., max_encoded: float | None = ...) -> Selection: ...


class TemporalSampler:
    """Question-aware keyframe selector: a CLIP encoder plus the TSPO temporal agent.

    Load released agents with :meth:`from_pretrained`, any open_clip backbone with :meth:`from_open_clip`.

    Args:
        encoder: image/text encoder (transformers CLIP or open_clip).
        agent: the temporal agent; ``None`` scores frames by raw CLIP similarity.
        feature_cache: ``True`` or ``"sampled"`` (cheap file identities), ``"full-hash"`` (video files
            identified by a hash of every byte, see :class:`~tspo_sampler.FeatureCache`), ``False`` for none,
            or a :class:`~tspo_sampler.FeatureCache`.
        feature_cache_dir: where entries live (default ``$TSPO_SAMPLER_CACHE`` or ``~/.cache/tspo_sampler``).
            Not ``cache_dir``: :meth:`from_pretrained` keeps that name for the Hugging Face download cache.
        window_size: default attention window of the agent.
        tau: score temperature.
        batch_size: frames per encoder batch (default 32 on the CPU, where bigger batches only cost memory,
            and 128 on accelerators).
        decode_timeout: seconds one decoder call may take before the video counts as unreadable.
        overlap_decoding: decode the next chunk in a producer thread while the encoder runs (in the
            exhaustive pass and in each request of ``search="coarse-to-fine"``). Default: on
            with a GPU, where decoding is the bottleneck; off on the CPU, where the encoder already keeps
            every core busy and a second thread only adds memory (docs/benchmarks.md).
    """

    def __init__(
        self,
        encoder: ImageTextEncoder,
        agent: TemporalAgent | None = None,
        *,
        feature_cache: bool | str | FeatureCache = True,
        feature_cache_dir: str | os.PathLike[str] | None = None,
        window_size: int = DEFAULT_WINDOW_SIZE,
        tau: float = DEFAULT_SCORE_TAU,
        batch_size: int | None = None,
        decode_timeout: float = 120.0,
        overlap_decoding: bool | None = None,
    ) -> None:
        self.encoder = encoder
        self.agent = agent.eval() if agent is not None else None
        if agent is not None and agent.dim != encoder.embed_dim:
            raise ValueError(f"agent dimension {agent.dim} does not match encoder embed_dim {encoder.embed_dim}")
        self.cache: FeatureCache | None = resolve_feature_cache(feature_cache, feature_cache_dir)
        self.window_size = int(check_positive_int(window_size, "window_size") or 0)
        self.tau = check_finite(tau, "tau", positive=True)
        if batch_size is None:
            batch_size = 32 if encoder.device.type == "cpu" else 128
        self.batch_size = int(check_positive_int(batch_size, "batch_size") or 0)
        self.decode_timeout = check_finite(decode_timeout, "decode_timeout", positive=True)
        self.overlap_decoding = encoder.device.type != "cpu" if overlap_decoding is None else bool(overlap_decoding)
        self.checkpoint_dir: Path | None = None
        self.checkpoint_dtype: torch.dtype = torch.bfloat16

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        require_agent: bool = True,
        compact_weights: bool | None = None,
        **kwargs: Any,
    ) -> TemporalSampler:
        """Load a TSPO checkpoint (e.g. ``"hzf666/TSPO-0.4B"``) from the Hub or a local directory.

        Args:
            name_or_path: Hub repo id or directory in the released format.
            device: defaults to CUDA when available, else CPU; a device this machine lacks is an error.
            dtype: encoder compute dtype (float32, bfloat16 or float16, as a torch dtype or its name);
                float32 on CPU, float16 on GPU by default. The agent always
                computes in float32 (it is tiny and this keeps scores exact). ``torch.bfloat16`` on the CPU
                runs the image tower's matrix products in bfloat16 under autocast (faster on CPUs with
                AVX512-BF16 or AMX, see docs/benchmarks.md; picks on near-tied scores can differ from
                float32, so it is opt-in).
            revision: Hub branch, tag or commit.
            cache_dir: Hugging Face cache directory (default: ``HF_HUB_CACHE``).
            local_files_only: never download; use the cache (also implied by ``HF_HUB_OFFLINE=1``).
            token: Hub token for private or gated repositories.
            require_agent: raise when the checkpoint has no ``selector.*`` weights (else raw CLIP scores).
            compact_weights: keep the encoder's weights in the checkpoint's dtype (bfloat16 for released
                agents) and widen each to ``dtype`` only while its layer runs: bit-identical features with
                half the resident weights (docs/benchmarks.md). Default: on for the
                CPU when the stored dtype widens exactly to ``dtype``; ``True`` raises if it does not.
            **kwargs: passed to the constructor (``feature_cache``, ``feature_cache_dir``, ``window_size`` ...).
        """
        from .hub._hub import load_checkpoint, resolve_checkpoint

        dev = check_device(device) or default_device()
        dt = resolve_dtype(dtype, dev, default_dtype(dev))
        directory = resolve_checkpoint(
            name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
        )
        loaded = load_checkpoint(
            directory, device=dev, dtype=dt, require_agent=require_agent, compact_weights=compact_weights
        )
        sampler = cls(loaded.encoder, loaded.agent, **kwargs)
        sampler.checkpoint_dir = directory
        sampler.checkpoint_dtype = loaded.weights_dtype
        return sampler

    @classmethod
    def from_open_clip(
        cls,
        model_name: str,
        *,
        pretrained: str | None = None,
        agent: TemporalAgent | str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> TemporalSampler:
        """Use an open_clip backbone. ``agent`` is a :class:`TemporalAgent`, a safetensors file of
        ``selector.*`` (or bare) agent weights, or ``None`` for raw CLIP similarity."""
        dev = check_device(device) or default_device()
        dt = resolve_dtype(dtype, dev, default_dtype(dev))
        encoder = OpenCLIPEncoder.from_name(model_name, pretrained=pretrained, device=dev, dtype=dt)
        if agent is not None and not isinstance(agent, TemporalAgent):
            from safetensors.torch import load_file

            from .hub._hub import build_agent, split_agent_state

            state = load_file(str(agent))
            _, agent_state = split_agent_state(state)
            agent = build_agent(agent_state or state, encoder.embed_dim, agent)
        if agent is not None:
            agent = agent.to(dev)
        return cls(encoder, agent, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike[str], *, dtype: torch.dtype | None = None) -> Path:
        """Write the released checkpoint format (loadable here and by the reference code).

        ``dtype`` defaults to the dtype of the loaded checkpoint (bfloat16 for released agents).
        """
        if not isinstance(self.encoder, HFCLIPEncoder):
            raise TSPOError(
                "save_pretrained needs a transformers CLIP encoder; "
                "open_clip samplers save the agent only (use save_agent)"
            )
        from .hub._hub import save_checkpoint

        return save_checkpoint(save_directory, self.encoder, self.agent, dtype=dtype or self.checkpoint_dtype)

    def save_agent(self, path: str | os.PathLike[str]) -> Path:
        """Save only the agent weights (``selector.*`` keys) to one safetensors file."""
        from .hub._publish import save_agent

        return save_agent(self.agent, path)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str = "Upload TSPO temporal agent",
        revision: str | None = None,
    ) -> str:
        """Publish the checkpoint (released format plus a model card) to the Hub; returns the commit URL."""
        from .hub._publish import push_to_hub

        return push_to_hub(
            self, repo_id, private=private, token=token, commit_message=commit_message, revision=revision
        )

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    # ------------------------------------------------------------------ features
    def encode_text(self, questions: str | Sequence[str]) -> torch.Tensor:
        """Projected text features (``n x D``, float32, on the sampler's device), batched."""
        items = [questions] if isinstance(questions, str) else list(questions)
        for i, q in enumerate(items):
            check_question(q, "question" if isinstance(questions, str) else f"questions[{i}]")
        return self.encoder.encode_text(items)

    def encode_frames(self, frames: torch.Tensor, *, progress: bool | None = None) -> torch.Tensor:
        """Features of in-memory ``uint8`` frames (``T x H x W x 3``), batched; ``T x D`` float32 on CPU."""
        out = []
        with progress_bar(len(frames), "encoding frames", progress) as bar:
            for start in range(0, len(frames), self.batch_size):
                batch = frames[start : start + self.batch_size]
                out.append(self.encode_batch(batch))
                bar.update(len(batch))
        return torch.cat(out)

    def encode_batch(self, frames: torch.Tensor) -> torch.Tensor:
        """Features of one batch of frames, on the CPU. After a batch on a CPU encoder the C heap's free
        pages go back to the OS (at most twice a second), which keeps memory flat over hour-long videos
        (see :mod:`tspo_sampler.features._heap`)."""
        features = self.encoder.encode_images(frames).cpu()
        if self.encoder.device.type == "cpu":
            trim_heap_now_and_then()
        return features

    def encode_video(
        self,
        video: VideoInput,
        *,
        fps: float = 1.0,
        max_candidates: int | None = None,
        candidate_mode: str = "fps",
        progress: bool | None = None,
        use_cache: bool = True,
        decoder: str = "auto",
    ) -> VideoFeatures:
        """Image features of every candidate frame, from the cache when this video was seen before.

        Files: candidates at ``fps`` per second (presentation timestamps), capped evenly at
        ``max_candidates``; frames are decoded in chunks at the encoder's resolution and dropped after
        encoding. ``candidate_mode="keyframes"`` takes the stream's keyframes nearest to those instants
        instead and decodes only them: far cheaper on very long videos, at the cost of timestamps up to half
        a keyframe interval away from the 1/fps grid. In-memory frames: every frame is a candidate; ``fps``
        is the rate they were sampled at (timestamps = position / fps). ``decoder``: see :meth:`select_frames`.
        """
        settings = SelectionSettings(fps=fps, max_candidates=max_candidates, candidate_mode=candidate_mode,
                                     decoder=decoder)
        return self._features(self._as_video(video), settings, progress, use_cache=use_cache)

    def _as_video(self, video: VideoInput | FileVideo | FramesVideo, identify: bool = True) -> FileVideo | FramesVideo:
        """The input normalised once (:func:`~tspo_sampler.features._source.as_video`); a file's identity
        follows the cache's ``hashing`` mode."""
        return as_video(video, identify=identify, hashing=self.cache.hashing if self.cache else "sampled")

    def _features(
        self, video: FileVideo | FramesVideo, settings: SelectionSettings, progress: bool | None,
        use_cache: bool = True,
    ) -> VideoFeatures:
        if isinstance(video, FramesVideo):
            return frames_features(video.frames, lambda f: self.encode_frames(f, progress=progress), fps=settings.fps,
                                   max_candidates=settings.max_candidates)
        with self.feature_source(video, settings, use_cache=use_cache) as source:
            feats = source.cached()
            if feats is None:
                feats = source.encode_all(progress=progress)
                source.store(feats)
            return feats

    def feature_source(
        self, video: FileVideo, settings: SelectionSettings, *, use_cache: bool = True
    ) -> FileFeatureSource:
        """The features of ``video``'s candidates under ``settings``, as the search asks for them (the file is
        opened on first use; close it, or use it in a ``with`` block)."""
        return FileFeatureSource(
            video, settings, lambda source: self.open_decoder(source, settings.decoder), self.encode_batch,
            short_side=self.encoder.preprocessing.shortest_edge, batch_size=self.batch_size,
            cache=self.cache if use_cache else None, fingerprint=self.encoder.fingerprint,
            overlap=self.overlap_decoding)

    def open_decoder(self, source: Any, decoder: str = "auto") -> Any:
        """A :class:`~tspo_sampler.video.VideoDecoder` for ``source`` with this sampler's timeout; torchcodec on a
        CUDA sampler decodes with NVDEC on that GPU."""
        from .video import VideoDecoder

        decoder = SelectionSettings(decoder=decoder).decoder
        device = decode_device(decoder, self.device)
        return VideoDecoder(source, backend=decoder, timeout=self.decode_timeout, device=device)

    # ------------------------------------------------------------------ scoring and selection
    def score_features(
        self, image_features: torch.Tensor, text_features: torch.Tensor, clip_scores: torch.Tensor | None = None,
        window_size: int | None = None,
    ) -> torch.Tensor:
        """The agent's score of each candidate (``T``), or raw CLIP similarity / tau without an agent.

        Linear in ``T * window_size`` time and memory.
        """
        w = self.window_size if window_size is None else int(check_positive_int(window_size, "window_size") or 0)
        feats = image_features.float()
        text = text_features.float().to(feats.device)
        if self.agent is None:
            if clip_scores is None:
                clip_scores = F.cosine_similarity(text.reshape(1, -1), feats, dim=-1)
            return clip_scores.float() / self.tau
        agent_device = next(self.agent.parameters()).device
        clip = None if clip_scores is None else clip_scores.to(agent_device)
        with torch.inference_mode():
            return self.agent(feats.to(agent_device), text.to(agent_device), clip, window_size=w, tau=self.tau).cpu()

    def select_from_features(
        self,
        video_features: VideoFeatures,
        question: str | torch.Tensor,
        k: int = 16,
        *,
        method: str = "topk",
        window_size: int | None = None,
        search: str = "exhaustive",
    ) -> Selection:
        """Choose ``k`` candidates of already-encoded video features (no frames attached); ``search`` as in
        :meth:`select_frames` (``"coarse-to-fine"`` replays that policy, reading only the features it needs; on a
        file's features, which record its keyframes, it picks what :meth:`select_frames` picks on that file)."""
        settings = SelectionSettings(k=k, method=method, window_size=window_size, search=search)
        return self._select_features(video_features, question, settings)

    def _select_features(
        self, video_features: VideoFeatures, question: str | torch.Tensor, settings: SelectionSettings
    ) -> Selection:
        k, method, window_size = settings.k, settings.method, settings.window_size
        if isinstance(question, torch.Tensor):
            text, question_str = question.reshape(1, -1), None
        else:
            question_str = check_question(question)
            text = self.encode_text(question_str)
        feats = video_features.features.float()
        text = text.float().cpu()
        if settings.search != "exhaustive":
            return search_features(
                self, video_features, text, question_str, k, window_size=window_size, **settings.search_options()
            )
        clip_scores = F.cosine_similarity(text.reshape(1, -1), feats, dim=-1)
        scores = self.score_features(feats, text, clip_scores, window_size)
        basis = clip_scores if method == "clip" else scores
        positions = select_indices(basis, k, method)
        cand_idx = np.asarray(video_features.candidate_indices)
        cand_ts = np.asarray(video_features.candidate_timestamps)
        return Selection(
            indices=[int(cand_idx[p]) for p in positions],
            timestamps=[float(cand_ts[p]) for p in positions],
            frames=None,
            scores=basis.numpy(),  # what the method ranked by: CLIP similarity for "clip"
            candidate_indices=[int(i) for i in cand_idx],
            candidate_timestamps=[float(t) for t in cand_ts],
            method=method,
            duration=video_features.duration,
            fps=video_features.fps,
            question=question_str,
            positions=list(positions),
            video=video_features.source,
            encoded_frames=len(cand_idx),
        )

    def select_frames(
        self,
        video: VideoInput,
        question: str,
        k: int = 16,
        *,
        method: str = "topk",
        fps: float = 1.0,
        max_candidates: int | None = None,
        window_size: int | None = None,
        return_frames: bool = True,
        progress: bool | None = None,
        candidate_mode: str = "fps",
        search: str = "exhaustive",
        decoder: str = "auto",
        coarse_step: int | None = None,
        max_encoded: float | None = None,
    ) -> Selection:
        """Pick the ``k`` frames of ``video`` most relevant to ``question``.

        Args:
            video: a path, bytes, a binary file object, a ``uint8`` array ``T x H x W x 3``, a torch tensor
                (``T x H x W x 3`` or ``T x 3 x H x W``) or a list of PIL images.
            question: the question the frames should answer.
            k: number of frames (all candidates when there are fewer).
            method: ``topk`` (default), ``bin-max``, ``aks``, ``uniform``, ``clip`` or ``bolt``.
            fps: candidates per second of video (the paper uses 1).
            max_candidates: cap on the number of candidates, spread evenly over the video.
            window_size: the agent's attention window (default 12).
            return_frames: decode and return the chosen frames at full resolution.
            progress: show a progress bar (default: once encoding has run 2 s, whatever the video's length).
            candidate_mode: ``"fps"`` (frames on screen at ``0, 1/fps, 2/fps ...``) or ``"keyframes"``
                (the keyframes nearest to those instants; decodes only keyframes, for very long videos).
            search: ``"exhaustive"`` encodes and scores every candidate; ``"coarse-to-fine"`` (``topk`` only)
                encodes a coarse grid and refines around the best regions, scoring those exactly
                (:mod:`tspo_sampler.scoring._search`); unscored candidates get NaN scores.
            decoder: file decoding backend, ``auto`` (PyAV), ``pyav``, ``decord`` or ``torchcodec`` (same frames;
                only PyAV leaves out pictures drawn from damaged data).
            coarse_step: ``search="coarse-to-fine"``: candidates between coarse frames (``None``: its default).
            max_encoded: ``search="coarse-to-fine"``: the largest share of the candidates it encodes
                (``None``: its default).

        Returns:
            A :class:`~tspo_sampler.Selection`.
        """
        settings = SelectionSettings(
            k=k, method=method, fps=fps, max_candidates=max_candidates, window_size=window_size,
            candidate_mode=candidate_mode, search=search, decoder=decoder, coarse_step=coarse_step,
            max_encoded=max_encoded,
        )
        check_question(question)
        video = self._as_video(video)  # file or frames: decided here, once (a stream is read and hashed once)
        if settings.search != "exhaustive":
            return select_coarse_to_fine(self, video, question, settings, return_frames, progress)
        selection = self._select_features(self._features(video, settings, progress), question, settings)
        if return_frames:
            selection.frames = self._frames(video, selection.indices, settings.decoder)
        if isinstance(video, FramesVideo):
            selection.video = None
        elif video.name is not None:
            selection.video = video.name
        return selection

    def get_frames(
        self, video: VideoInput | FileVideo | FramesVideo, indices: Sequence[int], *, decoder: str = "auto"
    ) -> np.ndarray:
        """Full-resolution, upright RGB frames at the given source indices (``uint8`` ``k x H x W x 3``)."""
        decoder = SelectionSettings(decoder=decoder).decoder
        return self._frames(self._as_video(video, identify=False), check_indices(indices), decoder)

    def _frames(self, video: FileVideo | FramesVideo, indices: Sequence[int], decoder: str) -> np.ndarray:
        if isinstance(video, FramesVideo):
            return video.frames[torch.as_tensor(list(indices), dtype=torch.long)].numpy()
        with self.open_decoder(video.source, decoder) as video_decoder:
            return video_decoder.get_frames(list(indices)).data

    def sample_indices_fn(self, video: VideoInput, question: str, k: int = 16, **select_options: Any) -> Any:
        """A ``sample_indices_fn`` for ``transformers.video_utils.load_video`` that returns TSPO frames.

        transformers passes only metadata to the function, so it is bound to its video::

            frames, meta = load_video(path, sample_indices_fn=sampler.sample_indices_fn(path, question, k=16))

        For processors (``processor(videos=...)``) see :func:`tspo_sampler.adapters.transformers_video.use_tspo`.
        """
        from .adapters.transformers_video import TSPOSampleIndices

        check_question(question)
        return TSPOSampleIndices(self, video, question, check_k(k), **select_options)

    def __repr__(self) -> str:
        enc = type(self.encoder).__name__
        agent = "yes" if self.agent is not None else "none (raw CLIP)"
        cache = self.cache.directory if self.cache else None
        return (
            f"TemporalSampler(encoder={enc}, agent={agent}, "
            f"device={self.device}, window_size={self.window_size}, cache={cache})"
        )


__all__ = ["SamplerLike", "TemporalSampler", "VideoFeatures", "default_device", "default_dtype"]
