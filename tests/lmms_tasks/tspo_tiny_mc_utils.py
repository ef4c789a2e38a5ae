"""Functions of the tiny multiple-choice video task the lmms-eval plugin tests write (see test_lmms_eval_plugin.py).

A doc is ``{"id", "video", "question", "options": ["A. ...", ...], "answer": "A"}``; the prompt is the
question, the options and an instruction, in the usual video-MCQ form (Video-MME, LongVideoBench).
"""

from __future__ import annotations

import re

INSTRUCTION = "Answer with the option's letter from the given choices directly."


def doc_to_visual(doc):
    return [doc["video"]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return "\n".join([doc["question"], *doc["options"], INSTRUCTION])


def process_results(doc, results):
    pred = results[0] if results else ""
    m = re.search(r"[A-D]", str(pred))
    return {"accuracy": float(bool(m) and m.group(0) == doc["answer"])}
