"""``search="coarse-to-fine"`` on files, in-memory frames and saved features: the sampler-side glue around
:mod:`tspo_sampler.scoring._search`.

A file is never decoded whole: the decoder lists the candidates from its packet table, and the search
asks for the features of the positions it needs; each request decodes and encodes just those frames.
A cached exhaustive run of the same video is replayed instead (``encoded_frames`` then counts the
features the search read). The sampler is passed in (duck-typed), so this module does not import it; it asks
only the sampler's public methods, and a file only through its :class:`~tspo_sampler.features._source.FeatureSource`
(``sampler.feature_source``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from .._errors import MissingFramesError
from .._result import Selection
from ..features._cache import VideoFeatures
from ..features._source import FileFeatureSource, FileVideo, FramesVideo
from ..features._video_features import PROGRESS_DELAY_S
from ..video._candidates import even_positions
from ._coarse_grid import scene_anchors
from ._search import DEFAULT_COARSE_STEP, DEFAULT_MAX_ENCODED, FeatureFn, SearchResult, coarse_to_fine
from ._settings import SelectionSettings

__all__ = ["search_features", "select_coarse_to_fine"]


def _window(sampler: Any, window_size: int | None) -> int:
    return int(sampler.window_size if window_size is None else window_size)  # checked by SelectionSettings


class SearchProgress:
    """The search's bar: candidates encoded out of all (the share encoded) and the round it is in (round 1 is the
    coarse grid, then one per refinement: each call of the feature function is a round). ``progress`` as for
    ``select_frames``: ``None`` shows it once the search has run 2 s."""

    def __init__(self, n: int, progress: bool | None) -> None:
        from tqdm.auto import tqdm

        self.n, self.round, self._in_round = n, 0, 0
        self.bar = tqdm(total=n, desc="coarse-to-fine", unit="frame", disable=progress is False,
                        delay=0.0 if progress else PROGRESS_DELAY_S,
                        bar_format="{desc}: {n_fmt}/{total_fmt} candidates encoded ({percentage:.0f}%){postfix} "
                                   "[{elapsed}]")

    def advance(self, count: int) -> None:
        """``count`` more frames of the current round are encoded (for a smoother bar within a round)."""
        self._in_round += count
        self.bar.update(count)

    def wrap(self, features: FeatureFn) -> FeatureFn:
        def counted(positions: np.ndarray) -> torch.Tensor:
            self.round, self._in_round = self.round + 1, 0
            what = "coarse grid" if self.round == 1 and len(positions) < self.n else "refining"
            self.bar.set_postfix_str(f"round {self.round} ({what})", refresh=False)
            got = features(positions)
            self.bar.update(max(0, len(positions) - self._in_round))
            return got

        return counted


def _pass_rows(sampler: Any) -> int:
    """The encoder's frames per forward pass (it pads the last one) on the CPU, where a pass costs the same padded
    or filled and only a request's last batch can end in a part-filled pass (the batch size is a multiple of it);
    else 1, and the search does not fill requests (an accelerator's 32-frame passes would fill requests with up
    to 31 more frames to decode, and a padded pass costs it little: not measured, so not done)."""
    rows = int(getattr(sampler.encoder, "pass_rows", 1))  # optional on an ImageTextEncoder
    return rows if sampler.encoder.device.type == "cpu" and sampler.batch_size % rows == 0 else 1


def _run(
    sampler: Any, text: torch.Tensor, n: int, features: FeatureFn, k: int, window_size: int | None, options: dict,
    cheap: np.ndarray | None = None, progress: bool | None | SearchProgress = None, anchors: np.ndarray | None = None,
    pass_rows: int = 1,
) -> SearchResult:
    bar = progress if isinstance(progress, SearchProgress) else SearchProgress(n, progress)
    with bar.bar:
        return coarse_to_fine(
            sampler.agent, text.float().cpu(), n, bar.wrap(features), k, window_size=_window(sampler, window_size),
            tau=sampler.tau, coarse_step=options.get("coarse_step", DEFAULT_COARSE_STEP),
            max_encoded=options.get("max_encoded", DEFAULT_MAX_ENCODED), cheap=cheap, anchors=anchors,
            pass_rows=pass_rows,
        )


def _keyframe_candidates(
    candidate_indices: np.ndarray, keyframes: np.ndarray, options: dict
) -> tuple[np.ndarray, np.ndarray]:
    """``(anchors, cheap)`` from the stream's keyframes (frame indices): the first candidate after each scene-cut
    keyframe (a coarse frame each) and after every keyframe (cheap to decode), see
    :func:`_coarse_grid.scene_anchors`; and, unless the caller chose one, the coarse step
    :func:`keyframe_coarse_step` gives. A live search and a replay on saved features both build the grid here."""
    candidate_indices = np.asarray(candidate_indices, dtype=np.int64)
    first = np.unique(np.searchsorted(candidate_indices, np.asarray(keyframes, dtype=np.int64)))
    first = first[first < len(candidate_indices)]
    if len(first) > 1 and "coarse_step" not in options:
        options["coarse_step"] = keyframe_coarse_step(first, len(candidate_indices))
    return scene_anchors(np.arange(int(first.max()) + 1 if len(first) else 0), first)


def keyframe_coarse_step(first: np.ndarray, num_candidates: int) -> int:
    """The coarse step for a file of ``num_candidates`` candidates whose keyframes fall at candidate positions
    ``first``: four typical GOPs, 16 to 48 candidates, and at most a 40th of the video (short videos keep a
    grid of about 40 coarse frames). Scene cuts already get a coarse frame each (the irregular keyframes),
    so the fill only has to follow slow change inside long scenes, and the coarse pass leaves most of a
    ``max_encoded=0.1`` budget to refinement (docs/benchmarks.md)."""
    gop = int(np.median(np.diff(first))) if len(first) > 1 else DEFAULT_COARSE_STEP
    return int(max(2 * DEFAULT_COARSE_STEP, min(6 * DEFAULT_COARSE_STEP, 4 * gop, num_candidates // 40)))


def _selection(
    result: SearchResult, cand_idx: np.ndarray, cand_ts: np.ndarray, question: str | None, **info: Any
) -> Selection:
    positions = result.positions
    return Selection(
        indices=[int(cand_idx[p]) for p in positions],
        timestamps=[float(cand_ts[p]) for p in positions],
        frames=None,
        scores=result.scores,
        candidate_indices=[int(i) for i in cand_idx],
        candidate_timestamps=[float(t) for t in cand_ts],
        method="topk",
        question=question,
        positions=list(positions),
        encoded_frames=result.encoded_frames,
        **info,
    )


def search_features(
    sampler: Any,
    video_features: VideoFeatures,
    text: torch.Tensor,
    question: str | None,
    k: int,
    *,
    window_size: int | None = None,
    keyframes: np.ndarray | None = None,
    **options: Any,
) -> Selection:
    """Replay the coarse-to-fine policy on saved features (reads only the features it needs, as many as a live
    search with this sampler's encoder would encode). Features of a file carry its keyframes (``keyframes``
    gives them for entries saved before they did), so the replay builds the live search's keyframe grid."""
    feats = video_features.features
    if keyframes is None and isinstance(video_features.metadata, dict):
        keyframes = video_features.metadata.get("keyframes")  # recorded by the exhaustive pass over a file
    anchors = cheap = None
    if keyframes is not None:
        anchors, cheap = _keyframe_candidates(video_features.candidate_indices, keyframes, options)
    # The live search's grid and requests (filled to whole encoder passes), so a replay picks what a live run picks.
    result = _run(sampler, text, len(feats), lambda p: feats[torch.from_numpy(p)], k, window_size, options,
                  cheap=cheap, anchors=anchors, pass_rows=_pass_rows(sampler))
    return _selection(
        result, np.asarray(video_features.candidate_indices), np.asarray(video_features.candidate_timestamps),
        question, duration=video_features.duration, fps=video_features.fps, video=video_features.source,
    )


