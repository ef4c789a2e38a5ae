"""Integrations with evaluation and serving hosts (lmms-eval, vLLM, VLMEvalKit, qwen-vl-utils).

Each submodule imports its host lazily, so importing ``tspo_sampler.integrations`` never pulls in
lmms-eval, vLLM or VLMEvalKit.
"""
