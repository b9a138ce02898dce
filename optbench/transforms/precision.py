"""Numeric precision steps. The work is delegated to each runtime's own toolchain.

int8 means: torchao pt2e static int8 lowered by inductor (torch), `quantize_static` QDQ
(ONNX Runtime), NNCF post-training quantization (OpenVINO), TensorRT int8 (trt). These
steps mark the artifact with the target precision; the backend performs the conversion
in `load`, calibrated on the workload's calibration split, and caches the result.
"""

from __future__ import annotations

from typing import ClassVar

from optbench.artifact import ModelArtifact
from optbench.errors import Availability
from optbench.transforms.base import Stage, Transform, TransformContext


class PrecisionTransform(Transform):
    stage = Stage.RUNTIME
    precision: ClassVar[str] = "fp32"

    def supports(self, backend: type, device: str, artifact: ModelArtifact) -> Availability:
        if artifact.precision != "fp32":
            return Availability.no(
                f"{self.precision} after {artifact.precision}: precision steps do not stack"
            )
        if artifact.quantization.startswith("woq-"):
            return Availability.no(f"{self.precision} after {artifact.quantization}: the "
                                   "weights are already quantized")
        return backend.supports(artifact.format, self.precision, device)


    def apply(self, artifact: ModelArtifact, ctx: TransformContext) -> ModelArtifact:
        return artifact.derive(self.name, precision=self.precision)


class Int8(PrecisionTransform):
    name = "int8"
    precision = "int8"


class Fp16(PrecisionTransform):
    name = "fp16"
    precision = "fp16"


class Bf16(PrecisionTransform):
    name = "bf16"
    precision = "bf16"