def _file_search(
    sampler: Any, source: FileFeatureSource, text: torch.Tensor, question: str, settings: SelectionSettings,
    options: dict, progress: bool | None = None,
) -> Selection:
    """The search over a file, asking ``source`` for the features of the candidates it needs."""
    indices, timestamps = source.candidates()
    bar = SearchProgress(len(indices), progress)
    anchors, cheap = _keyframe_candidates(indices, source.keyframe_indices(), options)
    result = _run(sampler, text, len(indices), lambda p: source.features(p, on_batch=bar.advance), settings.k,
                  settings.window_size, options, cheap, bar, anchors, _pass_rows(sampler))
    meta = source.metadata
    return _selection(
        result, indices, timestamps, question, duration=float(meta.duration), fps=float(meta.fps),
        video=str(meta.source),
    )


def select_coarse_to_fine(
    sampler: Any, video: FileVideo | FramesVideo, question: str, settings: SelectionSettings, return_frames: bool,
    progress: bool | None = None,
) -> Selection:
    """:meth:`TemporalSampler.select_frames` with ``search="coarse-to-fine"`` (``method="topk"``)."""
    k, fps, window_size, options = settings.k, settings.fps, settings.window_size, settings.search_options()
    text = sampler.encode_text(question)
    if isinstance(video, FramesVideo):
        frames = video.frames
        positions = even_positions(len(frames), settings.max_candidates)
        kept = frames[torch.from_numpy(positions)]
        result = _run(
            sampler, text, len(positions), lambda p: sampler.encode_frames(kept[torch.from_numpy(p)], progress=False),
            k, window_size, options, progress=progress, pass_rows=_pass_rows(sampler),
        )
        selection = _selection(
            result, positions, positions / float(fps), question, duration=len(frames) / float(fps), fps=float(fps)
        )
        if return_frames:
            selection.frames = frames[torch.as_tensor(selection.indices, dtype=torch.long)].numpy()
        return selection
    with sampler.feature_source(video, settings) as source:
        cached = source.cached()
        if cached is not None:
            # Entries written before features recorded the keyframes: read them from the file's packet table.
            recorded = isinstance(cached.metadata, dict) and "keyframes" in cached.metadata
            keyframes = None if recorded else source.keyframe_indices()
            selection = search_features(sampler, cached, text, question, k, window_size=window_size,
                                        keyframes=keyframes, **options)
        else:
            try:
                selection = _file_search(sampler, source, text, question, settings, options, progress)
            except MissingFramesError:
                selection = None
    if selection is None:
        warnings.warn(
            "search='coarse-to-fine': some candidates of this video do not decode (a damaged file?); "
            "scoring every decodable candidate instead (search='exhaustive')",
            RuntimeWarning,
            stacklevel=3,
        )
        selection = sampler.select_frames(
            video, question, k, fps=fps, max_candidates=settings.max_candidates, window_size=window_size,
            return_frames=False, candidate_mode=settings.candidate_mode, decoder=settings.decoder,
        )
    if return_frames:
        selection.frames = sampler.get_frames(video, selection.indices, decoder=settings.decoder)
    if video.name is not None:
        selection.video = video.name
    return selection
