"""Training rows and the episodes built from them.

Two row formats are read from JSON Lines:

* this library's: ``{"video", "question", "options", "answer", "span"?: [start_s, end_s], "type"?}``
  where ``options`` is a list of texts (or a ``{"A": text}`` mapping) and ``answer`` a letter, an
  option index or an option's text;
* the paper's released TSPO-10K rows: ``video``, ``problem`` (the question without options),
  ``original_question`` (with ``A. ...`` / ``(A) ...`` option lines), ``solution`` (``<answer>b</answer>``)
  and ``type`` (``general`` / ``specific``).

Rows that cannot be used (no video file, no parsable answer, malformed span, ...) are reported with
their line number and skipped: :func:`load_examples` returns them as :class:`BadRow` and logs a warning.

"Specific" rows become long composed videos at the feature level (:func:`compose_clips`): 1 to 4 clips
of the question's own video placed at random among clips of unrelated videos, with the frame mask of
where the answer lies. The MLLM still sees real frames: every composed position remembers its source
video and source frame index.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._errors import RowError
from ..video._sources import resolve_video
from ._rewards import LETTERS, option_letters, parse_solution_letter, span_mask

logger = logging.getLogger(__name__)

TYPES = ("general", "specific")
ANSWER_INSTRUCTION = "Answer with the option's letter from the given choices directly."
_IMAGE_TOKEN = re.compile(r"<image>\s*", re.IGNORECASE)
_REFERENCE_INSTRUCTIONS = (
    "Please provide your answer by stating the letter followed by the full option.",
    "Please respond with only the letter of the correct answer.",
    "Please answer with the option's letter from the given choices directly.",
)
_OPTION_LINE = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[\.\):])\s*(.*)$")


@dataclass
class TrainExample:
    """One usable training row."""

    video: str
    """Resolved path (or identifier) of the question's video."""
    question: str
    """The question without options: what CLIP and the agent read."""
    options: list[str]
    answer: str
    """Ground-truth option letter, upper case."""
    type: str = "general"
    span: tuple[float, float] | None = None
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def letters(self) -> tuple[str, ...]:
        return option_letters(len(self.options))

    def prompt(self) -> str:
        """The multiple-choice prompt the MLLM answers: question, lettered options, instruction."""
        lines = [self.question.strip()]
        pairs = zip(self.letters, self.options, strict=True)
        lines += [f"{letter}. {_strip_option_label(opt)}" for letter, opt in pairs]
        lines.append(ANSWER_INSTRUCTION)
        return "\n".join(lines)


@dataclass
class BadRow:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def _strip_option_label(text: str) -> str:
    m = _OPTION_LINE.match(text)
    return m.group(3).strip() if m else str(text).strip()


def _clean_question(text: str) -> str:
    text = _IMAGE_TOKEN.sub("", str(text))
    for phrase in _REFERENCE_INSTRUCTIONS:
        text = text.replace(phrase, "")
    return text.strip()


def split_options(text: str) -> tuple[str, list[str]]:
    """Split ``"stem\\nA. x\\nB. y"`` (or ``(A) x``) into the stem and the option texts."""
    stem_lines: list[str] = []
    options: list[str] = []
    expected = 0
    for line in _clean_question(text).splitlines():
        m = _OPTION_LINE.match(line)
        letter = (m.group(1) or m.group(2)) if m else None
        if m and expected < len(LETTERS) and letter == LETTERS[expected]:
            options.append(m.group(3).strip())
            expected += 1
        elif options:
            options[-1] = (options[-1] + " " + line.strip()).strip()
        else:
            stem_lines.append(line)
    return "\n".join(stem_lines).strip(), options


def _resolve_video(video: object, root: Path | None, check: bool) -> str:
    if not isinstance(video, str) or not video.strip():
        raise RowError("missing 'video'")
    path = Path(resolve_video(video, [root] if root is not None else []))
    if check and not path.is_file():
        raise RowError(f"video not found: {path}")
    return str(path)


def _parse_span(span: object) -> tuple[float, float] | None:
    if span is None:
        return None
    if not isinstance(span, (list, tuple)) or len(span) != 2:
        raise RowError(f"'span' must be [start_s, end_s], got {span!r}")
    try:
        start, end = float(span[0]), float(span[1])
    except (TypeError, ValueError):
        raise RowError(f"'span' must hold two numbers, got {span!r}") from None
    if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end < start:
        raise RowError(f"'span' must satisfy 0 <= start <= end, got {span!r}")
    return start, end


