"""Saving a sampler's agent on its own and publishing a whole sampler to the Hugging Face Hub."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .._errors import TSPOError

__all__ = ["push_to_hub", "save_agent"]


def save_agent(agent: Any, path: str | os.PathLike[str]) -> Path:
    """Only the agent weights (``selector.*`` keys), in one safetensors file."""
    if agent is None:
        raise TSPOError("this sampler has no agent to save")
    from safetensors.torch import save_file

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({f"selector.{k}": v.detach().cpu().contiguous() for k, v in agent.state_dict().items()}, str(out))
    return out


def push_to_hub(
    sampler: Any, repo_id: str, *, private: bool | None, token: str | None, commit_message: str, revision: str | None
) -> str:
    """The released checkpoint format plus a model card, uploaded in one commit; returns the commit URL."""
    from huggingface_hub import HfApi

    from ._model_card import write_model_card

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory() as tmp:
        sampler.save_pretrained(tmp)
        write_model_card(Path(tmp), repo_id=repo_id, base=str(sampler.checkpoint_dir or ""))
        info = api.upload_folder(
            repo_id=repo_id, folder_path=tmp, commit_message=commit_message, revision=revision, repo_type="model"
        )
    return str(getattr(info, "commit_url", info))
