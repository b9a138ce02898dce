"""OpenVINO text generation through optimum-intel's OVModelForCausalLM (stateful KV cache).

The f32 baseline is explicit: optimum-intel compresses big models' weights to int8 on
export by default, and the CPU plugin quantizes activations dynamically and stores the KV
cache in u8 unless told otherwise; here the baseline sets f32 inference, f32 KV cache and
no dynamic quantization, and the weight-only variants (NNCF `compress_weights` via
OVWeightQuantizationConfig: int8 asymmetric per channel, int4 symmetric in groups of 32)
change the weights only. `int8` adds the CPU plugin's dynamic activation quantization to
int8 weights (its int8 compute path).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optbench.artifact import ModelArtifact
from optbench.backends.lm.cache_dirs import copy_side_files, dir_bytes
from optbench.backends.lm.hf import HFGenerator, pad_token_id
from optbench.cache import built_dir
from optbench.errors import Unavailable

if TYPE_CHECKING:
    from optbench.backends.base import LoadContext

log = logging.getLogger(__name__)
GROUP = 32


def weight_config(bits: int) -> Any:
    from optimum.intel import OVWeightQuantizationConfig

    if bits == 8:
        return OVWeightQuantizationConfig(bits=8, sym=False)
    return OVWeightQuantizationConfig(bits=4, sym=True, group_size=GROUP, ratio=1.0,
                                      group_size_fallback="adjust")


def exported(artifact: ModelArtifact, cache_dir: Path, bits: int | None) -> Path:
    def build(tmp: Path) -> None:
        from optimum.intel import OVModelForCausalLM

        log.info("exporting %s to OpenVINO IR%s", artifact.name,
                 f" with int{bits} weights (NNCF)" if bits else " (f32 weights)")
        kwargs: dict[str, Any] = ({"quantization_config": weight_config(bits)} if bits
                                  else {"load_in_8bit": False})
        model = OVModelForCausalLM.from_pretrained(artifact.path, export=True, compile=False,
                                                   **kwargs)
        model.save_pretrained(tmp)
        copy_side_files(Path(artifact.path), tmp)

    tag = f"int{bits}-weights" if bits else "f32"
    return built_dir(cache_dir / "openvino-lm" / f"{artifact.digest}-{tag}", build)


def load(artifact: ModelArtifact, ctx: LoadContext, config: Any) -> HFGenerator:
    """OpenVinoBackend's lm_loader (config: an OpenVinoConfig; `threads` and
    `performance_hint` are used)."""
    if artifact.precision not in ("fp32", "int8"):
        raise Unavailable(f"openvino text generation runs f32 or int8 here, not "
                          f"{artifact.precision}")
    import openvino as ov
    from optimum.intel import OVModelForCausalLM
    from transformers import AutoTokenizer

    bits = None
    path = "f32 weights"
    if artifact.quantization.startswith("woq-int"):
        bits = int(artifact.quantization.removeprefix("woq-int"))
        path = (f"NNCF weight-only int{bits} "
                + ("(asymmetric, per channel)" if bits == 8 else f"(symmetric, groups of {GROUP})")
                + ", f32 activations")
    elif artifact.precision == "int8":
        bits = 8
        path = "NNCF int8 weights + CPU dynamic int8 activations (groups of 32)"
    directory = exported(artifact, ctx.cache_dir, bits)
    threads = config.threads or os.cpu_count() or 1
    performance_hint = config.performance_hint
    dynamic = artifact.precision == "int8" and not artifact.quantization
    config = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32",
              "DYNAMIC_QUANTIZATION_GROUP_SIZE": "32" if dynamic else "0",
              "PERFORMANCE_HINT": performance_hint.upper(),
              "INFERENCE_NUM_THREADS": str(threads)}
    model = OVModelForCausalLM.from_pretrained(directory, ov_config=config, use_cache=True)
    tokenizer = AutoTokenizer.from_pretrained(artifact.path)
    compiled = model.request.get_compiled_model() if hasattr(model.request, "get_compiled_model") \
        else None
    effective: dict[str, str] = {}
    if compiled is not None:
        for key in config:
            try:
                effective[key] = str(compiled.get_property(key))
            except RuntimeError:
                pass
    info = {"runtime": f"openvino {ov.__version__}", "threads": threads, "requested": config,
            "effective": effective, "model_file": f"{directory.name}/openvino_model.xml",
            "model_bytes": dir_bytes(directory, (".xml", ".bin")),
            "kv_cache": "stateful (inside the infer request)"}
    return HFGenerator(model, f"optimum OVModelForCausalLM, {path}", "cpu",
                       pad_token_id(tokenizer), info)
