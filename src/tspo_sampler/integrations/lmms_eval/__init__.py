"""An lmms-eval plugin: lmms-eval's own video models with TSPO's question-aware frames.

Installed with ``pip install "tspo-sampler[lmms-eval]"``, it registers through lmms-eval's
``lmms_eval.models`` entry-point group (no source patch, no ``--include_path`` for models):

* ``qwen2_5_vl_tspo``: ``lmms_eval.models.chat.qwen2_5_vl.Qwen2_5_VL`` (frame count arg ``max_num_frames``)
* ``qwen3_vl_tspo``: ``lmms_eval.models.chat.qwen3_vl.Qwen3_VL`` (``max_num_frames``)
* ``llava_onevision_tspo``: ``lmms_eval.models.chat.llava_hf.LlavaHf`` (``max_frames_num``)
* ``internvl_hf_tspo``: ``lmms_eval.models.chat.internvl_hf.InternVLHf`` (``num_frames``)

Each replaces only frame selection. Model args (``--model_args``), beside the upstream model's own:

* ``tspo_model``: TSPO checkpoint, Hub id or directory (default ``hzf666/TSPO-0.4B``); a bad one stops the
  run at model construction with one line (exit status 2 under the lmms-eval CLI).
* ``k`` (default: the upstream frame count), ``method`` (``topk``), ``fps`` (TSPO candidates per second,
  1), ``search`` (``exhaustive`` or ``coarse-to-fine``).
* ``tspo_index``: a ``tspo index`` JSONL to read selections from instead of computing them;
  ``tspo_index_field`` names the doc field matched against its ``id`` (default ``id``).
* ``question_field``: the doc field holding the question (default: ``question``, ``query`` or ``prompt``,
  else the prompt text), answer options removed.
* ``tspo_device`` (default: the model's ``device``), ``feature_cache`` (``true``, ``false``, ``sampled`` or
  ``full-hash``), ``feature_cache_dir`` (where the feature cache lives),
  ``tspo_log`` (also append one JSON line per doc ``{task, doc_id, tspo}`` to this file).
* ``qwen2_5_vl_tspo`` only: ``timestamps`` (``metadata``: real fps and indices; ``uniform``: a 2 fps clip,
  the TSPO paper's setting).

With ``--log_samples`` every logged sample carries a top-level ``"tspo"`` record (indices, timestamps,
method, k, question, video). A video TSPO cannot read gets the upstream model's own frames, with a warning
naming the doc and the video; the record says ``"fallback": true`` and the run logs the count.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MODELS", "internvl_hf_tspo", "llava_onevision_tspo", "manifests", "qwen2_5_vl_tspo", "qwen3_vl_tspo"]

# model id -> class path (imported by lmms-eval only when the model is asked for)
MODELS = {
    "qwen2_5_vl_tspo": "tspo_sampler.integrations.lmms_eval._qwen.Qwen2_5_VL_TSPO",
    "qwen3_vl_tspo": "tspo_sampler.integrations.lmms_eval._qwen.Qwen3_VL_TSPO",
    "llava_onevision_tspo": "tspo_sampler.integrations.lmms_eval._processors.LlavaOneVision_TSPO",
    "internvl_hf_tspo": "tspo_sampler.integrations.lmms_eval._processors.InternVLHf_TSPO",
}


def _manifest(model_id: str) -> Any:
    # imported here: the entry point loads while lmms_eval.models is initialising, registry_v2 is ready then
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=model_id, chat_class_path=MODELS[model_id])


def manifests() -> list[Any]:
    """Every model of the plugin as an lmms-eval ``ModelManifest``."""
    return [_manifest(m) for m in MODELS]


def qwen2_5_vl_tspo() -> Any:
    """Entry point ``qwen2_5_vl_tspo``."""
    return _manifest("qwen2_5_vl_tspo")


def qwen3_vl_tspo() -> Any:
    """Entry point ``qwen3_vl_tspo``."""
    return _manifest("qwen3_vl_tspo")


def llava_onevision_tspo() -> Any:
    """Entry point ``llava_onevision_tspo``."""
    return _manifest("llava_onevision_tspo")


def internvl_hf_tspo() -> Any:
    """Entry point ``internvl_hf_tspo``."""
    return _manifest("internvl_hf_tspo")
