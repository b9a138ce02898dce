"""ONNX Runtime text generation through optimum's ORTModelForCausalLM (KV cache as I/O).

Export: optimum's `text-generation-with-past` export, one `model.onnx` with past key/values
as inputs and outputs. int8 is ORT dynamic quantization of the MatMuls (int8 weights per
channel, activations quantized at run time: MatMulInteger). Weight-only (`woq`) is ORT's
MatMulNBits (int4 or int8 weights in blocks of 32, float activations).
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
BLOCK = 32


def exported(artifact: ModelArtifact, cache_dir: Path) -> Path:
    def build(tmp: Path) -> None:
        from optimum.onnxruntime import ORTModelForCausalLM

        log.info("exporting %s to ONNX (optimum, with KV cache)", artifact.name)
        model = ORTModelForCausalLM.from_pretrained(artifact.path, export=True, use_cache=True)
        model.save_pretrained(tmp)
        copy_side_files(Path(artifact.path), tmp)

    return built_dir(cache_dir / "ort-lm" / f"{artifact.digest}-fp32", build)


def dynamic_int8(source: Path, cache_dir: Path, digest: str) -> Path:
    def build(tmp: Path) -> None:
        from optimum.onnxruntime import ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig

        log.info("quantizing the ONNX model with ORT dynamic int8 (MatMul)")
        config = AutoQuantizationConfig.avx2(is_static=False, per_channel=True,
                                             operators_to_quantize=["MatMul"])
        ORTQuantizer.from_pretrained(source, file_name="model.onnx").quantize(
            quantization_config=config, save_dir=tmp)
        (tmp / "model_quantized.onnx").rename(tmp / "model.onnx")
        copy_side_files(source, tmp)

    return built_dir(cache_dir / "ort-lm" / f"{digest}-int8-dynamic", build)


def weight_only(source: Path, cache_dir: Path, digest: str, bits: int) -> Path:
    def build(tmp: Path) -> None:
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        log.info("quantizing the ONNX model's MatMul weights to int%d (MatMulNBits)", bits)
        quantizer = MatMulNBitsQuantizer(onnx.load(str(source / "model.onnx")), bits=bits,
                                         block_size=BLOCK, is_symmetric=True)
        quantizer.process()
        tmp.mkdir(parents=True)
        quantizer.model.save_model_to_file(str(tmp / "model.onnx"))
        copy_side_files(source, tmp)

    return built_dir(cache_dir / "ort-lm" / f"{digest}-woq-int{bits}", build)


def load(artifact: ModelArtifact, ctx: LoadContext, config: Any) -> HFGenerator:
    """OrtBackend's lm_loader (config: an OrtConfig; its `threads` is used)."""
    if artifact.precision not in ("fp32", "int8"):
        raise Unavailable(f"ort text generation runs fp32 or int8, not {artifact.precision}")
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForCausalLM
    from transformers import AutoTokenizer

    cache_dir, device = ctx.cache_dir, ctx.device
    directory = exported(artifact, cache_dir)
    path = "fp32"
    if artifact.quantization.startswith("woq-int"):
        bits = int(artifact.quantization.removeprefix("woq-int"))
        directory = weight_only(directory, cache_dir, artifact.digest, bits)
        path = f"MatMulNBits weight-only int{bits} (blocks of {BLOCK}), float activations"
    elif artifact.precision == "int8":
        directory = dynamic_int8(directory, cache_dir, artifact.digest)
        path = "dynamic int8 MatMul (per-channel weights, activations at run time)"
    options = ort.SessionOptions()
    threads = config.threads or os.cpu_count() or 1
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    model = ORTModelForCausalLM.from_pretrained(directory, use_cache=True, provider=provider,
                                                session_options=options)
    tokenizer = AutoTokenizer.from_pretrained(artifact.path)
    info = {"runtime": f"onnxruntime {ort.__version__}", "threads": threads,
            "provider": provider, "model_file": f"{directory.name}/model.onnx",
            "model_bytes": dir_bytes(directory, (".onnx", ".onnx_data", ".data")),
            "kv_cache": "past key/values as graph inputs and outputs (optimum)"}
    # On CUDA optimum binds inputs by address (IO binding): they must be on the GPU too.
    # (Not run on a GPU yet: onnxruntime-gpu is not in the GPU image this project had.)
    return HFGenerator(model, f"optimum ORTModelForCausalLM, {path}", device,
                       pad_token_id(tokenizer), info)
