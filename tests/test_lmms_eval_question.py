"""The question the lmms-eval plugin selects frames for: the doc's question without its answer options.

Pure functions of the plugin; they need no lmms-eval (the plugin's model classes do).
"""

from __future__ import annotations

import pytest

from tspo_sampler import TSPOError
from tspo_sampler.integrations.lmms_eval._plugin import question_from_doc, strip_options


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("What is shown?\nA. a cat\nB. a dog\nC. a bird\nD. a fish", "What is shown?"),  # LongVideoBench, Video-MME
        ("What is shown?\n(A) a cat\n(B) a dog", "What is shown?"),
        ("What is shown? (A) a cat (B) a dog (C) a bird", "What is shown?"),  # MLVU / LVBench inline options
        ("Why does A. Smith leave?", "Why does A. Smith leave?"),  # not an option line: kept
        ("Count the cars.", "Count the cars."),
    ],
)
def test_strip_options(text, question):
    assert strip_options(text) == question


def test_question_from_doc_fields_and_prompt():
    doc = {"question": "What is shown?\nA. x\nB. y", "query": "ignored"}
    assert question_from_doc(doc) == "What is shown?"
    assert question_from_doc({"q": "Where?"}, "q") == "Where?"
    messages = [{"role": "user", "content": [{"type": "video", "url": "v.mp4"},
                                             {"type": "text", "text": "Which colour?\nA. red\nB. blue"}]}]
    assert question_from_doc({"video": "v.mp4"}, None, messages) == "Which colour?"
    with pytest.raises(TSPOError, match="question_field='q'.*no such field"):
        question_from_doc({"question": "x"}, "q")
    with pytest.raises(TSPOError, match="no question found"):
        question_from_doc({"video": "v.mp4"}, None, [{"role": "user", "content": [{"type": "video"}]}])
