"""NVIDIA TensorRT. Availability only until the GPU-target issue lands the engine path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optbench.artifact import ModelArtifact
from optbench.backends.base import (
    Availability,
    Backend,
    BackendConfig,
    LoadContext,
    module_availability,
)
from optbench.errors import Unavailable


@dataclass(frozen=True)
class TensorRtConfig(BackendConfig):
    workspace_bytes: int = 1 << 30


class TensorRtBackend(Backend):
    name = "trt"
    Config = TensorRtConfig
    formats = ("torch", "onnx")
    precisions = {"cuda": ("fp32", "fp16", "int8")}

    @classmethod
    def availability(cls) -> Availability:
        found = module_availability("tensorrt", extra="trt")
        if not found:
            return Availability.no(
                "TensorRT is not installed (it needs an NVIDIA GPU, a CUDA driver and "
                "pip install 'optbench[trt]', or the project's CUDA Docker image)"
            )
        return Availability.no("the TensorRT engine path is not implemented yet")

    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        raise Unavailable(self.availability().reason)

    def infer(self, inputs: Any) -> Any:
        raise Unavailable(self.availability().reason)
