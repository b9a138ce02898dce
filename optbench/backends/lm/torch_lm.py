"""torch text generation: transformers `generate` with a KV cache, eager.

Precisions: fp32 / bf16 / fp16 as the dtype of the weights and activations. int8 is torchao
dynamic int8 (W8A8: int8 weights per row, activations quantized per token at run time, an
int8 matmul); weight-only (`woq` transform) is torchao int8 per-row or int4 per group of 32,
dequantized inside the linear layer (activations stay float).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from optbench.artifact import ModelArtifact
from optbench.backends.lm.hf import HFGenerator, pad_token_id

if TYPE_CHECKING:
    from optbench.backends.base import LoadContext

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "float32"}
WOQ_GROUP = 32


def quantize(model: Any, precision: str, quantization: str) -> str:
    """Apply torchao in place; returns the description of what runs."""
    import torch
    from torchao.quantization import (
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        IntxWeightOnlyConfig,
        PerGroup,
        quantize_,
    )

    if quantization == "woq-int8":
        quantize_(model, Int8WeightOnlyConfig())
        return "torchao weight-only int8 (per row), float activations"
    if quantization == "woq-int4":
        quantize_(model, IntxWeightOnlyConfig(weight_dtype=torch.int4,
                                              granularity=PerGroup(WOQ_GROUP)))
        return f"torchao weight-only int4 (groups of {WOQ_GROUP}), float activations"
    if precision == "int8":
        quantize_(model, Int8DynamicActivationInt8WeightConfig())
        return "torchao dynamic int8 (int8 weights per row, activations per token)"
    return ""


def load(artifact: ModelArtifact, ctx: LoadContext, config: Any) -> HFGenerator:
    """TorchBackend's lm_loader (config: a TorchConfig; its `threads` is used)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = ctx.device
    threads = config.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    dtype = getattr(torch, DTYPES[artifact.precision])
    model = AutoModelForCausalLM.from_pretrained(artifact.path, dtype=dtype).eval().to(device)
    quantized = quantize(model, artifact.precision, artifact.quantization)
    path = quantized or f"eager {artifact.precision}"
    tokenizer = AutoTokenizer.from_pretrained(artifact.path)
    weight_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values()
                       if torch.is_tensor(t) and not quantized)
    info = {"runtime": f"torch {torch.__version__}", "threads": threads,
            "kv_cache": "transformers DynamicCache", "model_bytes": weight_bytes or None}
    return HFGenerator(model, f"transformers generate, {path}", device,
                       pad_token_id(tokenizer), info)
