"""How frames are chosen, checked in one place: :class:`SelectionSettings`.

Every entry point (``select_frames``, ``select_from_features``, ``encode_video``, the index settings, the
CLI, the lmms-eval plugin, the demo) builds one of these, so a mistake gets one message wherever it is made.
One rule for the kind of error: a value of the wrong type raises :class:`~tspo_sampler.ArgumentTypeError`
(a ``TypeError``), a value of the right type that cannot be used raises
:class:`~tspo_sampler.InvalidArgumentError` (a ``ValueError``). Integer fields take Python and NumPy
integers, never ``bool``; number fields take any real number.

The CLI asks for the same messages with its flags named (``--window-size`` for ``window_size``) through
:meth:`SelectionSettings.named`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from .._errors import ArgumentTypeError, InvalidArgumentError
from ..video._candidates import CANDIDATE_MODES
from ..video._inputs import DECODERS
from ._search import SEARCH_METHODS, SEARCH_MODES, check_search_settings
from ._selection import SELECTION_METHODS

__all__ = ["SelectionSettings", "check_indices", "check_method", "check_positive_int"]


class _Names:
    """How a message names an argument and one of its values: ``window_size`` / ``method='bolt'`` in Python,
    ``--window-size`` / ``--method bolt`` on the command line."""

    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        self.names = dict(names or {})
        self.flags = names is not None

    def __call__(self, field: str) -> str:
        return self.names.get(field, field)

    def setting(self, field: str, value: object) -> str:
        return f"{self(field)} {value}" if self.flags else f"{field}={value!r}"


def _wrong_type(name: str, what: str, value: object) -> ArgumentTypeError:
    return ArgumentTypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")


def _wrong_value(name: str, what: str, value: object) -> InvalidArgumentError:
    return InvalidArgumentError(f"{name} must be {what}, got {value!r}")


def check_positive_int(value: object, name: str, *, optional: bool = False) -> int | None:
    """``value`` as an ``int`` >= 1 (``None`` too when ``optional``); the one check of every count argument."""
    if value is None and optional:
        return None
    what = "a positive integer or None" if optional else "a positive integer"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _wrong_type(name, what, value)
    if value < 1:
        raise _wrong_value(name, what, value)
    return int(value)


def check_indices(indices: object, name: str = "indices") -> list[int]:
    """Frame indices as a list of ``int``: a fraction (``1.5``), a bool or a string is refused, never rounded."""
    if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
        raise ArgumentTypeError(f"{name} must be a sequence of integers, got {type(indices).__name__} {indices!r}")
    out = []
    for i, value in enumerate(indices):  # type: ignore[union-attr]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ArgumentTypeError(
                f"{name} must be a sequence of integers, got {type(value).__name__} {value!r} at position {i}"
            )
        out.append(int(value))
    return out


def check_method(method: object, name: str = "method") -> str:
    """A selection method name (:data:`~tspo_sampler.SELECTION_METHODS`)."""
    if not isinstance(method, str) or method not in SELECTION_METHODS:
        error = InvalidArgumentError if isinstance(method, str) else ArgumentTypeError
        raise error(f"unknown {name} {method!r}; valid methods: {', '.join(SELECTION_METHODS)}")
    return method


def _positive_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (Real, np.integer, np.floating)):
        raise _wrong_type(name, "a positive number", value)
    out = float(value)
    if not math.isfinite(out):
        raise _wrong_value(name, "a finite number", value)
    if out <= 0:
        raise _wrong_value(name, "a positive number", value)
    return out


def _choice(value: object, name: str, choices: tuple[str, ...] | Mapping[str, Any]) -> str:
    listed = ", ".join(choices)
    if not isinstance(value, str):
        raise _wrong_type(name, f"one of {listed}", value)
    if value not in choices:
        raise _wrong_value(name, f"one of {listed}", value)
    return value


@dataclass(frozen=True)
class SelectionSettings:
    """The options that decide which frames are chosen, checked when built (so a held value is valid).

    Attributes:
        k: frames to choose (every candidate when a video has fewer).
        method: ``topk``, ``bin-max``, ``aks``, ``uniform``, ``clip`` or ``bolt``.
        fps: candidates per second of video (for in-memory frames: the rate they were sampled at).
        max_candidates: cap on the number of candidates, spread evenly (``None``: no cap).
        window_size: the agent's attention window (``None``: the sampler's default).
        candidate_mode: ``fps`` or ``keyframes``.
        search: ``exhaustive`` or ``coarse-to-fine`` (``topk`` only).
        decoder: ``auto``, ``pyav``, ``decord`` or ``torchcodec``.
        coarse_step: candidates between coarse frames of the coarse-to-fine search (``None``: its default).
        max_encoded: share of the candidates the coarse-to-fine search may encode (``None``: its default).
    """

    k: int = 16
    method: str = "topk"
    fps: float = 1.0
    max_candidates: int | None = None
    window_size: int | None = None
    candidate_mode: str = "fps"
    search: str = "exhaustive"
    decoder: str = "auto"
    coarse_step: int | None = None
    max_encoded: float | None = None

    def __post_init__(self) -> None:
        for field, value in self.validate().items():
            object.__setattr__(self, field, value)  # numpy integers become int, numbers float

    def validate(self, names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Check every field; returns them normalised. ``names`` renames arguments in the messages."""
        return _validated(dataclasses.asdict(self), _Names(names))

    @classmethod
    def named(cls, names: Mapping[str, str], **values: Any) -> SelectionSettings:
        """Build from ``values``, naming a refused one as ``names`` says (the CLI passes its flags)."""
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        unknown = set(values) - set(fields)
        if unknown:
            raise TypeError(f"unknown selection settings: {', '.join(sorted(unknown))}")
        return cls(**_validated({**fields, **values}, _Names(names)))

    def search_options(self) -> dict[str, Any]:
        """``coarse_step`` / ``max_encoded`` for the search, only those that were set."""
        return {k: v for k, v in (("coarse_step", self.coarse_step), ("max_encoded", self.max_encoded))
                if v is not None}


def _validated(values: dict[str, Any], name: _Names) -> dict[str, Any]:
    out = dict(values)
    out["k"] = check_positive_int(values["k"], name("k"))
    method = check_method(values["method"], name("method"))
    out["fps"] = _positive_number(values["fps"], name("fps"))
    out["max_candidates"] = check_positive_int(values["max_candidates"], name("max_candidates"), optional=True)
    out["window_size"] = check_positive_int(values["window_size"], name("window_size"), optional=True)
    out["candidate_mode"] = _choice(values["candidate_mode"], name("candidate_mode"), CANDIDATE_MODES)
    search = _choice(values["search"], name("search"), SEARCH_MODES)
    if search != "exhaustive" and method not in SEARCH_METHODS:
        raise InvalidArgumentError(
            f"{name.setting('search', search)} works with {name.setting('method', 'topk')} only, "
            f"got {name.setting('method', method)} (it needs the score of every candidate)"
        )
    out["decoder"] = _choice(values["decoder"], name("decoder"), DECODERS)
    step, share = values["coarse_step"], values["max_encoded"]
    if step is not None or share is not None:
        checked = check_search_settings(1 if step is None else step, 1.0 if share is None else share,
                                        (name("coarse_step"), name("max_encoded")))
        out["coarse_step"] = None if step is None else checked[0]
        out["max_encoded"] = None if share is None else checked[1]
    return out
