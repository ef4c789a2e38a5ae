"""What the MLLM examples share: their command-line arguments and the TSPO selection step."""

from __future__ import annotations

import argparse

import torch


def example_parser(description: str, *, default_mllm: str, k_help: str) -> argparse.ArgumentParser:
    """Arguments every example takes; each adds its model's own options."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--video", required=True, help="video file")
    p.add_argument("--question", required=True)
    p.add_argument("--k", type=int, default=16, help=k_help)
    p.add_argument("--mllm", default=default_mllm, help="Hub id or directory")
    p.add_argument("--sampler", default="hzf666/TSPO-0.4B", help="TSPO checkpoint: Hub id or directory")
    p.add_argument("--method", default="topk", help="selection method (topk, bin-max, uniform, ...)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    return p


def device_and_dtype(args: argparse.Namespace) -> tuple[str, torch.dtype]:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return device, (torch.bfloat16 if device.startswith("cuda") else torch.float32)


def select(args: argparse.Namespace, device: str):  # noqa: ANN201 - a tspo_sampler.Selection
    """Pick the frames with TSPO and print where they lie in time."""
    from tspo_sampler import TemporalSampler

    sampler = TemporalSampler.from_pretrained(args.sampler, device=device)
    selection = sampler.select_frames(args.video, args.question, k=args.k, method=args.method)
    print(f"{selection.k} frames of {selection.duration or 0:.1f} s chosen at:")
    print("  " + ", ".join(f"{t:.2f}s" for t in selection.timestamps))
    return selection


def answer_with_auto_model(args: argparse.Namespace, device: str, dtype: torch.dtype, selection, **options):
    """Load ``args.mllm`` with the Auto classes, print the prompt's time markers, then the answer.

    ``options`` go to the adapter (``tspo_sampler.adapters.prepare_inputs`` and the Answerer).
    """
    import re

    from transformers import AutoModelForImageTextToText, AutoProcessor

    from tspo_sampler.adapters import answerer_for, prepare_inputs

    model = AutoModelForImageTextToText.from_pretrained(args.mllm, dtype=dtype, device_map=device)
    processor = AutoProcessor.from_pretrained(args.mllm)
    inputs = prepare_inputs(processor, selection, args.question, **options)
    prompt = processor.tokenizer.decode(inputs["input_ids"][0])
    markers = re.findall(r"<[\d.]+ seconds>|Frame from [\d:]+", prompt)
    print("The model reads:", " ".join(markers) or "(times in the model's own format)")
    answerer = answerer_for(model, processor, **options)
    print("Answer:", answerer.answer(selection, args.question, max_new_tokens=args.max_new_tokens)[0])