def parse_row(row: object, *, video_root: str | os.PathLike | None = None, check_videos: bool = True,
              line: int = 0) -> TrainExample:
    """Turn one JSON object into a :class:`TrainExample`, or raise :class:`RowError` saying why not."""
    if not isinstance(row, dict):
        raise RowError(f"a row must be a JSON object, got {type(row).__name__}")
    root = Path(video_root).expanduser() if video_root is not None else None
    video = _resolve_video(row.get("video"), root, check_videos)
    if "problem" in row or "solution" in row:  # TSPO-10K
        full = row.get("original_question") or row.get("problem")
        if not isinstance(full, str):
            raise RowError("TSPO-10K row without 'original_question'/'problem'")
        stem, options = split_options(full)
        if isinstance(row.get("problem"), str):
            problem_stem, _ = split_options(row["problem"])
            stem = problem_stem or stem
        solution = row.get("solution")
    else:
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise RowError("missing 'question'")
        raw_options = row.get("options")
        if raw_options is None:
            stem, options = split_options(question)
        else:
            stem = _clean_question(question)
            if isinstance(raw_options, dict):
                keys = sorted(str(k).strip().upper() for k in raw_options)
                if keys != list(LETTERS[: len(keys)]):
                    raise RowError(f"'options' keys must be A, B, C, ... in order, got {sorted(raw_options)}")
                options = [str(raw_options[k] if k in raw_options else raw_options[k.lower()]) for k in keys]
            elif isinstance(raw_options, (list, tuple)) and all(isinstance(o, (str, int, float)) for o in raw_options):
                options = [str(o) for o in raw_options]
            else:
                raise RowError(f"'options' must be a list of texts or a letter->text mapping, got {raw_options!r}")
        solution = row.get("answer")
    if not stem:
        raise RowError("empty question")
    if len(options) < 2:
        raise RowError(f"a multiple-choice question needs at least 2 options, found {len(options)}")
    if len(options) > len(LETTERS):
        raise RowError(f"too many options ({len(options)})")
    letter = parse_solution_letter(solution, options)
    if letter is None or letter not in option_letters(len(options)):
        raise RowError(f"unparsable answer {solution!r} for {len(options)} options")
    qtype = row.get("type", "general")
    if qtype is None:
        qtype = "general"
    if qtype not in TYPES:
        raise RowError(f"'type' must be one of {TYPES}, got {qtype!r}")
    span = _parse_span(row.get("span"))
    extra = {k: v for k, v in row.items() if k not in {"video", "question", "options", "answer", "span", "type"}}
    return TrainExample(video=video, question=stem, options=options, answer=letter, type=qtype, span=span,
                        line=line, extra=extra)


def load_examples(
    path: str | os.PathLike,
    *,
    video_root: str | os.PathLike | None = None,
    check_videos: bool = True,
    log: bool = True,
) -> tuple[list[TrainExample], list[BadRow]]:
    """Read a JSONL file of rows; returns the usable examples and the rows skipped (with line numbers).

    ``video_root`` defaults to the file's directory. Blank lines are ignored; every other row that
    cannot be used is reported (logged as a warning when ``log``) and skipped.
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"training data {p} is a directory; pass a JSONL file of rows")
    if not p.is_file():
        raise FileNotFoundError(f"training data not found: {p}")
    root = Path(video_root) if video_root is not None else p.parent
    examples: list[TrainExample] = []
    bad: list[BadRow] = []
    with p.open("r", encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                bad.append(BadRow(lineno, f"invalid JSON ({exc.msg})"))
                continue
            try:
                examples.append(parse_row(row, video_root=root, check_videos=check_videos, line=lineno))
            except RowError as exc:
                bad.append(BadRow(lineno, str(exc)))
    if log and bad:
        shown = "; ".join(str(b) for b in bad[:20])
        more = f" (and {len(bad) - 20} more)" if len(bad) > 20 else ""
        logger.warning("%s: skipped %d bad row(s): %s%s", p, len(bad), shown, more)
    return examples, bad


# ----------------------------------------------------------------------------------------------------
# Episodes: what one question becomes at the feature level.
# ----------------------------------------------------------------------------------------------------


@dataclass
class Episode:
    """The candidates the agent scores for one question, and where each comes from."""

    example: TrainExample
    features: torch.Tensor
    """``T x D`` float32 CLIP features of the candidates."""
    mask: np.ndarray | None
    """``T`` bool: candidates inside the relevant part (``None`` when unknown)."""
    videos: list[str]
    """Source videos; ``videos[0]`` is the question's own video."""
    source_video: np.ndarray
    """``T`` int: index into ``videos`` of each candidate's source."""
    source_index: np.ndarray
    """``T`` int64: source frame index of each candidate in its video."""
    timestamps: np.ndarray
    """``T`` float64: time of each candidate in the (possibly composed) video, in seconds."""
    k: int
    composed: bool = False

    @property
    def num_candidates(self) -> int:
        return int(self.features.shape[0])


