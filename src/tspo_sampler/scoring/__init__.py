"""Scoring: the temporal agent's per-candidate scores, the search over them, and the k picks.

Modules: ``_agent`` (:class:`TemporalAgent`, the reference arithmetic with banded attention),
``_search`` (the coarse-to-fine search over a feature source), ``_coarse_grid`` (its coarse grid
from keyframes), ``_search_video`` (that search run on
a video) and ``_selection`` (turning scores into k indices: ``topk``, ``bin-max``, ``aks``, ...).
"""

from __future__ import annotations

from ._agent import TemporalAgent
from ._search import SearchResult, coarse_to_fine
from ._selection import SELECTION_METHODS, select_indices
from ._settings import SelectionSettings

__all__ = [
    "SELECTION_METHODS", "SearchResult", "SelectionSettings", "TemporalAgent", "coarse_to_fine", "select_indices"
]
