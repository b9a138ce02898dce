"""Weight-only quantization of language models: int8 or int4 weights, float activations.

The step marks the artifact (`quantization = "woq-int8" | "woq-int4"`); each runtime does
the work with its own toolchain when it loads the model, and caches the result:
NNCF `compress_weights` through optimum-intel (OpenVINO: int8 asymmetric per channel, int4
symmetric in groups of 32), torchao (int8 per row, int4 in groups of 32), ONNX Runtime's
MatMulNBits (blocks of 32); not vLLM (its in-flight 4-bit, bitsandbytes NF4, is gone).
Language models are memory-bound when decoding, which is what smaller weights are meant to help.
"""

from __future__ import annotations

from dataclasses import dataclass

from optbench.artifact import HF_CAUSAL_LM, ModelArtifact
from optbench.errors import Availability
from optbench.transforms.base import Stage, Transform, TransformConfig, TransformContext


@dataclass(frozen=True)
class WeightOnlyConfig(TransformConfig):
    bits: int = 8

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, got {self.bits}")


class WeightOnly(Transform):
    name = "woq"
    stage = Stage.RUNTIME
    Config = WeightOnlyConfig

    def supports(self, backend: type, device: str, artifact: ModelArtifact) -> Availability:
        if artifact.format != HF_CAUSAL_LM:
            return Availability.no("weight-only quantization here is for language models; "
                                   "vision models use int8 (static, weights and activations)")
        if artifact.precision != "fp32" or artifact.quantization:
            return Availability.no("weight-only quantization starts from the fp32 model "
                                   f"(this one is {artifact.quantization or artifact.precision})")
        if self.config.bits not in getattr(backend, "weight_only_bits", ()):
            offered = getattr(backend, "weight_only_bits", ())
            return Availability.no(
                f"{backend.name} has no weight-only int{self.config.bits} path"
                + (f" (it has int{', int'.join(map(str, offered))})" if offered else ""))
        return backend.supports(artifact.format, "fp32", device)

    def apply(self, artifact: ModelArtifact, ctx: TransformContext) -> ModelArtifact:
        tag = f"woq-int{self.config.bits}"
        return artifact.derive(tag, quantization=tag)
