"""Hub: checkpoints in and out: resolving a Hub id or directory, loading, saving, model cards, upload.

Modules: ``_hub`` (resolve, load and save a checkpoint), ``_hub_errors`` (one-line explanations of
Hub failures), ``_model_card`` (the README written beside a saved agent) and ``_publish``
(:func:`save_agent` and :func:`push_to_hub`).
"""

from __future__ import annotations

from ._hub import load_checkpoint, resolve_checkpoint, save_checkpoint
from ._publish import push_to_hub, save_agent

__all__ = ["load_checkpoint", "push_to_hub", "resolve_checkpoint", "save_agent", "save_checkpoint"]
