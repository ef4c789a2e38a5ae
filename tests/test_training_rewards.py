"""Answer-letter parsing and the accuracy / temporal rewards."""

from __future__ import annotations

import numpy as np
import pytest

from tspo_sampler.training._rewards import (
    accuracy_reward,
    parse_answer_letter,
    parse_solution_letter,
    span_mask,
    temporal_reward,
)


@pytest.mark.parametrize(
    "text",
    ["B", "(B)", "B.", "B)", "B) a red car", "B. a red car", "(B) a red car", "b", "(b)", "b.",
     "The answer is B", "the answer is b.", "Answer: B", "answer: (b)", "The correct option is B.",
     "<answer>b</answer>", "<answer> B </answer>", "  B\n", "[B]", "B: a red car", "I think the answer is B."],
)
def test_parses_letter_forms(text):
    assert parse_answer_letter(text, "ABCD") == "B"


@pytest.mark.parametrize("text", ["", "   ", None, "I don't know", "A cat sits on a mat", "The answer is a red car"])
def test_no_letter(text):
    assert parse_answer_letter(text, "ABCD") is None


def test_letter_outside_options_is_rejected():
    assert parse_answer_letter("E", "ABCD") is None
    assert parse_answer_letter("The answer is E", "ABCD") is None
    assert parse_answer_letter("E", "ABCDE") == "E"


def test_option_text_answer():
    assert parse_answer_letter("a red car", options=["a blue car", "A red car."]) == "B"


def test_solution_forms():
    opts = ["x", "y", "z", "w"]
    assert parse_solution_letter("<answer>c</answer>", opts) == "C"
    assert parse_solution_letter(2, opts) == "C"
    assert parse_solution_letter("z", opts) == "C"
    assert parse_solution_letter(7, opts) is None
    assert parse_solution_letter(None, opts) is None


def test_accuracy_reward():
    assert accuracy_reward("B", "b") == 1.0
    assert accuracy_reward("C", "B") == 0.0
    assert accuracy_reward(None, "B") == 0.0


def test_temporal_reward_and_span_mask():
    mask = span_mask(np.arange(10, dtype=float), (2.0, 5.0))
    assert mask.tolist() == [False, False, True, True, True, True, False, False, False, False]
    assert temporal_reward([2, 3, 8, 9], mask) == 0.5
    assert temporal_reward([], mask) == 0.0
    assert span_mask(np.arange(3.0), None) is None
