"""Shared pieces of the benchmarks: a ViT-B/32-shaped random TSPO checkpoint, peak-memory probes and the CPU's
name (every benchmark names the machine it ran on)."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_CHECKPOINT = ROOT / "tests" / "data" / "tspo_reference" / "checkpoint"
TOKENIZER_FILES = ("vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json")
sys.path.insert(0, str(ROOT / "tests"))  # for tests/media.py (video generators)


# (text tower, vision tower, projection dim) of the random checkpoints; vit-l14 is the released agent's shape.
CHECKPOINT_SHAPES = {
    "vit-b32": ({"hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8, "num_hidden_layers": 12},
                {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
                 "patch_size": 32}, 512),
    "vit-l14": ({"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12},
                {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
                 "patch_size": 14}, 768),
}


def make_vit_b32_checkpoint(directory: Path, *, seed: int = 0, shape: str = "vit-b32") -> Path:
    """A randomly initialised CLIP ViT-B/32 (224 px, 512-dim projection) plus agent, in the released format;
    ``shape="vit-l14"`` makes the released agent's size (0.43 B parameters) instead.

    The text tower uses the fixture's toy tokenizer (it costs nothing next to the vision tower).
    """
    import torch
    from transformers import CLIPConfig, CLIPModel

    from tspo_sampler.hub._hub import AGENT_PREFIX
    from tspo_sampler.scoring._agent import TemporalAgent

    directory = Path(directory)
    if (directory / "model.safetensors").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    text, vision, dim = CHECKPOINT_SHAPES[shape]
    config = CLIPConfig(
        text_config={"vocab_size": 522, "bos_token_id": 520, "eos_token_id": 521, "pad_token_id": 521, **text},
        vision_config={**vision, "image_size": 224},
        projection_dim=dim,
    )
    model = CLIPModel(config)
    agent = TemporalAgent(dim)
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()
             if not k.endswith("position_ids")}
    state.update({AGENT_PREFIX + k: v.to(torch.bfloat16).contiguous() for k, v in agent.state_dict().items()})
    from safetensors.torch import save_file

    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    cfg = config.to_dict()
    cfg["architectures"] = ["TSPOModel"]
    cfg["torch_dtype"] = "bfloat16"
    (directory / "config.json").write_text(json.dumps(cfg, indent=2))
    pre = json.loads((FIXTURE_CHECKPOINT / "preprocessor_config.json").read_text())
    pre["size"] = {"shortest_edge": 224}
    pre["crop_size"] = {"height": 224, "width": 224}
    (directory / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    for name in TOKENIZER_FILES:
        shutil.copy(FIXTURE_CHECKPOINT / name, directory / name)
    return directory


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Reads ``VmHWM`` from ``/proc/self/status``: unlike ``ru_maxrss``, it restarts at ``exec``, so a worker
    started from a large parent process reports only its own peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def bf16_units() -> list[str]:
    """The CPU's bfloat16 matrix units (AVX512-BF16, AMX) by name; empty without them (or off Linux)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return [unit for unit, flag in (("AVX512-BF16", " avx512_bf16"), ("AMX", " amx_bf16")) if flag in flags]


def cpu_line() -> str:
    """One line for a benchmark's header: CPU name, core count, bfloat16 matrix units."""
    units = ", ".join(bf16_units()) or "no AVX512-BF16 or AMX"
    return f"CPU: {cpu_name()}, {os.cpu_count()} cores; bfloat16 matrix units: {units}"
