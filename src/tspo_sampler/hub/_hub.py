"""Reading and writing TSPO checkpoints in the released format (a transformers CLIP checkpoint whose
state dict also holds the agent under ``selector.``), locally or through the Hugging Face Hub cache."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .._errors import CheckpointError
from ..features._encoders import HFCLIPEncoder, ImagePreprocessing
from ..features._install import deferred_scipy_optimize, install_check
from ..features._weights import keep_weights_compact, stored_state_dict, widening_is_exact
from ..scoring._agent import TemporalAgent
from ._hub_errors import explain_hub_error

AGENT_PREFIX = "selector."
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
CHECKPOINT_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.md"]
AGENT_NUM_HEADS = 8


def resolve_checkpoint(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """A local directory as it is, or a Hub repo id downloaded (or found in the cache) by huggingface_hub.

    ``HF_HUB_OFFLINE=1`` and ``local_files_only=True`` use the cache only. Only safetensors weights, JSON
    configs and tokenizer files are fetched: never pickled weights.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{name_or_path} is a file; pass the checkpoint directory or a Hub repo id")
    name = str(name_or_path)
    if name.count("/") > 1 or name.startswith((".", "/", "~")) or os.sep in name.replace("/", "", 1):
        raise CheckpointError(f"checkpoint directory {name} does not exist")
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                name,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                allow_patterns=CHECKPOINT_PATTERNS,
                token=token,
            )
        )
    except Exception as exc:  # offline, no network, missing repo or revision, gated: say which
        raise explain_hub_error(exc, name, revision, local_files_only) from exc


def _read_safetensors(path: Path, dtype: torch.dtype | None, state: dict[str, torch.Tensor]) -> None:
    """Read one file tensor by tensor, converting CLIP weights to ``dtype`` as they arrive.

    Converting one tensor at a time keeps the peak near the final model size instead of holding the
    stored (bfloat16) copy and the converted copy side by side. Agent weights stay as stored.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    # safetensors memory-maps the file and the mapped pages count as resident until the file is closed;
    # reopening per group of tensors keeps only a slice of the file mapped at a time.
    group = 16
    for start in range(0, len(keys), group):
        with safe_open(str(path), framework="pt") as f:
            for key in keys[start : start + group]:
                tensor = f.get_tensor(key)
                convert = dtype is not None and tensor.is_floating_point() and not key.startswith(AGENT_PREFIX)
                # Always a copy: a tensor left on the file's mapping would fault (SIGBUS) if the file
                # were later rewritten in place, e.g. by saving a model over the same directory.
                state[key] = tensor.to(dtype if convert else tensor.dtype, copy=True)


def load_state_dict(directory: Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint, from one safetensors file or from shards listed in an index.

    With ``dtype``, floating-point CLIP weights are converted while reading.
    """
    single = directory / WEIGHTS_NAME
    index = directory / WEIGHTS_INDEX_NAME
    state: dict[str, torch.Tensor] = {}
    try:
        if single.is_file():
            _read_safetensors(single, dtype, state)
            return state
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            for shard in sorted(set(weight_map.values())):
                _read_safetensors(directory / shard, dtype, state)
            return state
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"cannot read the weights of {directory}: {exc}") from exc
    except Exception as exc:  # safetensors raises its own error type on a damaged header
        raise CheckpointError(f"cannot read the weights of {directory}: {exc}") from exc
    if any(directory.glob("*.bin")) or any(directory.glob("*.pt")) or any(directory.glob("*.pth")):
        raise CheckpointError(
            f"{directory} holds only pickled weights (*.bin/*.pt); tspo-sampler loads safetensors only. "
            "Convert them with safetensors first."
        )
    raise CheckpointError(f"{directory} has no {WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME}")


