"""Tiny, randomly initialised video-LLMs with real Hugging Face classes, built fully offline.

Each builder returns ``(model, processor)`` where the processor is the model's real processor class
(real image/video processor classes with small sizes) and its tokenizer is a byte-level BPE built
with the ``tokenizers`` library: every byte is a token, plus the model family's special tokens, and a
chat template written for these tests in the same prompt format as the released checkpoints.

Sizes are chosen so that one frame costs only a handful of visual tokens:

* Qwen2.5-VL: 56 x 56 px frames -> 4 x 4 patches of 14 px -> 4 tokens per temporal patch (2 frames).
* LLaVA-OneVision: 56 px SigLIP input -> 4 x 4 patches -> pooled to 2 x 2 = 4 tokens per frame, +1.
* InternVL: 56 px tiles -> 4 x 4 patches -> pixel shuffle 0.5 -> 4 tokens per frame.
* Qwen3-VL: 64 x 64 px frames -> 4 x 4 patches of 16 px -> 4 tokens per temporal patch.
* SmolVLM2: 64 px frames -> 4 x 4 patches -> pixel shuffle 2 -> 4 tokens per frame.
* GLM-4.1V: frames resized within 56 x 56 x 16 pixels per video, 14 px patches, temporal patch 2.
"""

from __future__ import annotations

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

TEXT = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=1,
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=4096,
)

# Chat templates written for these tests; they render the same strings as the released checkpoints'
# templates for the message shapes the adapters produce (text, image and video parts).
QWEN2_5_VL_TEMPLATE = (
    "{% for m in messages %}"
    "{% if loop.first and m['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' }}"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif c['type'] == 'video' %}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAVA_ONEVISION_TEMPLATE = (
    "{% for m in messages %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' }}"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}"
    "{% for c in m['content'] if c['type'] == 'image' %}{{ '<image>\\n' }}{% endfor %}"
    "{% for c in m['content'] if c['type'] == 'video' %}{{ '<video>\\n' }}{% endfor %}"
    "{% for c in m['content'] if c['type'] == 'text' %}{{ c['text'] }}{% endfor %}"
    "{% endif %}{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

INTERNVL_TEMPLATE = (
    "{% for m in messages %}"
    "{% if loop.first and m['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n你是书生·万象，英文名是InternVL。<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' }}"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}{{ '<IMG_CONTEXT>\\n' }}"
    "{% elif c['type'] == 'video' %}{{ '<video>\\n' }}"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tokenizer(
    special_tokens: list[str],
    *,
    chat_template: str | None = None,
    eos_token: str = "<|im_end|>",
    pad_token: str = "<|endoftext|>",
    extra_special_tokens: dict[str, str] | None = None,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (one token per byte, no merges) with the given special tokens."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    specials = list(dict.fromkeys([pad_token, eos_token, *special_tokens, *(extra_special_tokens or {}).values()]))
    backend.add_special_tokens(specials)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=eos_token,
        pad_token=pad_token,
        extra_special_tokens=extra_special_tokens or {},
        padding_side="left",
    )
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


# ------------------------------------------------------------------------------------------ Qwen2.5-VL