def general_episode(example: TrainExample, video_features: Any, k: int) -> Episode:
    """The question's own video as it is; the mask comes from the row's span when it has one."""
    feats = torch.as_tensor(video_features.features, dtype=torch.float32)
    T = feats.shape[0]
    times = np.asarray(video_features.candidate_timestamps, dtype=np.float64)
    return Episode(
        example=example,
        features=feats,
        mask=span_mask(times, example.span),
        videos=[example.video],
        source_video=np.zeros(T, dtype=np.int64),
        source_index=np.asarray(video_features.candidate_indices, dtype=np.int64),
        timestamps=times,
        k=min(k, T),
    )


@dataclass
class Composition:
    """Where each composed position comes from: clip ``c`` of video ``source_video`` at ``source_position``."""

    source_video: np.ndarray  # int, index into the list of videos given to compose_clips (0 = own)
    source_position: np.ndarray  # int, candidate position inside that video
    mask: np.ndarray  # bool, True for the own video's clips
    clip_bounds: list[tuple[int, int, bool]]  # (start, end) in composed positions and whether relevant


def _clip_positions(num: int, length: int, rng: np.random.Generator) -> np.ndarray:
    if num <= length:
        return np.arange(num, dtype=np.int64)
    return np.sort(rng.choice(num, size=length, replace=False)).astype(np.int64)


def compose_clips(
    own_length: int,
    distractor_lengths: Sequence[int],
    rng: np.random.Generator,
    *,
    clip_length: int = 50,
    num_true_clips: int = 1,
) -> Composition:
    """Plan a composed video: ``num_true_clips`` clips of the own video among one clip of each distractor.

    Each clip is ``clip_length`` candidates (ascending, drawn without replacement; a shorter video gives
    all its candidates). Clips are laid out in random order; ``distractor_lengths[i]`` is the number of
    candidates of distractor ``i``, which becomes source video ``i + 1``.
    """
    clips: list[tuple[int, np.ndarray, bool]] = []
    for _ in range(num_true_clips):
        clips.append((0, _clip_positions(own_length, clip_length, rng), True))
    for i, n in enumerate(distractor_lengths):
        clips.append((i + 1, _clip_positions(int(n), clip_length, rng), False))
    order = rng.permutation(len(clips))
    src_video, src_pos, mask, bounds = [], [], [], []
    start = 0
    for c in order:
        vid, pos, relevant = clips[c]
        src_video.append(np.full(len(pos), vid, dtype=np.int64))
        src_pos.append(pos)
        mask.append(np.full(len(pos), relevant, dtype=bool))
        bounds.append((start, start + len(pos), relevant))
        start += len(pos)
    return Composition(np.concatenate(src_video), np.concatenate(src_pos), np.concatenate(mask), bounds)


def specific_episode(
    example: TrainExample,
    own_features: Any,
    distractors: Sequence[tuple[str, Any]],
    rng: np.random.Generator,
    *,
    k: int,
    clip_length: int = 50,
    num_true_clips: int = 1,
    fps: float = 1.0,
) -> Episode:
    """Compose the "specific" episode at the feature level (see :func:`compose_clips`).

    ``distractors``: ``(video, VideoFeatures)`` of unrelated videos, one clip each. The composed
    timestamps are ``position / fps``: the spliced video plays at the candidate rate.
    """
    sources = [own_features] + [f for _, f in distractors]
    plan = compose_clips(
        len(own_features.candidate_indices),
        [len(f.candidate_indices) for _, f in distractors],
        rng,
        clip_length=clip_length,
        num_true_clips=num_true_clips,
    )
    feats = []
    src_index = np.empty(len(plan.source_video), dtype=np.int64)
    for start, end, _ in plan.clip_bounds:
        vid = int(plan.source_video[start])
        pos = plan.source_position[start:end]
        feats.append(torch.as_tensor(sources[vid].features, dtype=torch.float32)[torch.as_tensor(pos)])
        src_index[start:end] = np.asarray(sources[vid].candidate_indices, dtype=np.int64)[pos]
    features = torch.cat(feats, dim=0)
    T = features.shape[0]
    return Episode(
        example=example,
        features=features,
        mask=plan.mask,
        videos=[example.video] + [v for v, _ in distractors],
        source_video=plan.source_video,
        source_index=src_index,
        timestamps=np.arange(T, dtype=np.float64) / fps,
        k=min(k, T),
        composed=True,
    )
