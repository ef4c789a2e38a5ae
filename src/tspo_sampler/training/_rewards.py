"""Rewards: the option letter an answer names, answer accuracy, and temporal localisation."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np

LETTERS = tuple(string.ascii_uppercase)

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
# "The answer is B", "answer: (b)", "Correct option: C", "the correct choice would be D."
_PHRASE = re.compile(
    r"\b(?:answer|option|choice)\b\s*(?:is|would\s+be|should\s+be|:|=)?\s*[:\-]?\s*\(?\s*([A-Za-z])\s*\)?(?![A-Za-z])",
    re.IGNORECASE,
)
# "B", "(B)", "B.", "B)", "[B]", "b", "B: text", "B) text", "(B) text", "B. text"
_LEADING = re.compile(r"^\s*[\(\[]?\s*([A-Za-z])\s*(?:[\)\]\.:,]|$)(?:\s|$)?")
_LEADING_BARE = re.compile(r"^\s*([A-Z])(?:\s*$|\s+(?![a-z]))")
_STANDALONE_UPPER = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z'])")


def option_letters(n: int) -> tuple[str, ...]:
    if not 1 <= n <= len(LETTERS):
        raise ValueError(f"number of options must be between 1 and {len(LETTERS)}, got {n}")
    return LETTERS[:n]


def parse_answer_letter(
    text: str | None, letters: Sequence[str] | None = None, options: Sequence[str] | None = None
) -> str | None:
    """The option letter an MLLM's answer names, upper case, or ``None`` when it names none.

    Accepts ``"B"``, ``"(B)"``, ``"B."``, ``"B) text"``, ``"The answer is B"``, ``"<answer>b</answer>"``
    and lower-case forms. ``letters`` restricts the valid letters (default: A-Z); when ``options`` (the
    option texts) are given, an answer that repeats one option's text names that option.
    """
    if text is None:
        return None
    valid = {s.upper() for s in letters} if letters is not None else set(LETTERS)
    if options is not None and letters is None:
        valid = set(option_letters(len(options)))
    s = str(text).strip()
    tag = _ANSWER_TAG.search(s)
    if tag:
        s = tag.group(1).strip()
    if not s:
        return None

    def ok(letter: str) -> str | None:
        up = letter.upper()
        return up if up in valid else None

    m = _LEADING.match(s)
    if m and ok(m.group(1)):
        # "A cat ..." is not an answer letter, but "A. cat" / "A) cat" / "A" are.
        return ok(m.group(1))
    m = _LEADING_BARE.match(s)
    if m and ok(m.group(1)):
        return ok(m.group(1))
    for m in _PHRASE.finditer(s):
        letter = ok(m.group(1))
        if letter and not (m.group(1) in ("a", "i") and _is_word_use(s, m.start(1))):
            return letter
    if options is not None:
        norm = _normalise(s)
        for i, opt in enumerate(options):
            if norm and norm == _normalise(opt):
                return LETTERS[i] if LETTERS[i] in valid else None
    for m in _STANDALONE_UPPER.finditer(s):
        letter = ok(m.group(1))
        if letter and not (letter in ("A", "I") and _is_word_use(s, m.start())):
            return letter
    return None


def _is_word_use(s: str, pos: int) -> bool:
    """``A``/``I`` used as a word ("A man ...", "I think ...") rather than as a letter."""
    rest = s[pos + 1 :]
    return bool(re.match(r"\s+[a-z]", rest))


def _normalise(text: str) -> str:
    text = re.sub(r"^\s*[\(\[]?[A-Za-z][\)\]\.:]\s+", "", str(text))
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def parse_solution_letter(solution: object, options: Sequence[str] | None = None) -> str | None:
    """The ground-truth letter of a row: ``"B"``, ``"<answer>b</answer>"``, an option index, or an option text."""
    if isinstance(solution, bool):
        return None
    if isinstance(solution, (int, np.integer)):
        n = len(options) if options is not None else len(LETTERS)
        return LETTERS[int(solution)] if 0 <= int(solution) < n else None
    if not isinstance(solution, str):
        return None
    return parse_answer_letter(solution, options=options)


def accuracy_reward(prediction: str | None, answer: str) -> float:
    """1.0 when the predicted letter equals the ground-truth letter (case-insensitive), else 0.0."""
    if prediction is None:
        return 0.0
    return float(prediction.strip().upper() == answer.strip().upper())


def temporal_reward(positions: Sequence[int] | np.ndarray, mask: np.ndarray) -> float:
    """Share of the chosen candidate positions that lie inside the relevant part (``mask`` True)."""
    pos = np.asarray(positions, dtype=np.int64).reshape(-1)
    if pos.size == 0:
        return 0.0
    return float(np.asarray(mask, dtype=bool)[pos].mean())


def span_mask(timestamps: np.ndarray, span: Sequence[float] | None) -> np.ndarray | None:
    """Candidates whose timestamp lies in ``[start, end]`` (``None`` when no span is known)."""
    if span is None:
        return None
    start, end = float(span[0]), float(span[1])
    t = np.asarray(timestamps, dtype=np.float64)
    return (t >= start) & (t <= end)