def build_qwen2_5_vl(seed: int = 0, *, cap_pixels_per_frame: bool | None = False):
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    specials = ["<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = build_tokenizer(specials, chat_template=QWEN2_5_VL_TEMPLATE)
    size = {"shortest_edge": 28 * 28, "longest_edge": 56 * 56}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(
            size=size, **({} if cap_pixels_per_frame is None else {"cap_pixels_per_frame": cap_pixels_per_frame})
        ),
        chat_template=QWEN2_5_VL_TEMPLATE,
    )
    ids = tok.convert_tokens_to_ids
    head_dim = TEXT["hidden_size"] // TEXT["num_attention_heads"]
    config = Qwen2_5_VLConfig(
        text_config=dict(
            **TEXT,
            vocab_size=len(tok),
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            bos_token_id=None,
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        vision_config=dict(
            depth=1,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=TEXT["hidden_size"],
            fullatt_block_indexes=[0],
            window_size=56,
            tokens_per_second=2,
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    assert head_dim // 2 == sum(config.text_config.rope_parameters["mrope_section"])
    _seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    _generation_ids(model, tok)
    return model, processor


# ------------------------------------------------------------------------------------------ Qwen3-VL


def build_qwen3_vl(seed: int = 0, *, cap_pixels_per_frame: bool | None = True):
    """Qwen3-VL: 64 px frames -> 4 x 4 patches of 16 px -> 4 tokens per temporal patch (2 frames).

    ``cap_pixels_per_frame=None`` leaves the video processor's choice unset (as released checkpoints do).
    """
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    specials = ["<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = build_tokenizer(specials, chat_template=QWEN2_5_VL_TEMPLATE)
    video_kwargs = {} if cap_pixels_per_frame is None else {"cap_pixels_per_frame": cap_pixels_per_frame}
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(
            size={"shortest_edge": 32 * 32, "longest_edge": 64 * 64}, patch_size=16, merge_size=2
        ),
        tokenizer=tok,
        video_processor=Qwen3VLVideoProcessor(
            size={"shortest_edge": 64 * 64, "longest_edge": 64 * 64 * 16}, **video_kwargs
        ),
        chat_template=QWEN2_5_VL_TEMPLATE,
    )
    ids = tok.convert_tokens_to_ids
    config = Qwen3VLConfig(
        text_config=dict(
            **TEXT,
            head_dim=16,
            vocab_size=len(tok),
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
                "mrope_interleaved": True,
            },
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        vision_config=dict(
            depth=1,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=TEXT["hidden_size"],
            num_position_embeddings=16,
            deepstack_visual_indexes=[0],
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    _seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    _generation_ids(model, tok)
    return model, processor


def build_qwen3_family(kind: str, seed: int = 0):
    """Qwen3-VL-MoE (``kind="moe"``) or Qwen3.5 (``kind="qwen3_5"``): the Qwen3-VL processor of
    :func:`build_qwen3_vl` with the family's own model class (one full-attention layer; the MoE with
    two experts)."""
    import transformers

    _, processor = build_qwen3_vl(seed)
    tok = processor.tokenizer
    ids = tok.convert_tokens_to_ids
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True}
    text = dict(
        **TEXT, head_dim=16, vocab_size=len(tok), eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>")
    )
    vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=TEXT["hidden_size"])
    vision["num_position_embeddings"] = 16
    if kind == "moe":
        config_cls, model_cls = transformers.Qwen3VLMoeConfig, transformers.Qwen3VLMoeForConditionalGeneration
        text.update(rope_parameters=rope, num_experts=2, num_experts_per_tok=1, moe_intermediate_size=32)
        vision["deepstack_visual_indexes"] = [0]
    elif kind == "qwen3_5":
        config_cls, model_cls = transformers.Qwen3_5Config, transformers.Qwen3_5ForConditionalGeneration
        text.update(rope_parameters={**rope, "partial_rotary_factor": 1.0}, layer_types=["full_attention"])
    else:
        raise ValueError(f"kind must be 'moe' or 'qwen3_5', got {kind!r}")
    config = config_cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    _seed(seed)
    model = model_cls(config).eval()
    _generation_ids(model, tok)
    return model, processor


# ------------------------------------------------------------------------------------ SmolVLM2 / GLM-4.1V

GLM4V_TEMPLATE = (
    "[gMASK]<sop>"
    "{% for m in messages %}"
    "{{ '<|' + m['role'] + '|>\n' }}"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}{{ '<|begin_of_image|><|image|><|end_of_image|>' }}"
    "{% elif c['type'] == 'video' %}{{ '<|begin_of_video|><|video|><|end_of_video|>' }}"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def build_smolvlm2(seed: int = 0):
    """SmolVLM2: 64 px frames -> 4 x 4 patches of 16 px -> pixel shuffle 2 -> 4 tokens per frame."""
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )
    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

    extra = {
        "image_token": "<image>",
        "fake_image_token": "<fake_token_around_image>",
        "global_image_token": "<global-img>",
        "end_of_utterance_token": "<end_of_utterance>",
        "video_token": "<video>",
    }
    tok = build_tokenizer(
        ["<|im_start|>"],
        chat_template=DEFAULT_CHAT_TEMPLATE,
        eos_token="<end_of_utterance>",
        extra_special_tokens=extra,
    )
    image_size, patch = 64, 16
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(
            size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size}, do_image_splitting=False
        ),
        tokenizer=tok,
        video_processor=SmolVLMVideoProcessor(
            size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size}
        ),
        image_seq_len=(image_size // patch) ** 2 // 4,
        chat_template=DEFAULT_CHAT_TEMPLATE,
    )
    processor.video_processor.num_frames = 64  # SmolVLM2's video_sampling max_frames
    ids = tok.convert_tokens_to_ids
    config = SmolVLMConfig(
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            image_size=image_size, patch_size=patch,
        ),
        text_config=dict(
            model_type="llama",
            **TEXT,
            vocab_size=len(tok),
            eos_token_id=ids("<end_of_utterance>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        scale_factor=2,
        image_token_id=ids("<image>"),
    )
    _seed(seed)
    model = SmolVLMForConditionalGeneration(config).eval()
    _generation_ids(model, tok, eos="<end_of_utterance>")
    return model, processor


def build_glm4v(seed: int = 0):
    """GLM-4.1V: 56 px frames -> 4 x 4 patches of 14 px -> 4 tokens per temporal patch (2 frames)."""
    from transformers import (
        Glm4vConfig,
        Glm4vForConditionalGeneration,
        Glm4vImageProcessor,
        Glm4vProcessor,
        Glm4vVideoProcessor,
    )

    specials = [
        "<|user|>", "<|assistant|>", "<|system|>", "[gMASK]", "<sop>", "<|begin_of_image|>", "<|end_of_image|>",
        "<|begin_of_video|>", "<|end_of_video|>", "<|image|>", "<|video|>",
    ]
    tok = build_tokenizer(specials, chat_template=GLM4V_TEMPLATE, eos_token="<|user|>")
    size = {"shortest_edge": 56 * 56, "longest_edge": 56 * 56 * 16}
    processor = Glm4vProcessor(
        image_processor=Glm4vImageProcessor(size=size),
        tokenizer=tok,
        video_processor=Glm4vVideoProcessor(size=size),
        chat_template=GLM4V_TEMPLATE,
    )
    ids = tok.convert_tokens_to_ids
    config = Glm4vConfig(
        text_config=dict(
            **TEXT,
            vocab_size=len(tok),
            rope_parameters={
                "rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3],
                "partial_rotary_factor": 1.0,
            },
            eos_token_id=ids("<|user|>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        vision_config=dict(
            depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=TEXT["hidden_size"],
            image_size=56, patch_size=14,
        ),
        image_token_id=ids("<|image|>"),
        video_token_id=ids("<|video|>"),
        image_start_token_id=ids("<|begin_of_image|>"),
        image_end_token_id=ids("<|end_of_image|>"),
        video_start_token_id=ids("<|begin_of_video|>"),
        video_end_token_id=ids("<|end_of_video|>"),
    )
    _seed(seed)
    model = Glm4vForConditionalGeneration(config).eval()
    _generation_ids(model, tok, eos="<|user|>")
    return model, processor


# ------------------------------------------------------------------------------------- LLaVA-OneVision


def build_llava_onevision(seed: int = 0):
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    specials = ["<|im_start|>", "<image>", "<video>"]
    tok = build_tokenizer(specials, chat_template=LLAVA_ONEVISION_TEMPLATE)
    image_size, patch = 56, 14
    image_processor = LlavaOnevisionImageProcessor(
        size={"height": image_size, "width": image_size},
        image_grid_pinpoints=[[image_size, image_size]],
    )
    video_processor = LlavaOnevisionVideoProcessor(size={"height": image_size, "width": image_size})
    processor = LlavaOnevisionProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=video_processor,
        num_image_tokens=(image_size // patch) ** 2,
        vision_feature_select_strategy="full",
        chat_template=LLAVA_ONEVISION_TEMPLATE,
    )
    ids = tok.convert_tokens_to_ids
    config = LlavaOnevisionConfig(
        vision_config=dict(
            model_type="siglip_vision_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch,
        ),
        text_config=dict(
            model_type="qwen2",
            **TEXT,
            vocab_size=len(tok),
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        image_token_index=ids("<image>"),
        video_token_index=ids("<video>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=[[image_size, image_size]],
    )
    _seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    _generation_ids(model, tok)
    return model, processor


# ---------------------------------------------------------------------------------------------- InternVL


def build_internvl(seed: int = 0):
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    extra = {
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>",
    }
    tok = build_tokenizer(["<|im_start|>"], chat_template=INTERNVL_TEMPLATE, extra_special_tokens=extra)
    image_size, patch = 56, 14
    image_seq_length = (image_size // patch) ** 2 // 4
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(
            size={"height": image_size, "width": image_size}, crop_to_patches=False, max_patches=1
        ),
        tokenizer=tok,
        video_processor=InternVLVideoProcessor(size={"height": image_size, "width": image_size}),
        image_seq_length=image_seq_length,
        chat_template=INTERNVL_TEMPLATE,
    )
    ids = tok.convert_tokens_to_ids
    config = InternVLConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=[image_size, image_size],
            patch_size=[patch, patch],
        ),
        text_config=dict(
            model_type="qwen2",
            **TEXT,
            vocab_size=len(tok),
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        image_token_id=ids("<IMG_CONTEXT>"),
        image_seq_length=image_seq_length,
        downsample_ratio=0.5,
        vision_feature_select_strategy="default",
    )
    _seed(seed)
    model = InternVLForConditionalGeneration(config).eval()
    _generation_ids(model, tok)
    return model, processor


def _generation_ids(model, tok, eos: str = "<|im_end|>") -> None:
    gc = model.generation_config
    gc.eos_token_id = tok.convert_tokens_to_ids(eos)
    gc.pad_token_id = tok.pad_token_id
    gc.do_sample = False


def synthetic_frames(k: int, size: int = 56, seed: int = 0) -> np.ndarray:
    """``k`` distinct uint8 RGB frames ``k x size x size x 3``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(k, size, size, 3), dtype=np.uint8)


def make_selection(
    k: int,
    *,
    seed: int = 0,
    size: int = 56,
    fps: float = 10.0,
    duration: float = 30.0,
    question: str = "What happens?",
):
    """A ``Selection`` of ``k`` synthetic frames, chosen among 1 fps candidates of a ``duration`` s video."""
    from tspo_sampler._result import Selection

    rng = np.random.default_rng(seed)
    n_cand = int(duration)
    cand_idx = [int(round(t * fps)) for t in range(n_cand)]
    positions = sorted(rng.choice(n_cand, size=k, replace=False).tolist())
    indices = [cand_idx[p] for p in positions]
    return Selection(
        indices=indices,
        timestamps=[i / fps for i in indices],
        frames=synthetic_frames(k, size=size, seed=seed),
        scores=rng.random(n_cand).astype(np.float32),
        candidate_indices=cand_idx,
        candidate_timestamps=[float(t) for t in range(n_cand)],
        method="topk",
        duration=duration,
        fps=fps,
        question=question,
        positions=positions,
    )


def check_batched_scoring(model, processor):
    """Generate from the generic ``prepare_inputs`` on a left-padded batch of three selections (k = 4, 3, 6)
    and check that a batched ``option_logprobs`` scores each row as it scores alone, within 2e-3.

    Returns ``(answerer, selections, questions, batched log-probabilities)`` for further checks.
    """
    from tspo_sampler.adapters import answerer_for, prepare_inputs

    sels = [make_selection(4, seed=0, size=64), make_selection(3, seed=1, size=64), make_selection(6, seed=2, size=64)]
    qs = ["Q1?\nA. yes\nB. no", "A longer second question?\nA. red\nB. blue\nC. green", "Third?"]
    inputs = prepare_inputs(processor, sels, qs)
    assert inputs["attention_mask"][:, -1].all()  # left padded
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (3, inputs["input_ids"].shape[1] + 3)

    answerer = answerer_for(model, processor)
    assert len(answerer.answer(sels, qs, max_new_tokens=2)) == 3
    batched = answerer.option_logprobs(sels, qs, options=("A", "B", "C"))
    assert batched.shape == (3, 3) and torch.isfinite(batched).all()
    for i, (s, q) in enumerate(zip(sels, qs, strict=True)):
        alone = answerer.option_logprobs(s, q, options=("A", "B", "C"))[0]
        torch.testing.assert_close(batched[i], alone, atol=2e-3, rtol=0)
    return answerer, sels, qs, batched
