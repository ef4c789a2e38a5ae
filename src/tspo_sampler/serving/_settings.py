"""The per-request ``"tspo"`` field: ``{"k": 8, "method": "topk", "search": "coarse-to-fine", "question": "..."}``.

It overrides the server's selection settings for one request and is removed before the request is forwarded.
The values are checked by :class:`~tspo_sampler.SelectionSettings` (the same rules and messages as the library
and the CLI), with each field named as the client wrote it (``tspo.k``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..scoring._settings import SelectionSettings
from ._errors import BadRequestError

__all__ = ["OVERRIDES", "RequestSettings", "request_settings"]

#: The keys a request may set in its ``tspo`` field.
OVERRIDES = ("k", "method", "search", "question")
_NAMES = {name: f"tspo.{name}" for name in OVERRIDES}


@dataclass(frozen=True)
class RequestSettings:
    """The settings one request selects with: the server's, with the request's overrides applied."""

    selection: SelectionSettings
    question: str | None = None


def request_settings(field: Any, defaults: SelectionSettings) -> RequestSettings:
    """Check the request's ``tspo`` field (``None`` when absent) and apply it to the server's settings."""
    if field is None:
        return RequestSettings(defaults)
    if not isinstance(field, dict):
        raise BadRequestError(f"tspo must be an object, got {type(field).__name__}", param="tspo")
    unknown = sorted(set(field) - set(OVERRIDES))
    if unknown:
        raise BadRequestError(
            f"unknown key(s) in tspo: {', '.join(map(repr, unknown))}; allowed: {', '.join(OVERRIDES)}",
            param=f"tspo.{unknown[0]}",
        )
    question = field.get("question")
    if question is not None and (not isinstance(question, str) or not question.strip()):
        raise BadRequestError("tspo.question must be a non-empty string", param="tspo.question")
    values = {**dataclasses.asdict(defaults), **{k: v for k, v in field.items() if k != "question"}}
    try:
        selection = SelectionSettings.named(_NAMES, **values)
    except (TypeError, ValueError) as exc:
        named = [(str(exc).find(name), name) for name in _NAMES.values() if name in str(exc)]
        param = min(named)[1] if named else "tspo"
        raise BadRequestError(str(exc), param=param) from None
    return RequestSettings(selection, question)