def split_agent_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(clip_state, agent_state)``: agent keys lose their ``selector.`` prefix."""
    agent = {k[len(AGENT_PREFIX) :]: v for k, v in state.items() if k.startswith(AGENT_PREFIX)}
    clip = {k: v for k, v in state.items() if not k.startswith(AGENT_PREFIX)}
    return clip, agent


def build_agent(agent_state: dict[str, torch.Tensor], dim: int, source: object) -> TemporalAgent:
    """A float32 :class:`TemporalAgent` from ``selector.*`` tensors, with shape checks that name the key."""
    agent = TemporalAgent(dim, AGENT_NUM_HEADS)
    expected = agent.state_dict()
    missing = sorted(set(expected) - set(agent_state))
    if missing:
        names = ", ".join(AGENT_PREFIX + m for m in missing)
        raise CheckpointError(f"{source}: agent weights are incomplete, missing {names}")
    unexpected = sorted(set(agent_state) - set(expected))
    if unexpected:
        raise CheckpointError(f"{source}: unknown agent weights {', '.join(AGENT_PREFIX + u for u in unexpected)}")
    for key, tensor in agent_state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{source}: {AGENT_PREFIX}{key} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(expected[key].shape)} for CLIP projection_dim {dim}"
            )
    agent.load_state_dict({k: v.float() for k, v in agent_state.items()})
    return agent.eval()


def _stored_dtype(directory: Path) -> torch.dtype:
    """The dtype the checkpoint's weights are stored in (from a safetensors header, no tensor read).

    A header or shard index that cannot be read, or weights in a dtype not listed below (never assumed to be
    float32: that would load, e.g., float8 weights as they are), is a :class:`CheckpointError` naming the file.
    """
    from safetensors import safe_open

    single = directory / WEIGHTS_NAME
    if not single.is_file():
        index = directory / WEIGHTS_INDEX_NAME
        if not index.is_file():
            return torch.float32  # no weights at all: load_state_dict says what is missing
        try:
            single = directory / sorted(set(json.loads(index.read_text())["weight_map"].values()))[0]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise CheckpointError(f"cannot read the shard list {index}: {type(exc).__name__}: {exc}") from exc
    try:
        with safe_open(str(single), framework="pt") as f:
            keys = [k for k in f.keys() if k.endswith("weight")]  # the encoder's, which compact_weights keeps
            keys = [k for k in keys if not k.startswith(AGENT_PREFIX)] or keys
            stored = f.get_slice(keys[0]).get_dtype() if keys else None
    except Exception as exc:  # a missing shard, or safetensors' own error on a damaged header
        raise CheckpointError(f"cannot read the weights' dtype from {single}: {exc}") from exc
    if stored in _SAFETENSORS_DTYPES:
        return _SAFETENSORS_DTYPES[stored]
    what = "has no tensor named *weight" if stored is None else f"stores its weights as {stored}"
    raise CheckpointError(
        f"{single} {what}; tspo-sampler reads weights stored as {', '.join(_SAFETENSORS_DTYPES)} "
        "(convert the checkpoint, e.g. to BF16 or F32)"
    )


_SAFETENSORS_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64}


@dataclass
class LoadedCheckpoint:
    encoder: HFCLIPEncoder
    agent: TemporalAgent | None
    config: dict[str, Any]
    directory: Path
    weights_dtype: torch.dtype


def load_checkpoint(
    directory: Path,
    *,
    device: torch.device,
    dtype: torch.dtype,
    require_agent: bool = True,
    compact_weights: bool | None = False,
) -> LoadedCheckpoint:
    """Build the CLIP encoder and the agent from a checkpoint directory in the released format.

    ``compact_weights`` keeps the encoder's weights in their stored dtype and widens them to ``dtype`` as
    each layer runs (identical outputs, see :mod:`tspo_sampler.features._weights`). ``None`` does so on the CPU
    whenever the stored dtype widens exactly to ``dtype``; ``True`` requires that it does.
    """
    with install_check("transformers' CLIPModel", "transformers"), deferred_scipy_optimize():
        from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{directory} has no config.json")
    config_dict = json.loads(config_path.read_text())
    if config_dict.get("model_type") != "clip":
        raise CheckpointError(
            f"{config_path}: model_type is {config_dict.get('model_type')!r}; TSPO checkpoints are CLIP checkpoints"
        )
    # On the CPU, bfloat16 means the image tower's matrix products in bfloat16 under autocast, with float32
    # norms, embeddings and residuals (see tspo_sampler.features._weights): load as for float32, then narrow those.
    cpu_bf16 = dtype == torch.bfloat16 and device.type == "cpu"
    if cpu_bf16:
        dtype = torch.float32
    # The stored dtype (bfloat16 for released agents) is what save_pretrained writes back by default.
    weights_dtype = _stored_dtype(directory)
    exact = widening_is_exact(weights_dtype, dtype)
    if compact_weights is None:
        compact_weights = exact and device.type == "cpu"
    elif compact_weights and not exact:
        raise ValueError(
            f"compact_weights=True needs weights stored in a narrower dtype than the compute dtype; {directory} "
            f"stores {str(weights_dtype).replace('torch.', '')} and the compute dtype is "
            f"{str(dtype).replace('torch.', '')}"
        )
    state = load_state_dict(directory, dtype=None if compact_weights else dtype)
    clip_state, agent_state = split_agent_state(state)
    del state
    config = CLIPConfig.from_dict(config_dict)
    dim = int(config.projection_dim)
    if agent_state:
        agent: TemporalAgent | None = build_agent(agent_state, dim, directory).to(device)
    elif require_agent:
        raise CheckpointError(
            f"{directory} has no agent weights (no '{AGENT_PREFIX}*' keys): it is a plain CLIP checkpoint. "
            "Pass require_agent=False to score frames by raw CLIP similarity."
        )
    else:
        agent = None
    with torch.device("meta"):
        model = CLIPModel(config)
    result = model.load_state_dict(clip_state, strict=False, assign=True)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    unexpected = [k for k in result.unexpected_keys if not k.endswith("position_ids")]
    if missing or unexpected:
        raise CheckpointError(
            f"{directory}: CLIP weights do not fit the config (missing: {missing[:5]}, unexpected: {unexpected[:5]})"
        )
    # Buffers not stored in the checkpoint (position_ids) are still on the meta device: rebuild them.
    for module in model.modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf.is_meta:
                if name == "position_ids":
                    module.register_buffer(name, torch.arange(buf.shape[-1]).expand(buf.shape), persistent=False)
                else:
                    raise CheckpointError(f"{directory}: buffer {name} missing from the checkpoint")
    if compact_weights:
        keep_weights_compact(model.to(device=device), dtype)
    else:
        model = model.to(device=device, dtype=dtype)
    model.eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except Exception as exc:
        raise CheckpointError(f"cannot load the tokenizer of {directory}: {exc}") from exc
    pre_path = directory / "preprocessor_config.json"
    pre_cfg = json.loads(pre_path.read_text()) if pre_path.is_file() else {}
    if not pre_cfg:
        size = int(config.vision_config.image_size)
        pre_cfg = {"size": {"shortest_edge": size}, "crop_size": {"height": size, "width": size}}
    encoder = HFCLIPEncoder(model, tokenizer, ImagePreprocessing.from_processor_config(pre_cfg))
    if cpu_bf16:
        encoder.autocast_images(torch.bfloat16)
    return LoadedCheckpoint(encoder, agent, config_dict, directory, weights_dtype)


def save_checkpoint(
    directory: str | os.PathLike[str],
    encoder: HFCLIPEncoder,
    agent: TemporalAgent | None,
    *,
    dtype: torch.dtype = torch.bfloat16,
    extra_config: dict[str, Any] | None = None,
) -> Path:
    """Write the released format: CLIP config + ``model.safetensors`` (CLIP keys and ``selector.*``) +
    tokenizer and ``CLIPProcessor`` files, so the reference code loads it too. ``dtype``: float32, bfloat16
    or float16 (an integer or bool dtype would save zeros or ones)."""
    from .._device import check_dtype

    dtype = check_dtype(dtype, "dtype") or torch.bfloat16
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = encoder.model.config.to_dict()
    config["architectures"] = ["TSPOModel"]
    config["torch_dtype"] = str(dtype).replace("torch.", "")
    config.pop("dtype", None)
    if extra_config:
        config.update(extra_config)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    stored = {k: v for k, v in stored_state_dict(encoder.model).items() if not k.endswith("position_ids")}
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in stored.items()}
    if agent is not None:
        agent_state = agent.state_dict()
        tensors.update({AGENT_PREFIX + k: v.detach().to("cpu", dtype).contiguous() for k, v in agent_state.items()})
    tmp = out / (WEIGHTS_NAME + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / WEIGHTS_NAME)
    encoder.tokenizer.save_pretrained(out)
    pre = encoder.preprocessing.to_processor_config()
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")
    return out
